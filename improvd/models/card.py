"""The model card: what a bundled artifact is, and the checks that refuse a mismatched one.

A card travels as NAME.json beside NAME.onnx. The daemon trusts nothing the card does not
state and nothing the graph does not confirm, so a model exported for another encoding, a
truncated file or a card from another run is refused at start with one line.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
import stat
from dataclasses import asdict, dataclass, field
from pathlib import Path

from improvd import ImprovdError, file_info

CARD_VERSION = 1
MAX_CARD_BYTES = 8 << 20  # the largest bundled card (deepjazz's value list) is 13 KB
DTYPES = ("float32", "int64")
_SHA256 = re.compile(r"[0-9a-f]{64}")


class ModelError(ImprovdError):
    pass


@dataclass
class TensorSpec:
    name: str
    shape: list  # ints, or strings for dynamic axes
    dtype: str  # "float32" | "int64"


@dataclass
class ModelCard:
    name: str
    family: str  # jazz | deepjazz | rnnrbm | folk
    encoding: dict  # {"name": ..., "version": ..., plus family specifics (vocabularies)}
    grid: dict  # {"ticks_per_beat": 12, "frame_ticks": ...}
    inputs: list[TensorSpec]
    outputs: list[TensorSpec]
    state: dict  # state input name -> output name that feeds it back
    sampling: dict = field(default_factory=lambda: {"temperature": 1.0, "top_p": 1.0})
    training: dict = field(default_factory=dict)
    metrics: dict = field(default_factory=dict)
    files: dict = field(default_factory=dict)  # extra artifact name -> sha256
    onnx_file: str = ""
    sha256: str = ""
    card_version: int = CARD_VERSION

    @classmethod
    def load(cls, path: Path) -> "ModelCard":
        """The card at ``path``, every field of the right type and shape, or one ModelError line:
        a card is data from disk, so nothing in it reaches a family's code unchecked."""
        raw = _read_json(Path(path))
        if not isinstance(raw, dict):
            raise ModelError(f"model card {path} is not a JSON object: re-export the model")
        try:
            raw["inputs"] = [TensorSpec(**t) for t in _listed(raw["inputs"], "inputs", path)]
            raw["outputs"] = [TensorSpec(**t) for t in _listed(raw["outputs"], "outputs", path)]
            card = cls(**raw)
        except (KeyError, TypeError) as e:
            raise ModelError(f"model card {path} is missing or has unknown fields ({e}): re-export the model") from None
        if type(card.card_version) is not int or card.card_version != CARD_VERSION:
            raise ModelError(f"model card {path} has card_version {card.card_version!r}, this improvd reads {CARD_VERSION}: re-export the model")
        _check_fields(card, Path(path))
        return card

    def save(self, path: Path) -> None:
        Path(path).write_text(json.dumps(asdict(self), indent=2) + "\n")


def _read_json(path: Path):
    info = file_info(path, "model card", ModelError, missing="export the model with `improvd export RUN -o models/NAME`")
    if not stat.S_ISREG(info.st_mode) or info.st_size > MAX_CARD_BYTES:
        raise ModelError(f"model card {path} is not a card (not a regular file of at most {MAX_CARD_BYTES >> 20} MB): pass NAME.json beside NAME.onnx")
    try:
        return json.loads(path.read_bytes().decode("utf-8"))
    except OSError as e:
        raise ModelError(f"model card {path} cannot be read ({e.strerror}): check its permissions") from None
    except (json.JSONDecodeError, UnicodeDecodeError, RecursionError) as e:
        why = str(e).splitlines()[0][:80] if str(e) else type(e).__name__
        raise ModelError(f"model card {path} is not valid JSON ({why}): re-export the model") from None


def _listed(value, what: str, path) -> list:
    if not isinstance(value, list) or not value or not all(isinstance(t, dict) for t in value):
        raise ModelError(f"model card {path}: {what} must be a non-empty list of {{name, shape, dtype}} tables: re-export the model")
    return value


def plain_file_name(name) -> bool:
    """A name the card may give a file beside it: no folder, no '..', nothing absolute, so a
    card cannot point the daemon at /etc/passwd or outside its model folder."""
    return (isinstance(name, str) and 0 < len(name) <= 255 and name not in (".", "..")
            and not any(c in name for c in "/\\\0") and name.isprintable())


