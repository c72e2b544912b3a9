"""Finding and loading models: a bundled name (``jazz``) or a path to NAME.json / NAME.onnx."""

from __future__ import annotations

import importlib
import os
from pathlib import Path

from improvd.models.card import ModelCard, ModelError

DEFAULT_MODEL = "jazz"

# family -> "module:Class"; imported only when a model of that family is loaded.
FAMILIES = {
    "jazz": "improvd.models.jazz:JazzModel",
    "deepjazz": "improvd.models.deepjazz:DeepJazzModel",
    "rnnrbm": "improvd.models.rnnrbm:RnnRbmModel",
    "folk": "improvd.models.folk:FolkModel",
}


def model_dirs() -> list[Path]:
    dirs = []
    if os.environ.get("IMPROVD_MODELS"):
        dirs += [Path(p) for p in os.environ["IMPROVD_MODELS"].split(os.pathsep)]
    dirs += [Path.cwd() / "models", Path(__file__).resolve().parents[2] / "models",
             Path("/usr/share/improvd/models")]
    unique = []
    for d in dirs:
        if d.resolve() not in [u.resolve() for u in unique]:
            unique.append(d)
    return unique


def bundled_models() -> list[Path]:
    seen, out = set(), []
    for d in model_dirs():
        for p in sorted(d.glob("*.json")) if d.is_dir() else []:
            # a card sits beside its graph; NAME.metrics.json and friends do not
            if "." in p.stem or not p.with_suffix(".onnx").exists():
                continue
            if p.name not in seen:
                seen.add(p.name)
                out.append(p)
    return out


def resolve(name: str) -> Path:
    p = Path(name)
    if p.suffix in (".json", ".onnx") and p.exists():
        return p.with_suffix(".json")
    if p.is_dir() and (p / "model.json").exists():
        return p / "model.json"
    for d in model_dirs():
        cand = d / f"{name}.json"
        if cand.exists():
            return cand
    names = sorted({c.stem for c in bundled_models()})
    raise ModelError(f"model {name!r} not found in {', '.join(str(d) for d in model_dirs() if d.is_dir())}: use one of {names or 'none (train one with `improvd train`)'} or a path to NAME.json")


def load_model(name: str = DEFAULT_MODEL):
    path = resolve(name)
    card = ModelCard.load(path)
    target = FAMILIES.get(card.family)
    if target is None:
        raise ModelError(f"model {path} is of family {card.family!r}, this improvd knows {sorted(FAMILIES)}: upgrade improvd or re-export")
    mod_name, cls_name = target.split(":")
    cls = getattr(importlib.import_module(mod_name), cls_name)
    return cls(card, path)
