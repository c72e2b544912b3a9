"""The RNN-RBM itself: the recurrence, the conditional RBM of each frame, CD-k, the one-step
module the ONNX export traces, and the flat parameter arrays the runtime's .npz holds.

At step t a conditional RBM over the 88-key frame v_t has biases set by the RNN state of the
step before: bv_t = bv + u_{t-1} Wuv, bh_t = bh + u_{t-1} Wuh, and the RNN reads the frame:
u_t = tanh(bu + v_t Wvu + u_{t-1} Wuu). Training minimises (F(v) - F(v_sample)) / T with the
CD-k negative particles v_sample held constant, so the gradient reaches the RNN through the
biases. Knows nothing of data, training or files.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from improvd import ImprovdError
from improvd.encoding import pianoroll as enc


class RnnRbm(nn.Module):
    """Parameters named as in the tutorial; frames are rows (v W, not W v).

    ``cell='rnn'`` is the paper's tanh recurrence; ``cell='gru'`` swaps in a gated recurrence
    (same contract: one state vector u in, u out, biases from u), which keeps a chorale's key
    and phrase position over more steps than a plain tanh unit trains to. ``dropout`` drops units
    of u_{t-1} on their way to the RBM biases while training: JSB's 229 chorales overfit fast."""

    def __init__(self, n_visible: int = enc.UNITS, n_hidden: int = 150, n_recurrent: int = 100, learn_u0: bool = False,
                 cell: str = "rnn", dropout: float = 0.0):
        super().__init__()
        if cell not in ("rnn", "gru"):
            raise ImprovdError(f"no rnnrbm cell {cell!r}: use rnn or gru")
        nv, nh, nr = n_visible, n_hidden, n_recurrent
        self.cell, self.dropout = cell, float(dropout)
        self.W = nn.Parameter(torch.randn(nv, nh) * 0.01)
        self.bv = nn.Parameter(torch.zeros(nv))
        self.bh = nn.Parameter(torch.zeros(nh))
        self.Wuh = nn.Parameter(torch.randn(nr, nh) * 1e-4)
        self.Wuv = nn.Parameter(torch.randn(nr, nv) * 1e-4)
        if cell == "rnn":
            self.Wvu = nn.Parameter(torch.randn(nv, nr) * 1e-4)
            self.Wuu = nn.Parameter(torch.randn(nr, nr) * 1e-4)
            self.bu = nn.Parameter(torch.zeros(nr))
        else:
            self.gru = nn.GRU(nv, nr, batch_first=True)
        self.u0 = nn.Parameter(torch.zeros(nr), requires_grad=learn_u0)

    @property
    def sizes(self) -> tuple[int, int, int]:
        return self.W.shape[0], self.W.shape[1], self.u0.shape[0]

    def step(self, v_t: torch.Tensor, u_prev: torch.Tensor) -> torch.Tensor:
        """One frame of the recurrence: v_t [B, nv], u_{t-1} [B, nr] -> u_t."""
        if self.cell == "rnn":
            return torch.tanh(self.bu + v_t @ self.Wvu + u_prev @ self.Wuu)
        out, _ = self.gru(v_t[:, None], u_prev[None].contiguous())
        return out[:, 0]

    def recurrence(self, v: torch.Tensor, u_init: torch.Tensor | None = None):
        """v [B, T, nv] -> (u [B, T, nr], bv_t [B, T, nv], bh_t [B, T, nh]); the biases of step t
        come from u_{t-1} (u0 for the first step)."""
        B, T, _ = v.shape
        u = self.u0.expand(B, -1) if u_init is None else u_init
        if self.cell == "rnn":
            xs = v @ self.Wvu + self.bu  # the input part of every step in one product
            prev, outs = [], []
            for t in range(T):
                prev.append(u)
                u = torch.tanh(xs[:, t] + u @ self.Wuu)
                outs.append(u)
            U, U_prev = torch.stack(outs, 1), torch.stack(prev, 1)
        else:
            U, _ = self.gru(v, u[None].contiguous())
            U_prev = torch.cat([u[:, None], U[:, :-1]], 1)
        if self.training and self.dropout > 0:
            U_prev = F.dropout(U_prev, self.dropout, True)
        return U, self.bv + U_prev @ self.Wuv, self.bh + U_prev @ self.Wuh

    def free_energy(self, v, bv, bh):
        return -(v * bv).sum(-1) - F.softplus(v @ self.W + bh).sum(-1)

    @torch.no_grad()
    def gibbs(self, v, bv, bh, k: int, generator=None, clamp=None):
        """k block-Gibbs steps from ``v``; returns the last sample and the last p(v|h)."""
        W = self.W
        mean_v = v
        for _ in range(k):
            ph = torch.sigmoid(v @ W + bh)
            h = torch.bernoulli(ph, generator=generator)
            mean_v = torch.sigmoid(h @ W.T + bv)
            v = torch.bernoulli(mean_v, generator=generator)
            if clamp is not None:
                v = torch.maximum(v, clamp)
        return v, mean_v

    def cd_cost(self, v, mask, k: int, generator=None):
        """(F(v) - F(v_sample)) averaged over the real frames, and the tutorial's monitor
        (cross-entropy of the frame against p(v|h) after the chain, per frame)."""
        _, bv, bh = self.recurrence(v)
        v_s, mean_v = self.gibbs(v, bv.detach(), bh.detach(), k, generator)
        n = mask.sum().clamp_min(1)
        cost = ((self.free_energy(v, bv, bh) - self.free_energy(v_s, bv, bh)) * mask).sum() / n
        with torch.no_grad():
            mean_v = mean_v.clamp(1e-7, 1 - 1e-7)
            xent = -(v * mean_v.log() + (1 - v) * (1 - mean_v).log()).sum(-1)
            monitor = (xent * mask).sum() / n
        return cost, monitor


