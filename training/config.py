"""What a training run is asked for, and the one definition of the train options.

``TrainConfig``'s fields that carry a ``help`` are the options of a training command; the
argparse entry points (``python -m improvd.training.cli_train``, ``python -m
improvd.training.rnnrbm train``: the GPU box has torch but not typer, mido or rtmidi) are
built from them here, and ``improvd train`` hands its values to the same ``from_options``.
typer reads its options from the command's signature when improvd.cli is imported, and the
runtime never imports this package then, so that one command lists the options again, one
line each; tests/test_cli_usage.py holds the two lists equal.

No torch here: ``improvd train`` builds its config before anything heavy is imported.
"""

from __future__ import annotations

import argparse
import typing
from dataclasses import dataclass, field, fields
from pathlib import Path


def option(default=None, help: str = "", **more):
    """A field that is also a command-line option (``--name-with-dashes``)."""
    if isinstance(default, list):
        return field(default_factory=list, metadata={"help": help, **more})
    return field(default=default, metadata={"help": help, **more})


@dataclass
class TrainConfig:
    family: str
    preset: str = option("default", "jazz: default, deepjazz, tiny; rnnrbm: default, tutorial; folk: default, mit")
    data: list = option([], "file, folder or music21:NAME (repeatable)")
    out: str = option("runs/run", "run folder (default runs/FAMILY-PRESET)")
    epochs: int | None = option(None, "epochs (default: the preset's)")
    batch_size: int | None = option(None, "batch size (default: the preset's)")
    lr: float | None = option(None, "learning rate (default: the preset's)")
    hidden: int | None = option(None, "hidden units (default: the preset's)")
    device: str = option("auto", "auto | cuda | cpu")
    seed: int = option(0, "seed of the run")
    resume: bool = option(False, "continue from the run folder's last checkpoint")
    amp: bool = option(True, "bf16 autocast on GPU")
    max_items: int | None = option(None, "use only the first N pieces")
    patience: int = 6
    valid_fraction: float = 0.1
    extra: dict = field(default_factory=dict)

    @classmethod
    def from_options(cls, family: str, preset: str = "default", *, out=None, data=None, chords=None,
                     extra: dict | None = None, **values) -> "TrainConfig":
        """The config the train options ask for: ``out`` defaults to runs/FAMILY-PRESET, Paths
        become strings, and the extra options go into ``extra``."""
        extra = {"chords": None, **(extra or {})}
        if chords:
            extra["chords"] = str(chords)
        return cls(family=family, preset=preset, data=[str(d) for d in data or []],
                   out=str(out or Path("runs") / f"{family}-{preset}"), extra=extra, **values)


# Options a family reads from TrainConfig.extra rather than from a field of its own.
EXTRA_OPTIONS = {"chords": "chords file for MIDI files without one (jazz)"}


def option_names() -> list[str]:
    """Every train option, as the keyword ``from_options`` takes it (family aside)."""
    return [f.name for f in fields(TrainConfig) if "help" in f.metadata] + list(EXTRA_OPTIONS)


def add_train_options(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """The train options on an argparse parser, from TrainConfig's fields."""
    hints = typing.get_type_hints(TrainConfig)
    for f in fields(TrainConfig):
        if "help" not in f.metadata:
            continue
        flag, helptext = "--" + f.name.replace("_", "-"), f.metadata["help"]
        kind = next((t for t in typing.get_args(hints[f.name]) if t is not type(None)), hints[f.name])
        if f.name == "out":
            parser.add_argument(flag, default=None, help=helptext)
        elif kind is list:
            parser.add_argument(flag, action="append", default=[], help=helptext)
        elif kind is bool:
            parser.add_argument(flag, action=argparse.BooleanOptionalAction if f.default else "store_true",
                                default=f.default, help=helptext)
        else:
            parser.add_argument(flag, type=kind, default=f.default, help=helptext)
    for name, helptext in EXTRA_OPTIONS.items():
        parser.add_argument("--" + name.replace("_", "-"), default=None, help=helptext)
    return parser


def options_of(args: argparse.Namespace) -> dict:
    """The train options from a namespace ``add_train_options`` filled."""
    return {name: getattr(args, name) for name in option_names()}
