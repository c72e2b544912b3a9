"""The model card: what a bundled artifact is, and the checks that refuse a mismatched one.

A card travels as NAME.json beside NAME.onnx. The daemon trusts nothing the card does not
state and nothing the graph does not confirm, so a model exported for another encoding, a
truncated file or a card from another run is refused at start with one line.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

from improvd import ImprovdError

CARD_VERSION = 1


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
        try:
            raw = json.loads(Path(path).read_text())
        except FileNotFoundError:
            raise ModelError(f"model card {path} does not exist: export the model with `improvd export RUN -o models/NAME`") from None
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise ModelError(f"model card {path} is not valid JSON ({e}): re-export the model") from None
        if not isinstance(raw, dict):
            raise ModelError(f"model card {path} is not a JSON object: re-export the model")
        try:
            raw["inputs"] = [TensorSpec(**t) for t in raw["inputs"]]
            raw["outputs"] = [TensorSpec(**t) for t in raw["outputs"]]
            card = cls(**raw)
        except (KeyError, TypeError) as e:
            raise ModelError(f"model card {path} is missing or has unknown fields ({e}): re-export the model") from None
        if card.card_version != CARD_VERSION:
            raise ModelError(f"model card {path} has card_version {card.card_version}, this improvd reads {CARD_VERSION}: re-export the model")
        return card

    def save(self, path: Path) -> None:
        Path(path).write_text(json.dumps(asdict(self), indent=2) + "\n")


def sha256_of(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def check_encoding(card: ModelCard, name: str, version: int, where: Path) -> None:
    enc = card.encoding or {}
    if enc.get("name") != name or enc.get("version") != version:
        raise ModelError(
            f"model {where} was exported for encoding {enc.get('name')} v{enc.get('version')}, "
            f"the {card.family} runtime reads {name} v{version}: retrain or re-export it with this improvd")


def open_session(card: ModelCard, card_path: Path):
    """An onnxruntime session on one thread, its file hashed and its I/O checked against the card."""
    import onnxruntime as ort

    onnx_path = card_path.with_name(card.onnx_file or card_path.stem + ".onnx")
    if not onnx_path.exists():
        raise ModelError(f"model graph {onnx_path} is missing beside its card: copy it or re-export the model")
    digest = sha256_of(onnx_path)
    if card.sha256 and digest != card.sha256:
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
        sess = ort.InferenceSession(str(onnx_path), opts, providers=["CPUExecutionProvider"])
    except Exception as e:  # onnxruntime raises its own Fail/InvalidGraph types
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise ModelError(f"model graph {onnx_path} cannot be loaded ({first[:160]}): re-export the model") from None
    got_in = {i.name: i for i in sess.get_inputs()}
    got_out = {o.name for o in sess.get_outputs()}
    for spec in card.inputs:
        if spec.name not in got_in:
            raise ModelError(f"model {onnx_path} has no input {spec.name!r} that its card names (it has {sorted(got_in)}): card and graph are from different exports")
        shape = got_in[spec.name].shape
        if len(shape) != len(spec.shape) or any(isinstance(a, int) and isinstance(b, int) and a != b for a, b in zip(shape, spec.shape)):
            raise ModelError(f"model {onnx_path} input {spec.name!r} has shape {shape}, its card says {spec.shape}: re-export the model")
    if len(got_in) != len(card.inputs):
        raise ModelError(f"model {onnx_path} has inputs {sorted(got_in)}, its card names {[s.name for s in card.inputs]}: re-export the model")
    for spec in card.outputs:
        if spec.name not in got_out:
            raise ModelError(f"model {onnx_path} has no output {spec.name!r} that its card names: card and graph are from different exports")
    return sess