def _check_fields(card: "ModelCard", path: Path) -> None:
    """Types, shapes and names of every field the runtime reads; one line naming the first bad one."""
    def bad(what: str) -> ModelError:
        return ModelError(f"model card {path}: {what}: re-export the model")

    for key in ("name", "family"):
        value = getattr(card, key)
        if not isinstance(value, str) or not value or len(value) > 200:
            raise bad(f"{key} must be a short string, not {str(value)[:40]!r}")
    for key in ("encoding", "grid", "state", "sampling", "training", "metrics", "files"):
        if not isinstance(getattr(card, key), dict):
            raise bad(f"{key} must be a table")
    if not isinstance(card.sha256, str) or not _SHA256.fullmatch(card.sha256):
        # an empty sha256 used to switch the integrity check off: a graph nobody vouches for
        raise bad("sha256 must be the 64 hex digits of the graph's SHA-256 (it is what proves the graph is the one exported)")
    if not isinstance(card.onnx_file, str) or (card.onnx_file and not plain_file_name(card.onnx_file)):
        raise bad(f"onnx_file {str(card.onnx_file)[:60]!r} must be a file name beside the card, no folders")
    for name, digest in card.files.items():
        if not plain_file_name(name):
            raise bad(f"files names {name[:60]!r}, which is not a file name beside the card")
        if not isinstance(digest, str) or not _SHA256.fullmatch(digest):
            raise bad(f"files[{name!r}] must be the 64 hex digits of the file's SHA-256")
    for spec in card.inputs + card.outputs:
        if not isinstance(spec.name, str) or not spec.name:
            raise bad("every input and output needs a name")
        if not isinstance(spec.shape, list) or not all(
                (type(d) is int and d > 0) or (isinstance(d, str) and d) for d in spec.shape):
            raise bad(f"{spec.name} has shape {str(spec.shape)[:40]}, not a list of positive sizes or axis names")
        if spec.dtype not in DTYPES:
            raise bad(f"{spec.name} has dtype {str(spec.dtype)[:20]!r}: use one of {', '.join(DTYPES)}")
    inputs, outputs = {s.name for s in card.inputs}, {s.name for s in card.outputs}
    for key, value in card.state.items():
        if key not in inputs or value not in outputs:
            raise bad(f"state {key!r} -> {str(value)[:40]!r} must map an input to the output that feeds it back")
    for key, value in card.grid.items():
        if key in ("ticks_per_beat", "beats_per_bar", "frame_ticks", "duration_grid_ticks") and not (type(value) is int and 0 < value <= 10_000):
            raise bad(f"grid.{key} = {str(value)[:20]} must be a positive whole number")
    for key, value in card.sampling.items():
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
            raise bad(f"sampling.{key} = {str(value)[:20]} must be a finite number >= 0")
    if not 0 <= card.sampling.get("temperature", 1.0) <= 5 or not 0 < card.sampling.get("top_p", 1.0) <= 1:
        raise bad("sampling.temperature must lie in 0..5 and sampling.top_p in (0, 1]")


def sha256_of(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def check_encoding(card: ModelCard, name: str, version: int, where: Path, expect: dict | None = None) -> None:
    """The encoding the card names is the one this runtime reads; ``expect`` holds vocabulary
    fields the card copies (pitch range, durations...), which must agree with the runtime's too."""
    enc = card.encoding or {}
    if enc.get("name") != name or enc.get("version") != version:
        raise ModelError(
            f"model {where} was exported for encoding {str(enc.get('name'))[:40]} v{str(enc.get('version'))[:10]}, "
            f"the {card.family} runtime reads {name} v{version}: retrain or re-export it with this improvd")
    for key, value in (expect or {}).items():
        if key in enc and enc[key] != value:
            raise ModelError(f"model {where} has encoding.{key} {str(enc[key])[:40]}, {name} v{version} has {str(value)[:40]}: "
                             f"the card was edited or is from another improvd; re-export the model")


def open_session(card: ModelCard, card_path: Path):
    """An onnxruntime session on one thread, its file hashed and its I/O checked against the card."""
    from improvd.models import runtime

    ort = runtime.ort()

    onnx_path = card_path.with_name(card.onnx_file or card_path.stem + ".onnx")
    if not onnx_path.is_file():
        raise ModelError(f"model graph {onnx_path} is missing beside its card: copy it or re-export the model")
    try:
        digest = sha256_of(onnx_path)
    except OSError as e:
        raise ModelError(f"model graph {onnx_path} cannot be read ({e.strerror}): check its permissions") from None
    if digest != card.sha256:
        raise ModelError(f"model graph {onnx_path} does not match its card (sha256 {digest[:12]} vs {card.sha256[:12]}): the file is corrupt or from another run; re-export it")
    opts = ort.SessionOptions()
    # One step of a small LSTM: thread hand-offs cost more than they save, and the daemon
    # must leave the other core to the MIDI threads.
    opts.intra_op_num_threads = 1
    opts.inter_op_num_threads = 1
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    opts.log_severity_level = 3
    try:
        sess = ort.InferenceSession(str(onnx_path), opts, providers=runtime.session_providers())
    except Exception as e:  # onnxruntime raises its own Fail/InvalidGraph types
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise ModelError(f"model graph {onnx_path} cannot be loaded ({first[:160]}): re-export the model") from None
    runtime.check_session(sess, onnx_path.name)
    got_in = {i.name: i for i in sess.get_inputs()}
    got_out = {o.name for o in sess.get_outputs()}
    for spec in card.inputs:
        if spec.name not in got_in:
            raise ModelError(f"model {onnx_path} has no input {spec.name!r} that its card names (it has {sorted(got_in)}): card and graph are from different exports")
        shape = got_in[spec.name].shape
        # an axis is fixed (the same size) or dynamic (named) in both: a card that fixes an axis
        # the graph leaves free is from another export as surely as one with another size
        if len(shape) != len(spec.shape) or any(isinstance(a, int) != isinstance(b, int) or (isinstance(a, int) and a != b)
                                                for a, b in zip(shape, spec.shape)):
            raise ModelError(f"model {onnx_path} input {spec.name!r} has shape {shape}, its card says {spec.shape}: re-export the model")
    if len(got_in) != len(card.inputs):
        raise ModelError(f"model {onnx_path} has inputs {sorted(got_in)}, its card names {[s.name for s in card.inputs]}: re-export the model")
    for spec in card.outputs:
        if spec.name not in got_out:
            raise ModelError(f"model {onnx_path} has no output {spec.name!r} that its card names: card and graph are from different exports")
    return sess
