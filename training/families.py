"""The family table: which function trains, exports, evaluates and generates for each family,
and the four jobs the improvd CLI's offline commands call (through improvd.registry.offline).

Targets are "module:function" strings, imported only when a job needs them, so looking one up
loads no torch (the jazz evaluators run on onnxruntime alone), and a family's module can change
without touching the CLI. A train-extra module missing is one line naming the install.

Signatures of the targets:
  train(cfg: TrainConfig) -> dict                                    summary (metrics.json)
  export(run_dir: Path, out_prefix: Path) -> Path                     the card written
  evaluate(model: str, data: list[str], split: str | None, n: int | None, seed: int) -> dict   (n None: the family's default)
  generate(model: str, out: Path, length: int | None, seed: int | None,
           temperature: float | None, primer: str | None) -> list[Path]   files written
  baseline: a class, baseline(card_path) stepping the model's weights in torch eager (improvd bench)
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from pathlib import Path

from improvd import ImprovdError
from improvd.training.config import TrainConfig

TRAIN_EXTRA = ("torch", "music21", "matplotlib", "onnx")


@dataclass(frozen=True)
class Family:
    name: str                     # the model card's family
    train: str | None = None      # "module:function" of each job (None: the family has none)
    export: str | None = None
    evaluate: str | None = None
    generate: str | None = None
    baseline: str | None = None
    command: str = ""             # the family `improvd train` names, when not ``name`` (deepjazz: jazz)
    presets: tuple[str, ...] = ()  # the presets trained here; () any (the family's PRESETS check)

    @property
    def trained_as(self) -> str:
        return self.command or self.name


FAMILIES = (
    Family("jazz", "improvd.training.jazz:train", "improvd.training.jazz:export",
           "improvd.evaluation.jazz:evaluate", "improvd.evaluation.jazz:generate",
           baseline="improvd.training.jazz:TorchJazzBaseline", presets=("default", "tiny", "large", "chordrel")),
    Family("deepjazz", "improvd.training.deepjazz:train", "improvd.training.deepjazz:export",
           "improvd.evaluation.jazz:evaluate", "improvd.training.deepjazz:generate",
           command="jazz", presets=("deepjazz",)),
    Family("rnnrbm", "improvd.training.rnnrbm.train:train", "improvd.training.rnnrbm.runs:export",
           "improvd.training.rnnrbm.evaluate:evaluate", "improvd.training.rnnrbm.generate:generate"),
    Family("folk", "improvd.training.folk:train", "improvd.training.folk:export",
           "improvd.training.folk:evaluate", "improvd.training.folk:generate"),
)


def trained(family: str, preset: str) -> Family:
    """The row that trains ``family`` (as `improvd train` names it) with ``preset``."""
    rows = [f for f in FAMILIES if f.trained_as == family and f.train]
    if not rows:
        names = sorted({f.trained_as for f in FAMILIES if f.train})
        raise ImprovdError(f"no family {family!r} here: use one of {', '.join(names)}")
    row = next((f for f in rows if preset in f.presets or not f.presets), None)
    if row is None:
        presets = sorted(p for f in rows for p in f.presets)
        raise ImprovdError(f"{family} has no preset {preset!r}: use one of {', '.join(presets)}")
    return row


def of_card(family: str, job: str) -> Family:
    """The row of a model card's ``family`` that has ``job``."""
    row = next((f for f in FAMILIES if f.name == family and getattr(f, job)), None)
    if row is None:
        names = sorted(f.name for f in FAMILIES if getattr(f, job))
        raise ImprovdError(f"no family {family!r} here: use one of {', '.join(names)}")
    return row


def load(target: str, what: str):
    """The function a "module:function" string names; a train-extra module missing is one line."""
    module, name = target.split(":")
    try:
        return getattr(importlib.import_module(module), name)
    except ModuleNotFoundError as e:
        if e.name in TRAIN_EXTRA:
            raise ImprovdError(f"{what} needs {e.name}: pip install -e '.[train]'") from None
        raise


# -- the jobs of the improvd CLI -------------------------------------------------------------------
def train(family: str, preset: str = "default", **options) -> dict:
    """Train ``family`` with ``preset``; ``options``: the train options (config.option_names)."""
    run = load(trained(family, preset).train, f"{family} train")
    return run(TrainConfig.from_options(family, preset, **options))


def export(run_dir: Path, out_prefix: Path) -> Path:
    """Export the run folder with the family and preset its checkpoint was trained as."""
    load_checkpoint = load("improvd.training.loop:load_checkpoint", "export")
    run_dir = Path(run_dir)
    checkpoint = run_dir / "best.pt" if (run_dir / "best.pt").exists() else run_dir / "last.pt"
    if not checkpoint.exists():
        raise ImprovdError(f"run {run_dir} has no checkpoint (best.pt or last.pt): train first with `improvd train`")
    cfg = load_checkpoint(checkpoint).get("config", {})
    family, preset = cfg.get("family", "?"), cfg.get("preset", "default")
    return load(trained(family, preset).export, f"{family} export")(run_dir, out_prefix)


def evaluate(family: str, model: str, data: list[str], split: str | None, n: int | None, seed: int) -> dict:
    """Evaluate ``model``, whose card names ``family``."""
    return load(of_card(family, "evaluate").evaluate, f"{family} evaluate")(model, data, split, n, seed)


def generate(family: str, model: str, out: Path, length: int | None, seed: int | None,
             temperature: float | None, primer: str | None) -> list[Path]:
    """Generate offline from ``model``, whose card names ``family``."""
    return load(of_card(family, "generate").generate, f"{family} generate")(model, out, length, seed, temperature, primer)


def baseline(family: str):
    """The torch eager counterpart of a runtime model of ``family`` (None: the family has none),
    for improvd bench's step-cost comparison."""
    row = next((f for f in FAMILIES if f.name == family and f.baseline), None)
    return load(row.baseline, f"{family} baseline") if row else None
