"""`improvd generate` for an RNN-RBM: frames sampled one by one, written as MIDI and a piano roll."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from improvd import ImprovdError
from improvd.encoding import pianoroll as enc
from improvd.training.rnnrbm.model import RnnRbm, RnnRbmStep
from improvd.training.rnnrbm.runs import load_any


@torch.no_grad()
def sample_sequence(net: RnnRbm, length: int, seed: int = 0, temperature: float = 1.0, k: int = 25,
                    primer: np.ndarray | None = None) -> np.ndarray:
    """Frame by frame: k Gibbs steps from zeros in the conditional RBM (as the tutorial), the
    sample fed back into the recurrence. A primer's frames go in first (teacher forcing)."""
    g = torch.Generator().manual_seed(seed)
    nv, nh, nr = net.sizes
    u = net.u0[None].clone()
    step = RnnRbmStep(net)
    inv_t = 1.0 / max(temperature, 1e-3)
    bv, bh = net.bv + u @ net.Wuv, net.bh + u @ net.Wuh
    if primer is not None:
        for v in torch.as_tensor(primer, dtype=torch.float32):
            u, bv, bh = step(v[None], u)
    out = []
    W = net.W * inv_t
    for _ in range(length):
        v = torch.zeros(1, nv)
        for _ in range(k):
            h = torch.bernoulli(torch.sigmoid(v @ W + bh * inv_t), generator=g)
            v = torch.bernoulli(torch.sigmoid(h @ W.T + bv * inv_t), generator=g)
        out.append(v[0].numpy())
        u, bv, bh = step(v, u)
    return np.stack(out).astype(np.float32)


def generate(model: str, out: Path, length: int | None = None, seed: int | None = None,
             temperature: float | None = None, primer: str | None = None) -> list[Path]:
    net, info = load_any(model)
    ft = info["frame_ticks"]
    prim = None
    if primer:
        items = enc.load(primer, "valid" if primer.endswith(".json") else None, ft)
        if not items:
            raise ImprovdError(f"primer {primer} holds no piece: give a MIDI file or a piano-roll JSON")
        prim = items[0][1][:16]
    roll = sample_sequence(net, length or 200, seed or 0, temperature or 1.0, 25, prim)
    out = Path(out)
    midi = out if out.suffix.lower() in (".mid", ".midi") else out / f"rnnrbm-{info['name']}-seed{seed or 0}.mid"
    midi.parent.mkdir(parents=True, exist_ok=True)
    full = np.concatenate([prim, roll]) if prim is not None else roll
    enc.write_midi(full, midi, ft, tempo=90.0)
    png = midi.with_suffix(".png")
    from improvd.plot import piano_roll
    piano_roll(midi, png, title=f"RNN-RBM sample ({info['name']}, {len(roll)} frames of {ft} ticks, seed {seed or 0})")
    return [midi, png]