class RnnRbmStep(nn.Module):
    """The graph the daemon runs once per frame: v_t and u_{t-1} in, u_t and the biases of the
    NEXT frame's conditional RBM out."""

    def __init__(self, net: RnnRbm):
        super().__init__()
        self.net = net

    def forward(self, v_t, u_prev):
        n = self.net
        u_t = n.step(v_t, u_prev)
        return u_t, n.bv + u_t @ n.Wuv, n.bh + u_t @ n.Wuh


PARAM_NAMES = ("W", "bv", "bh", "Wuh", "Wuv", "Wvu", "Wuu", "bu", "u0")
GRU_NAMES = {"gru_wih": "gru.weight_ih_l0", "gru_whh": "gru.weight_hh_l0", "gru_bih": "gru.bias_ih_l0",
             "gru_bhh": "gru.bias_hh_l0"}


def param_arrays(net: RnnRbm) -> dict:
    """Every parameter as a float32 array under a flat name (the .npz the runtime reads)."""
    sd = {k: v.detach().cpu().numpy().astype(np.float32) for k, v in net.state_dict().items()}
    out = {k: sd[k] for k in PARAM_NAMES if k in sd}
    out.update({flat: sd[k] for flat, k in GRU_NAMES.items() if k in sd})
    return out


def net_from_arrays(arrays: dict) -> RnnRbm:
    """The inverse of ``param_arrays``: the .npz's flat names back to a state dict."""
    sd = {k: torch.as_tensor(np.asarray(arrays[k], np.float32)) for k in PARAM_NAMES if k in arrays}
    sd.update({k: torch.as_tensor(np.asarray(arrays[flat], np.float32)) for flat, k in GRU_NAMES.items() if flat in arrays})
    return net_from_state_dict(sd)


def net_from_state_dict(sd: dict) -> RnnRbm:
    cell = "gru" if "gru.weight_ih_l0" in sd else "rnn"
    net = RnnRbm(sd["W"].shape[0], sd["W"].shape[1], sd["u0"].shape[0], cell=cell)
    net.load_state_dict(sd)
    return net.eval()
