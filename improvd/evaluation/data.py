"""What an evaluation scores, and what its table calls it: the shared data folder, the split
rule every family trains with, and the words a table's title uses for the part scored.

Why one place: a figure is only worth its data. A README table must come back from the same
command with no flags; a held-out file given with --data must be scored whole, not split again
(scoring 90 % of a test file and calling it "valid" was a real bug); and every title must say
which part was scored. numpy-free and torch-free: the runtime's evaluators and the trainer
both use it.
"""

from __future__ import annotations

import random
from pathlib import Path

from improvd import ImprovdError

SPLITS = ("valid", "train", "test")
VALID_FRACTION = 0.1  # the share of pieces every family holds out for validation
VALID_SEED = 0


def shared_folders() -> list[Path]:
    """Where the project's shared data may be: ../shared/data beside the current folder (a
    working folder next to the data), then beside the source tree (a clone). An installed
    wheel has no source tree next to any data: then only the first can hold it."""
    here = Path.cwd().parent / "shared" / "data"
    tree = Path(__file__).resolve().parents[2].parent / "shared" / "data"
    return [here] if here == tree else [here, tree]


def shared(rel: str) -> Path:
    """``rel`` under the first shared folder that holds it (the first folder when none does,
    so a message can name where it was looked for)."""
    for folder in shared_folders():
        if (folder / rel).exists():
            return folder / rel
    return shared_folders()[0] / rel


def default_data(rel: str, what: str = "FILE") -> Path:
    """The default evaluation data, or one line naming --data when it is not here."""
    p = shared(rel)
    if not p.exists():
        where = " or ".join(str(f) for f in shared_folders())
        raise ImprovdError(f"no --data given and the default data {rel} is not in {where} (the project's data "
                           f"folder beside a clone): pass --data {what}")
    return p


def split_by_piece(items: list, fraction: float = VALID_FRACTION, seed: int = VALID_SEED) -> tuple[list, list]:
    """A train/valid split by whole piece (never by window), stable for a given seed: the rule
    training holds pieces out by, so an evaluator recomputes the same valid pieces."""
    idx = list(range(len(items)))
    random.Random(seed).shuffle(idx)
    n_valid = max(1, int(round(len(items) * fraction))) if len(items) > 1 else 0
    valid = sorted(idx[:n_valid])
    train = sorted(idx[n_valid:])
    return [items[i] for i in train], [items[i] for i in valid]


def choose_split(split: str | None, given: bool, holds_splits: bool = False) -> str:
    """The part to score: ``valid``, ``train``, ``test`` or ``whole``.

    No --split: the default data's valid split, a file that holds named splits (a piano-roll
    JSON, a folder with train/ and valid/) its valid split, any other given file or folder
    whole. ``--split test`` needs a held-out file: the default data holds none."""
    if split is not None and split not in SPLITS:
        raise ImprovdError(f"--split {split!r} is not a split: use {', '.join(SPLITS)}")
    if split is None:
        return "valid" if holds_splits or not given else "whole"
    if split == "test" and not given:
        raise ImprovdError("the default data holds no test split (it is held back): pass the held-out file with "
                           "--data FILE --split test")
    return split


def describe(split: str, paths: list, how: str = "", own: bool = False) -> str:
    """A table title's words for the part scored: 'valid split of X' (``own``: X names its
    splits), 'valid split of X (how it was drawn)', 'whole file X', 'test split (whole file X)'."""
    names = " + ".join(Path(str(p)).name or str(p) for p in paths)
    if own or split in ("valid", "train"):
        return f"{split} split of {names}" + (f" ({how})" if how else "")
    kind = "folder" if len(paths) == 1 and Path(str(paths[0])).is_dir() else ("files" if len(paths) > 1 else "file")
    return f"test split (whole {kind} {names})" if split == "test" else f"whole {kind} {names}"


def seeded_how(unit: str, fraction: float = VALID_FRACTION, seed: int = VALID_SEED) -> str:
    return f"{round(100 * fraction)} % of {unit} held out as valid, seed {seed}"
