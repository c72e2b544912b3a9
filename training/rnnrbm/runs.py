"""Trained nets from disk: a run folder's checkpoint, the export to ONNX + .npz + model card, and
an exported model back into torch."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import torch

from improvd import ImprovdError
from improvd.encoding import TICKS_PER_BEAT
from improvd.encoding import pianoroll as enc
from improvd.training.loop import RunDir
from improvd.training.rnnrbm.model import RnnRbm, RnnRbmStep, net_from_arrays, net_from_state_dict, param_arrays


def load_run(run_dir: Path) -> tuple[RnnRbm, dict]:
    rd = RunDir(run_dir)
    state = rd.load("best") or rd.load("last")
    if state is None:
        raise ImprovdError(f"run {run_dir} has no checkpoint (best.pt or last.pt): train first with `improvd train rnnrbm`")
    return net_from_state_dict(state["model"]), state


def export(run_dir: Path, out_prefix: Path, name: str | None = None) -> Path:
    """``out_prefix``.onnx (the recurrence step), .npz (all parameters: the runtime's Gibbs
    sampler reads W, bv, bh and the first frame's biases from it) and .json (the card)."""
    from improvd.models.card import sha256_of
    from improvd.training.export import export_step, specs, write_card

    run_dir, out_prefix = Path(run_dir), Path(out_prefix)
    net, state = load_run(run_dir)
    nv, nh, nr = net.sizes
    ex = {"v_t": torch.zeros(1, nv), "u_prev": torch.zeros(1, nr)}
    outs = ["u_t", "bv_next", "bh_next"]
    export_step(RnnRbmStep(net), ex, outs, out_prefix)
    with torch.no_grad():
        res = RnnRbmStep(net)(**ex)
        arrays = param_arrays(net)
        arrays["bv0"] = (net.bv + net.u0 @ net.Wuv).numpy().astype(np.float32)
        arrays["bh0"] = (net.bh + net.u0 @ net.Wuh).numpy().astype(np.float32)
    npz = out_prefix.with_suffix(".npz")
    np.savez(npz, **arrays)
    describe = state.get("describe", {})
    hist = state.get("history", [])
    best = min(hist, key=lambda r: r.get("valid_loss", math.inf)) if hist else {}
    metrics = {k: v for k, v in best.items() if k.startswith("valid") or k in ("epoch", "train_loss")}
    extra_metrics = run_dir / "eval.json"
    if extra_metrics.exists():
        metrics.update(json.loads(extra_metrics.read_text()))
    write_card(
        out_prefix, family="rnnrbm", encoding=enc.card_encoding(),
        grid={"ticks_per_beat": TICKS_PER_BEAT, "frame_ticks": int(describe.get("frame_ticks", enc.JSB_FRAME_TICKS)),
              "unit": "frame"},
        inputs=specs(ex), outputs=specs(dict(zip(outs, res))), state={"u_prev": "u_t"},
        sampling={"temperature": 1.0, "top_p": 1.0, "gibbs_steps": 25},
        training={"data": describe.get("data"), "preset": state.get("config", {}).get("preset"),
                  "arch": describe.get("arch"), "preset_params": describe.get("preset_params"),
                  "train_pieces": describe.get("train_pieces"), "valid_pieces": describe.get("valid_pieces"),
                  "epochs": len(hist), "best_epoch": best.get("epoch")},
        metrics=metrics,
        files={npz.name: sha256_of(npz)},
    )
    return out_prefix.with_suffix(".json")


def load_any(model: str) -> tuple[RnnRbm, dict]:
    """A run folder (best.pt) or an exported model (name or path to its card)."""
    p = Path(model)
    if p.is_dir() and ((p / "best.pt").exists() or (p / "last.pt").exists()):
        net, state = load_run(p)
        return net, {"frame_ticks": state.get("describe", {}).get("frame_ticks", enc.JSB_FRAME_TICKS), "name": p.name}
    from improvd.models import resolve
    from improvd.models.card import ModelCard, ModelError, sha256_of

    card_path = resolve(model)
    card = ModelCard.load(card_path)
    if card.family != "rnnrbm":
        raise ModelError(f"model {card_path} is of family {card.family!r}, not rnnrbm: pick an rnnrbm model")
    npz = next((card_path.with_name(f) for f in card.files if f.endswith(".npz")), None)
    if npz is None or not npz.exists():
        raise ModelError(f"model {card_path} has no parameter file (.npz) beside it: re-export the model")
    if sha256_of(npz) != card.files[npz.name]:
        raise ModelError(f"parameter file {npz} does not match its card's sha256: re-export the model")
    with np.load(npz) as z:
        net = net_from_arrays(dict(z))
    return net, {"frame_ticks": int(card.grid.get("frame_ticks", enc.JSB_FRAME_TICKS)), "name": card.name,
                 "acc_threshold": (card.metrics or {}).get("acc_marginal_threshold")}
