"""ONNX export and model cards, shared by the families: one step graph, state as I/O."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import torch

from improvd.models.card import ModelCard, TensorSpec, sha256_of


def export_step(module: torch.nn.Module, example: dict, outputs: list[str], out_prefix: Path,
                dynamic: dict | None = None) -> Path:
    """Trace ``module(**example)`` once into ``out_prefix.onnx`` (opset 17, legacy exporter:
    it maps nn.LSTM onto the ONNX LSTM op, which onnxruntime runs as one fused kernel)."""
    out_prefix = Path(out_prefix)
    out_prefix.parent.mkdir(parents=True, exist_ok=True)
    path = out_prefix.with_suffix(".onnx")
    module = module.eval().cpu()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(module, tuple(example.values()), str(path), input_names=list(example),
                          output_names=outputs, opset_version=17, dynamo=False,
                          dynamic_axes=dynamic or None)
    return path


def batch_axes(example: dict, state: tuple = ("h", "c")) -> dict:
    """Dynamic axes that let one graph step several lines at once (the voice scores its
    candidate fragments side by side): axis 0 of each input, axis 1 of the (layers, batch,
    hidden) state."""
    return {name: {1 if name in state else 0: "batch"} for name in example}


def rebatch(onnx_path: Path, card_path: Path, example_shapes: dict, output_shapes: dict) -> None:
    """Give an exported graph a dynamic batch in place (the weights and every number it computes
    stay as they were) and its card the new hash: for graphs exported with a fixed batch of 1.
    Shapes name the batch axis "batch", e.g. {"h": [2, "batch", 384]}."""
    import onnx
    from onnx.tools import update_model_dims

    model = update_model_dims.update_inputs_outputs_dims(onnx.load(str(onnx_path)), example_shapes, output_shapes)
    onnx.checker.check_model(model)
    onnx.save(model, str(onnx_path))
    card = ModelCard.load(card_path)
    card.sha256 = sha256_of(onnx_path)
    shapes = example_shapes | output_shapes
    for spec in card.inputs + card.outputs:
        if spec.name in shapes:
            spec.shape = list(shapes[spec.name])
    card.save(card_path)


def specs(arrays: dict, dynamic: dict | None = None) -> list[TensorSpec]:
    """The card's view of each tensor; an axis named in ``dynamic`` (export's dynamic_axes) is
    written as its name, as the graph has it."""
    out = []
    for name, a in arrays.items():
        a = a.detach().cpu().numpy() if isinstance(a, torch.Tensor) else np.asarray(a)
        shape: list = list(a.shape)
        for axis, label in ((dynamic or {}).get(name) or {}).items():
            shape[axis] = label
        out.append(TensorSpec(name, shape, str(a.dtype)))
    return out


def write_card(out_prefix: Path, **fields) -> ModelCard:
    out_prefix = Path(out_prefix)
    onnx = out_prefix.with_suffix(".onnx")
    card = ModelCard(name=out_prefix.name, onnx_file=onnx.name, sha256=sha256_of(onnx), **fields)
    card.save(out_prefix.with_suffix(".json"))
    return card
