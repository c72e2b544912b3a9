"""Finding and loading models: a bundled name (``jazz``) or a path to NAME.json / NAME.onnx."""

from __future__ import annotations

import importlib
import importlib.util
import os
from pathlib import Path

from improvd import ImprovdError
from improvd.models.card import ModelCard, ModelError

DEFAULT_MODEL = "jazz"

# family -> "module:Class"; imported only when a model of that family is loaded.
FAMILIES = {
    "jazz": "improvd.models.jazz:JazzModel",
    "deepjazz": "improvd.models.deepjazz:DeepJazzModel",
    "rnnrbm": "improvd.models.rnnrbm:RnnRbmModel",
    "folk": "improvd.models.folk:FolkModel",
}


MODEL_DIR_ENV = "IMPROVD_MODEL_DIR"  # not IMPROVD_MODELS: that is the config key of --also


def _bundled_dir() -> Path | None:
    """Where the wheel put models/ (the package improvd.bundled); None in a broken install."""
    spec = importlib.util.find_spec("improvd.bundled")
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(list(spec.submodule_search_locations)[0])


_chosen_dirs: list[Path] = []


def use_model_dir(value: str | None, what: str = "--model-dir") -> None:
    """Set once at start from --model-dir / the config key model_dir (a path list), so every
    later lookup in the process searches it first: --also models, a SIGHUP reload, bench."""
    dirs = [Path(p).expanduser() for p in (value or "").split(os.pathsep) if p]
    for d in dirs:
        if not d.is_dir():
            raise ModelError(f"model folder {d} does not exist: pass a folder holding NAME.json + NAME.onnx to {what}")
    _chosen_dirs[:] = dirs


def model_dirs(extra: str | os.PathLike | None = None) -> list[Path]:
    """Folders searched for NAME.json, first match wins: --model-dir, $IMPROVD_MODEL_DIR (a
    path list), ./models, the models installed with improvd, /usr/share/improvd/models."""
    dirs = ([Path(extra)] if extra else []) + list(_chosen_dirs)
    if os.environ.get(MODEL_DIR_ENV):
        dirs += [Path(p) for p in os.environ[MODEL_DIR_ENV].split(os.pathsep) if p]
    dirs += [Path.cwd() / "models"]
    bundled = _bundled_dir()
    if bundled is not None:
        dirs.append(bundled)
    dirs.append(Path("/usr/share/improvd/models"))
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
    try:
        return _resolve(name)
    except OSError as e:  # a name too long for the file system, a folder without permission
        raise ModelError(f"model {str(name)[:60]!r} cannot be looked up ({e.strerror}): use a bundled name such as jazz or a path to NAME.json") from None


def _resolve(name: str) -> Path:
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
    """The model ``name`` names, ready to play, or one ModelError line: a corrupt card or graph
    must never reach the stage as a traceback."""
    path = resolve(name)
    card = ModelCard.load(path)
    target = FAMILIES.get(card.family)
    if target is None:
        raise ModelError(f"model {path} is of family {card.family!r}, this improvd knows {sorted(FAMILIES)}: upgrade improvd or re-export")
    mod_name, cls_name = target.split(":")
    cls = getattr(importlib.import_module(mod_name), cls_name)
    try:
        return cls(card, path)
    except ImprovdError:
        raise
    except Exception as e:  # what a graph or parameter file the checks let through does at its first step
        why = (str(e).strip().splitlines() or [type(e).__name__])[0][:120]
        raise ModelError(f"model {path} cannot run ({type(e).__name__}: {why}): re-export the model") from None


def check_mode(model, mode: str) -> None:
    """Refuse a mode the model cannot play, before anything changes: the engine does at start,
    and a SIGHUP reload (or a switch of model) must too, instead of going silent."""
    if mode not in model.modes:
        raise ModelError(f"model {model.card.name} ({model.family}) cannot play mode {mode}: use one of {', '.join(model.modes)}")
