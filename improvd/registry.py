"""Which module trains, exports, evaluates and generates for each family.

Plain "module:function" strings, imported only when a command needs them, so the daemon
never imports torch or music21 and a family's offline code can change without touching the CLI.

Signatures:
  train(cfg: training.loop.TrainConfig) -> dict                      summary (metrics.json)
  export(run_dir: Path, out_prefix: Path) -> Path                     the card written
  evaluate(model: str, data: list[str], split: str | None, n: int, seed: int) -> dict
  generate(model: str, out: Path, length: int | None, seed: int | None,
           temperature: float | None, primer: str | None) -> list[Path]   files written
"""

TRAIN = {
    ("jazz", "default"): "training.jazz:train",
    ("jazz", "tiny"): "training.jazz:train",
    ("jazz", "large"): "training.jazz:train",
    ("jazz", "chordrel"): "training.jazz:train",
    ("jazz", "deepjazz"): "training.deepjazz:train",
    ("rnnrbm", "*"): "training.rnnrbm:train",
    ("folk", "*"): "training.folk:train",
}

EXPORT = {
    ("jazz", "default"): "training.jazz:export",
    ("jazz", "tiny"): "training.jazz:export",
    ("jazz", "large"): "training.jazz:export",
    ("jazz", "chordrel"): "training.jazz:export",
    ("jazz", "deepjazz"): "training.deepjazz:export",
    ("rnnrbm", "*"): "training.rnnrbm:export",
    ("folk", "*"): "training.folk:export",
}

# keyed by the model card's family
EVALUATE = {
    "jazz": "improvd.evaluation.jazz:evaluate",
    "deepjazz": "improvd.evaluation.jazz:evaluate",
    "rnnrbm": "training.rnnrbm:evaluate",
    "folk": "training.folk:evaluate",
}

GENERATE = {
    "jazz": "improvd.evaluation.jazz:generate",
    "deepjazz": "training.deepjazz:generate",
    "rnnrbm": "training.rnnrbm:generate",
    "folk": "training.folk:generate",
}


def lookup(table: dict, family: str, preset: str | None = None):
    import importlib

    from improvd import ImprovdError

    key = (family, preset) if preset is not None else family
    target = table.get(key) or (table.get((family, "*")) if preset is not None else None)
    if target is None:
        if preset is None:
            raise ImprovdError(f"no family {family!r} here: use one of {', '.join(sorted(table))}")
        families = sorted({k[0] for k in table})
        if family not in families:
            raise ImprovdError(f"no family {family!r} here: use one of {', '.join(families)}")
        presets = sorted(k[1] for k in table if k[0] == family)
        raise ImprovdError(f"{family} has no preset {preset!r}: use one of {', '.join(presets)}")
    mod, fn = target.split(":")
    try:
        return getattr(importlib.import_module(mod), fn)
    except ModuleNotFoundError as e:
        if e.name in ("torch", "music21", "matplotlib", "onnx"):
            raise ImprovdError(f"{family} {fn} needs {e.name}: pip install -e '.[train]'") from None
        raise
