"""The RNN-RBM of Boulanger-Lewandowski, Bengio & Vincent (ICML 2012), as the Theano tutorial
builds it, in torch: model, CD-k training, AIS evaluation, ONNX export, sampling.

At step t a conditional RBM over the 88-key frame v_t has biases set by the RNN state of the
step before: bv_t = bv + u_{t-1} Wuv, bh_t = bh + u_{t-1} Wuh, and the RNN reads the frame:
u_t = tanh(bu + v_t Wvu + u_{t-1} Wuu). Training minimises (F(v) - F(v_sample)) / T with the
CD-k negative particles v_sample held constant, so the gradient reaches the RNN through the
biases. Two presets: 'tutorial' is the tutorial exactly (one chunk of <= 100 steps per SGD
update); 'default' batches many sequences on the GPU, pre-trains the RBM on shuffled frames
(the paper's initialisation), uses Adam and stops early on the validation log-likelihood.

Log-likelihoods need the partition function of every conditional RBM: annealed importance
sampling (Salakhutdinov & Murray 2008) from the RBM with its weights switched off, one
independent AIS run per frame, all frames in one batch.
"""

from __future__ import annotations

import json
import math
import random
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from improvd import ImprovdError
from improvd.encoding import TICKS_PER_BEAT
from improvd.encoding import pianoroll as enc
from training.loop import RunDir, TrainConfig, fit, pick_device, seed_everything, update

PRESETS = {
    # exactly the Theano tutorial: SGD, one chunk of at most 100 steps per update, CD-15, 200 epochs
    "tutorial": dict(hidden=150, recurrent=100, optimizer="sgd", lr=1e-3, k=15, chunk=100, epochs=200,
                     batch_size=1, pretrain_epochs=0, learn_u0=False, weight_decay=0.0, patience=0,
                     transpose=0, clip=0.0, eval_every=10, cell="rnn", dropout=0.0, plateau=0),
    # better trained: batched, Adam at 3e-3 halved after 4 evaluations without a new best, RBM
    # pre-training, early stopping on valid LL. Chosen over 22 runs on JSB valid (sweeps
    # 1-3, see SWEEP): at 1e-3 it stalls near -6.74; above 3e-3 the LL rises but ACC falls.
    "default": dict(hidden=150, recurrent=100, optimizer="adam", lr=3e-3, k=15, chunk=100, epochs=2000,
                    batch_size=16, pretrain_epochs=40, learn_u0=True, weight_decay=1e-4, patience=20,
                    transpose=0, clip=1.0, eval_every=1, cell="rnn", dropout=0.0, plateau=4),
    # CPU smoke tests
    "tiny": dict(hidden=16, recurrent=8, optimizer="adam", lr=3e-3, k=1, chunk=32, epochs=1, batch_size=8,
                 pretrain_epochs=0, learn_u0=True, weight_decay=0.0, patience=0, transpose=0, clip=1.0, eval_every=1,
                 cell="rnn", dropout=0.0, plateau=0),
}

# The paper's Table 1, JSB chorales (test split). LL per time step; ACC: frame-level accuracy.
# LL values as SEEDS.md quotes them; ACC 33.12 as the issue quotes it. Neither could be checked
# against the paper's own text (not in the reference index searched); correct them if they differ.
PAPER_JSB = [
    ("paper: NADE (test)", -7.19, None),
    ("paper: RNN-RBM (test)", -6.27, 33.12),
    ("paper: RNN-NADE (test)", -5.56, None),
]

# AIS settings: per-epoch model selection vs the reported figures.
QUICK_AIS = dict(chains=16, betas=300)
FULL_AIS = dict(chains=100, betas=2000)


# -- the model ---------------------------------------------------------------------------------
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


# -- annealed importance sampling --------------------------------------------------------------
def beta_schedule(n: int) -> torch.Tensor:
    """More temperatures near beta = 1, where the distribution changes fastest."""
    a, b = max(1, n // 10), max(1, (3 * n) // 10)
    c = max(1, n - a - b)
    return torch.cat([torch.linspace(0, 0.5, a + 1)[:-1], torch.linspace(0.5, 0.9, b + 1)[:-1], torch.linspace(0.9, 1.0, c)])


@torch.no_grad()
def ais_log_z(W, bv, bh, chains: int = 100, betas: int = 1000, generator=None, block: int = 200_000) -> torch.Tensor:
    """log Z of N RBMs sharing W ([nv, nh]) with biases bv [N, nv], bh [N, nh].

    Base: the same RBM with W and bh switched off (p_0(v) = prod sigmoid(bv)), whose log Z is
    sum softplus(bv) + nh log 2. Intermediate p_beta(v, h) ~ exp(bv.v + beta h.(vW + bh)), so
    log f_beta(v) = bv.v + sum_j softplus(beta (vW + bh)_j); one Gibbs sweep per temperature.
    E[Z_hat] = Z, so log Z_hat is biased low (the LL high) by a margin that shrinks with more
    temperatures and chains."""
    N, nv = bv.shape
    nh = W.shape[1]
    bs = beta_schedule(betas).to(bv.device)
    out = torch.empty(N, device=bv.device)
    per = max(1, block // chains)
    for s in range(0, N, per):
        b_v, b_h = bv[s:s + per], bh[s:s + per]
        n = b_v.shape[0]
        bvx = b_v[:, None, :].expand(n, chains, nv)
        bhx = b_h[:, None, :].expand(n, chains, nh)
        v = torch.bernoulli(torch.sigmoid(bvx), generator=generator)
        logw = torch.zeros(n, chains, device=bv.device)
        for i in range(1, len(bs)):
            x = v @ W + bhx
            logw += (F.softplus(bs[i] * x) - F.softplus(bs[i - 1] * x)).sum(-1)
            if i < len(bs) - 1:
                h = torch.bernoulli(torch.sigmoid(bs[i] * x), generator=generator)
                v = torch.bernoulli(torch.sigmoid(bvx + bs[i] * (h @ W.T)), generator=generator)
        log_z0 = F.softplus(b_v).sum(-1) + nh * math.log(2.0)
        out[s:s + n] = log_z0 + torch.logsumexp(logw, 1) - math.log(chains)
    return out


@torch.no_grad()
def conditional_biases(net: RnnRbm, rolls: list, device) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """All frames of all pieces with the biases of their conditional RBMs (true past)."""
    vs, bvs, bhs = [], [], []
    for r in rolls:
        v = torch.as_tensor(r, dtype=torch.float32, device=device)[None]
        _, bv, bh = net.recurrence(v)
        vs.append(v[0])
        bvs.append(bv[0])
        bhs.append(bh[0])
    return torch.cat(vs), torch.cat(bvs), torch.cat(bhs)


@torch.no_grad()
def log_likelihood(net: RnnRbm, rolls: list, device, chains: int, betas: int, seed: int = 0) -> dict:
    """Mean log p(v_t | v_<t) per time step: -F_t(v_t) - log Z_t over every frame."""
    v, bv, bh = conditional_biases(net, rolls, device)
    g = torch.Generator(device=device).manual_seed(seed)
    log_z = ais_log_z(net.W, bv, bh, chains, betas, g)
    ll = -net.free_energy(v, bv, bh) - log_z
    return {"ll_per_step": float(ll.mean()), "frames": int(v.shape[0]), "ais_chains": chains, "ais_betas": betas}


@torch.no_grad()
def mean_field(net: RnnRbm, bv, bh, iters: int = 25):
    """Deterministic fixed point of p(v|h), p(h|v) from zeros: the mean-field prediction."""
    v = torch.zeros_like(bv)
    for _ in range(iters):
        v = torch.sigmoid(torch.sigmoid(v @ net.W + bh) @ net.W.T + bv)
    return v


@torch.no_grad()
def frame_accuracy(net: RnnRbm, rolls: list, device, samples: int = 10, k: int = 25, mode: str = "gibbs", seed: int = 0) -> dict:
    """Bay et al. (2009) accuracy TP / (TP + FP + FN), counts summed over all frames, each frame
    predicted from the TRUE past. 'gibbs': expected counts over ``samples`` Gibbs samples of k
    steps from zeros (the tutorial's generator); 'meanfield': mean-field marginals > 0.5."""
    v, bv, bh = conditional_biases(net, rolls, device)
    if mode == "meanfield":
        pred = (mean_field(net, bv, bh, k) > 0.5).float()[None]
    else:
        g = torch.Generator(device=device).manual_seed(seed)
        preds = []
        for _ in range(samples):
            p, _ = net.gibbs(torch.zeros_like(bv), bv, bh, k, g)
            preds.append(p)
        pred = torch.stack(preds)
    return {"acc": bay_accuracy(pred, v[None]), "acc_mode": mode, "acc_samples": pred.shape[0], "acc_gibbs_k": k}


@torch.no_grad()
def gibbs_marginals(net: RnnRbm, bv, bh, chains: int = 100, k: int = 100, seed: int = 0, block: int = 400_000):
    """p(v_i = 1 | past) per frame, estimated by ``chains`` Gibbs chains of ``k`` sweeps from
    zeros, p(v|h) averaged over the chains and the last half of the sweeps (Rao-Blackwellised:
    smoother than counting samples). Chains started from the previous true frame instead scored
    lower (JSB valid, 2026-11-24): they stay near it."""
    g = torch.Generator(device=bv.device).manual_seed(seed)
    N, nv = bv.shape
    out = torch.empty_like(bv)
    per = max(1, block // chains)
    for s in range(0, N, per):
        b_v = bv[s:s + per, None].expand(-1, chains, nv)
        b_h = bh[s:s + per, None].expand(-1, chains, -1)
        v = torch.zeros_like(b_v)
        acc = torch.zeros_like(b_v[:, 0])
        for i in range(k):
            h = torch.bernoulli(torch.sigmoid(v @ net.W + b_h), generator=g)
            pv = torch.sigmoid(h @ net.W.T + b_v)
            v = torch.bernoulli(pv, generator=g)
            if i >= k // 2:
                acc += pv.mean(1)
        out[s:s + per] = acc / (k - k // 2)
    return out


@torch.no_grad()
def marginal_accuracy(net: RnnRbm, rolls: list, device, threshold: float | None = None, tune_rolls: list | None = None,
                      chains: int = 100, k: int = 100, seed: int = 0) -> dict:
    """ACC of the frame whose keys have Gibbs marginal >= threshold: the model's best single guess
    rather than one random draw. The threshold is the one that maximises ACC on ``tune_rolls``
    (training pieces: never the pieces scored), 0.5 when none are given."""
    if threshold is None and tune_rolls:
        v, bv, bh = conditional_biases(net, tune_rolls, device)
        m = gibbs_marginals(net, bv, bh, chains, k, seed + 1)
        grid = [x / 100 for x in range(5, 80, 5)]
        threshold = max(grid, key=lambda t: bay_accuracy((m >= t).float(), v))
    threshold = 0.5 if threshold is None else threshold
    v, bv, bh = conditional_biases(net, rolls, device)
    m = gibbs_marginals(net, bv, bh, chains, k, seed)
    return {"acc_marginal": bay_accuracy((m >= threshold).float(), v), "acc_marginal_threshold": threshold,
            "acc_marginal_chains": chains, "acc_marginal_k": k}


def bay_accuracy(pred: torch.Tensor, truth: torch.Tensor) -> float:
    """TP / (TP + FP + FN) with the counts summed over every frame (and sample) first."""
    pred, truth = torch.as_tensor(pred, dtype=torch.float32), torch.as_tensor(truth, dtype=torch.float32)
    tp = float((pred * truth).sum())
    fp = float((pred * (1 - truth)).sum())
    fn = float(((1 - pred) * truth).sum())
    return tp / max(tp + fp + fn, 1e-9)


# -- data ----------------------------------------------------------------------------------------
def _rolls(items) -> list:
    return [r for _, r in items if len(r) > 1]


def load_splits(cfg: TrainConfig) -> tuple[list, list, list, int]:
    """(train rolls, valid rolls, data names, frame_ticks). JSON: its own train/valid splits;
    folders: a train/ and valid/ inside, else a split by piece."""
    from training.corpora import shared
    from training.loop import split_by_piece

    data = list(cfg.data) or [str(shared("polyphonic/jsb_chorales.trainvalid.json"))]
    ft = int(cfg.extra.get("frame_ticks") or enc.default_frame_ticks(data[0]))
    train, valid = [], []
    for spec in data:
        p = Path(spec)
        has_splits = p.suffix == ".json" or (p.is_dir() and (p / "train").is_dir() and (p / "valid").is_dir())
        if has_splits:
            train += enc.load(spec, "train", ft, cfg.max_items)
            valid += enc.load(spec, "valid", ft)
        else:
            items = enc.load(spec, None, ft, cfg.max_items)
            tr, va = split_by_piece(items, cfg.valid_fraction, cfg.seed)
            train += tr
            valid += va
    return _rolls(train), _rolls(valid), data, ft


def chunks(rolls: list, length: int) -> list:
    return [r[i:i + length] for r in rolls for i in range(0, len(r), length) if len(r[i:i + length]) > 1]


def collate(seqs: list, transpose: int, rng: random.Random) -> tuple[torch.Tensor, torch.Tensor]:
    T = max(len(s) for s in seqs)
    v = np.zeros((len(seqs), T, enc.UNITS), np.float32)
    m = np.zeros((len(seqs), T), np.float32)
    for i, s in enumerate(seqs):
        if transpose:
            on = np.flatnonzero(s.any(0))
            lo, hi = -min(transpose, int(on.min())), min(transpose, enc.UNITS - 1 - int(on.max()))
            s = np.roll(s, rng.randint(lo, hi), axis=1) if hi >= lo else s
        v[i, :len(s)] = s
        m[i, :len(s)] = 1
    return torch.from_numpy(v), torch.from_numpy(m)


# -- training --------------------------------------------------------------------------------------
def preset(cfg: TrainConfig) -> dict:
    if cfg.preset not in PRESETS:
        raise ImprovdError(f"no rnnrbm preset {cfg.preset!r}: use one of {', '.join(PRESETS)}")
    p = dict(PRESETS[cfg.preset])
    for k in ("epochs", "batch_size", "lr", "hidden"):
        if getattr(cfg, k) is not None:
            p[k] = getattr(cfg, k)
    for k, val in cfg.extra.items():
        if k in p:
            p[k] = type(p[k])(val) if p[k] is not None else val
    return p


def pretrain_rbm(net: RnnRbm, rolls: list, p: dict, device, gen) -> list:
    """The paper's initialisation: W, bv, bh as one RBM on all frames, fully shuffled."""
    frames = torch.as_tensor(np.concatenate(rolls), device=device)
    with torch.no_grad():  # visible biases at the log-odds of each key's frequency
        q = frames.mean(0).clamp(1e-3, 1 - 1e-3)
        net.bv.copy_(torch.log(q / (1 - q)))
    opt = torch.optim.Adam([net.W, net.bv, net.bh], lr=p["lr"])
    hist = []
    for ep in range(p["pretrain_epochs"]):
        perm = torch.randperm(len(frames), device=device, generator=gen)
        costs = []
        for i in range(0, len(frames), 100):
            v = frames[perm[i:i + 100]]
            vs, _ = net.gibbs(v, net.bv.detach(), net.bh.detach(), p["k"], gen)
            cost = (net.free_energy(v, net.bv, net.bh) - net.free_energy(vs, net.bv, net.bh)).mean()
            update(opt, cost)
            costs.append(float(cost))
        hist.append(float(np.mean(costs)))
    return hist


def train(cfg: TrainConfig) -> dict:
    p = preset(cfg)
    seed_everything(cfg.seed)
    device = pick_device(cfg.device)
    if device.type == "cpu":  # tiny matrices: one thread beats two fighting over the cache
        torch.set_num_threads(int(cfg.extra.get("threads", 1)))
    train_r, valid_r, data, ft = load_splits(cfg)
    if not train_r:
        raise ImprovdError(f"no training pieces of at least 2 frames in {data}: check the data path")
    net = RnnRbm(enc.UNITS, p["hidden"], p["recurrent"], p["learn_u0"], p["cell"], p["dropout"]).to(device)
    gen = torch.Generator(device=device).manual_seed(cfg.seed)
    t_pre = time.time()
    pre = pretrain_rbm(net, train_r, p, device, gen) if p["pretrain_epochs"] and not cfg.resume else []
    t_pre = time.time() - t_pre
    params = [q for q in net.parameters() if q.requires_grad]
    if p["optimizer"] == "sgd":
        opt = torch.optim.SGD(params, lr=p["lr"])
    else:
        opt = torch.optim.Adam(params, lr=p["lr"], weight_decay=p["weight_decay"])
    cfg.patience = p["patience"]
    rng = random.Random(cfg.seed)
    pieces = chunks(train_r, p["chunk"])
    ais = dict(QUICK_AIS, **{k: int(cfg.extra[k]) for k in ("chains", "betas") if k in cfg.extra})
    eval_every = max(1, int(p["eval_every"]))
    state = {"epoch": 0, "last": None, "out_of_time": False}
    deadline = time.time() + float(cfg.extra["max_seconds"]) if cfg.extra.get("max_seconds") else None

    def batches(epoch):
        if deadline is not None and time.time() > deadline:
            state["out_of_time"] = True  # a measured fraction of the run: stop at this epoch
            cfg.patience = 1
            return
        order = list(pieces)
        rng.shuffle(order)
        for i in range(0, len(order), p["batch_size"]):
            yield collate(order[i:i + p["batch_size"]], p["transpose"], rng)

    def step(batch):
        v, m = (t.to(device, non_blocking=True) for t in batch)
        cost, monitor = net.cd_cost(v, m, p["k"], gen)
        update(opt, cost, params, p["clip"])
        return float(monitor)

    def evaluate():
        state["epoch"] += 1
        e = state["epoch"]
        if not valid_r:
            return {}
        if state["out_of_time"]:
            return {"valid_loss": math.inf, "valid_ll": -math.inf}
        if state["last"] is None or e % eval_every == 0 or e == p["epochs"]:
            r = log_likelihood(net, valid_r, device, ais["chains"], ais["betas"], seed=e)
            state["last"] = {"valid_loss": -r["ll_per_step"], "valid_ll": r["ll_per_step"]}
            if p["plateau"]:  # halve the step size after `plateau` evaluations without a new best
                if r["ll_per_step"] > state.get("best", -math.inf):
                    state["best"], state["stale"] = r["ll_per_step"], 0
                else:
                    state["stale"] = state.get("stale", 0) + 1
                    if state["stale"] >= p["plateau"]:
                        for gr in opt.param_groups:
                            gr["lr"] *= 0.5
                        state["stale"] = 0
            state["last"]["lr"] = opt.param_groups[0]["lr"]
        return dict(state["last"])

    run = RunDir(cfg.out)
    describe = {"arch": {"hidden": p["hidden"], "recurrent": p["recurrent"], "learn_u0": p["learn_u0"],
                         "cell": p["cell"], "dropout": p["dropout"]},
                "preset_params": p, "frame_ticks": ft, "data": data, "train_pieces": len(train_r),
                "valid_pieces": len(valid_r), "train_frames": int(sum(len(r) for r in train_r)),
                "chunks_per_epoch": len(pieces), "updates_per_epoch": math.ceil(len(pieces) / p["batch_size"]),
                "pretrain_history": pre, "pretrain_seconds": round(t_pre, 2), "valid_ais": ais,
                "valid_eval_every": eval_every}
    summary = fit(net, opt, cfg, run, p["epochs"], batches, step, evaluate, device, None, describe,
                  loss_label="nats per frame (train: CD reconstruction xent; valid: AIS NLL)")
    if state["out_of_time"]:  # drop the empty epoch that ended the run; say it was cut
        hist = [h for h in summary["history"] if not math.isinf(h.get("valid_loss", 0.0))]
        train_s = sum(h["seconds"] for h in hist)
        summary.update(history=hist, epochs_run=len(hist), stopped_by_time=True,
                       train_seconds_measured=round(train_s, 2),
                       extrapolated_seconds_all_epochs=round(train_s / max(1, len(hist)) * p["epochs"], 1))
        run.write_json("metrics.json", summary)
        run.plot_losses(hist, "nats per frame")
    return summary


# -- loading and export ----------------------------------------------------------------------------
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
    from training.export import export_step, specs, write_card

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


# -- evaluation ------------------------------------------------------------------------------------
def evaluate(model: str, data: list[str], split: str | None = "valid", n: int = 10, seed: int = 0,
             chains: int | None = None, betas: int | None = None, device: str = "auto",
             pieces: int = 0, show: bool = True, marginal_chains: int | None = None,
             marginal_k: int | None = None) -> dict:
    """LL per step (AIS) and frame accuracy on every piece of ``split`` (the first ``pieces`` if
    given). ``n``: Gibbs samples per frame behind the expected accuracy (the CLI's 'samples')."""
    from training.corpora import shared

    dev = pick_device(device)
    net, info = load_any(model)
    net = net.to(dev)
    data = list(data) or [str(shared("polyphonic/jsb_chorales.trainvalid.json"))]
    split = split or "valid"
    rolls = []
    for spec in data:
        rolls += _rolls(enc.load(spec, split, info["frame_ticks"]))
    if pieces:
        rolls = rolls[:pieces]
    if not rolls:
        raise ImprovdError(f"no pieces of at least 2 frames in {data} split {split}: check the data")
    chains = chains or (FULL_AIS["chains"] if dev.type == "cuda" else 20)
    betas = betas or (FULL_AIS["betas"] if dev.type == "cuda" else 500)
    t0 = time.time()
    res = {"model": info["name"], "data": data, "split": split, "pieces": len(rolls)}
    res.update(log_likelihood(net, rolls, dev, chains, betas, seed))
    res.update(frame_accuracy(net, rolls, dev, max(1, n or 10), 25, "gibbs", seed))
    mf = frame_accuracy(net, rolls, dev, 1, 25, "meanfield", seed)
    res["acc_meanfield"] = mf["acc"]
    tune = []
    if split != "train":  # the threshold is set on (up to 60) training pieces, when the data has them
        for spec in data:
            if _has_train_split(spec):
                tune += _rolls(enc.load(spec, "train", info["frame_ticks"]))
    # no training pieces beside the scored ones (a plain folder): the model's own threshold, set
    # on its training data when it was evaluated for export
    fixed = None if tune else float(info.get("acc_threshold") or 0.3)
    # longer chains mix into the sharp modes better: 20 chains on JSB valid gave ACC 33.1 % at
    # 100 sweeps and 33.5 % at 400; the CPU default stays at 100 to keep the command short
    mc = marginal_chains or (100 if dev.type == "cuda" else 20)
    mk = marginal_k or (400 if dev.type == "cuda" else 100)
    res.update(marginal_accuracy(net, rolls, dev, fixed, tune[:60] or None, mc, mk, seed))
    res["acc_marginal_threshold_from"] = "training pieces" if tune else ("the model card" if info.get("acc_threshold") else "default")
    res["seconds"] = round(time.time() - t0, 2)
    res["device"] = str(dev)
    if show:
        print_table(res)
    return res


def _has_train_split(spec: str) -> bool:
    """A JSON file with a 'train' split, or a folder with a train/ folder in it."""
    p = Path(spec)
    if p.suffix.lower() == ".json" and p.is_file():
        try:
            return "train" in json.loads(p.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError, TypeError):
            return False
    return p.is_dir() and (p / "train").is_dir()


def print_table(res: dict, others: list[dict] | None = None) -> None:
    """Our rows beside the paper's Table 1 rows (JSB). ACC is the marginal predictor's (the
    model's best guess); one Gibbs draw and mean-field are shown beside it for reference."""
    from rich.console import Console
    from rich.table import Table

    t = Table(title=f"RNN-RBM on {', '.join(Path(d).name for d in res['data'])} ({res['split']}): "
                    f"log-likelihood per time step and frame accuracy")
    for col in ("model", "LL / step", "ACC %", "t", "ACC % one draw / mean-field", "frames", "AIS chains x temps"):
        t.add_column(col, justify="right" if col != "model" else "left")
    is_jsb = any("jsb" in Path(d).name.lower() for d in res["data"])
    if is_jsb:
        for name, ll, acc in PAPER_JSB:
            t.add_row(name, f"{ll:.2f}", f"{acc:.2f}" if acc is not None else "-", "-", "-", "-", "-")
    for r in (others or []) + [res]:
        t.add_row(f"{r['model']} ({r['split']})", f"{r['ll_per_step']:.2f}",
                  f"{100 * r['acc_marginal']:.2f}" if "acc_marginal" in r else "-",
                  f"{r['acc_marginal_threshold']:.2f}" if "acc_marginal" in r else "-",
                  f"{100 * r['acc']:.2f} / {100 * r['acc_meanfield']:.2f}",
                  str(r["frames"]), f"{r['ais_chains']} x {r['ais_betas']}")
    Console(width=max(Console().width, 120)).print(t)
    if "acc_marginal" in r:
        print(f"ACC: keys whose Gibbs marginal ({r['acc_marginal_chains']} chains x {r['acc_marginal_k']} sweeps) "
              f">= t, t from {r.get('acc_marginal_threshold_from', 'training pieces')}. AIS: one run per frame.")


# -- generation ------------------------------------------------------------------------------------
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


# -- command line (the GPU box has torch but not the improvd CLI's mido/rtmidi) ----------------
def _parse_extra(items: list[str]) -> dict:
    out = {}
    for it in items:
        k, _, v = it.partition("=")
        try:
            out[k] = json.loads(v)
        except json.JSONDecodeError:
            out[k] = v
    return out


def main(argv=None) -> int:
    import argparse

    ap = argparse.ArgumentParser(prog="python -m training.rnnrbm")
    sub = ap.add_subparsers(dest="cmd", required=True)
    t = sub.add_parser("train", help="train one preset")
    t.add_argument("--preset", default="default")
    t.add_argument("--data", action="append", default=[])
    t.add_argument("--out", required=True)
    t.add_argument("--epochs", type=int)
    t.add_argument("--device", default="auto")
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--max-items", type=int)
    t.add_argument("--resume", action="store_true", help="go on from the run folder's last.pt")
    t.add_argument("--set", nargs="*", default=[], help="preset overrides, key=value")
    e = sub.add_parser("evaluate", help="LL (AIS) and ACC of a run folder or exported model")
    e.add_argument("model")
    e.add_argument("--data", action="append", default=[])
    e.add_argument("--split", default="valid")
    e.add_argument("--n", type=int, default=10, help="Gibbs samples per frame for ACC")
    e.add_argument("--pieces", type=int, default=0)
    e.add_argument("--chains", type=int)
    e.add_argument("--betas", type=int)
    e.add_argument("--device", default="auto")
    e.add_argument("--json")
    e.add_argument("--marginal-chains", type=int, help="Gibbs chains per frame behind the marginal ACC")
    e.add_argument("--marginal-k", type=int, help="sweeps per chain behind the marginal ACC")
    r = sub.add_parser("rolls", help="write a corpus's train/valid piano-rolls as one JSON file")
    r.add_argument("--data", action="append", required=True)
    r.add_argument("--out", required=True)
    r.add_argument("--seed", type=int, default=0)
    g = sub.add_parser("gpu-job", help="the sweep + timing + evaluation run on the lent GPU")
    g.add_argument("--data", required=True)
    g.add_argument("--out", required=True)
    g.add_argument("--seconds", type=float, default=300)
    g.add_argument("--only", nargs="*", help="candidate names (default: all of SWEEP)")
    a = ap.parse_args(argv)
    if a.cmd == "gpu-job":
        return gpu_job(a.data, Path(a.out), a.seconds, a.only)
    if a.cmd == "rolls":
        cfg = TrainConfig(family="rnnrbm", preset="default", data=a.data, out="", seed=a.seed)
        t0 = time.time()
        tr, va, data, ft = load_splits(cfg)
        enc.save_json({"train": [("", x) for x in tr], "valid": [("", x) for x in va]}, a.out, ft)
        print(f"{a.out}: {len(tr)} train and {len(va)} valid pieces, {ft} ticks per frame, from {data} in {time.time() - t0:.1f}s")
        return 0
    if a.cmd == "train":
        cfg = TrainConfig(family="rnnrbm", preset=a.preset, data=a.data, out=a.out, epochs=a.epochs, device=a.device,
                          seed=a.seed, max_items=a.max_items, resume=a.resume,
                          extra=_parse_extra(a.set))
        s = train(cfg)
        print(f"best valid loss {s['best_valid_loss']:.4f} after {s['epochs_run']} epochs in {s['wall_seconds']:.1f}s on {s['device_name']}")
    else:
        r = evaluate(a.model, a.data, a.split, a.n, 0, a.chains, a.betas, a.device, a.pieces,
                     marginal_chains=a.marginal_chains, marginal_k=a.marginal_k)
        if a.json:
            Path(a.json).write_text(json.dumps(r, indent=2) + "\n")
    return 0


# Candidates for the default, trained side by side in one device call. Each: extra data (None:
# the --data given) and preset overrides. Settled on 2026-11-24 (see the model card's training).
_LONG = ["plateau=4", "patience=20", "epochs=2000"]
SWEEP = {
    # round 1 (2026-11-24): batch 4/8, dropout, GRU and k=25 all stayed at -6.8 .. -7.1; lr 3e-3 reached -6.01
    "rnn-b4": (None, ["batch_size=4", *_LONG]),
    "rnn-drop": (None, ["batch_size=8", "dropout=0.3", *_LONG]),
    "gru": (None, ["cell=gru", "batch_size=8", *_LONG]),
    "gru-drop": (None, ["cell=gru", "recurrent=200", "dropout=0.3", "batch_size=8", *_LONG]),
    "gru-h300-drop": (None, ["cell=gru", "hidden=300", "recurrent=200", "dropout=0.4", "batch_size=8", *_LONG]),
    "gru-drop-k25": (None, ["cell=gru", "recurrent=200", "dropout=0.3", "batch_size=8", "k=25", *_LONG]),
    "notts-gru": (".rnnrbm_data/nottingham.json", ["cell=gru", "recurrent=200", "dropout=0.3", "batch_size=32",
                                                     "pretrain_epochs=5", *_LONG]),
    # round 2: the step size
    "rnn-lr3e-3": (None, ["lr=0.003", *_LONG]),
    "rnn-lr5e-3": (None, ["lr=0.005", *_LONG]),
    "rnn-lr1e-2": (None, ["lr=0.01", *_LONG]),
    "rnn-lr3e-3-b8": (None, ["lr=0.003", "batch_size=8", *_LONG]),
    "rnn-lr3e-3-h300": (None, ["lr=0.003", "hidden=300", *_LONG]),
    "gru-lr3e-3": (None, ["cell=gru", "lr=0.003", *_LONG]),
    "rnn-lr3e-3-k25": (None, ["lr=0.003", "k=25", *_LONG]),
    "notts-rnn-lr3e-3": (".rnnrbm_data/nottingham.json", ["lr=0.003", "batch_size=32", "pretrain_epochs=5", *_LONG]),
    # round 2 result: lr 3e-3 beats the paper on LL and ACC; 5e-3 and 1e-2 gain LL but lose ACC.
    # round 3: other seeds, slower annealing, and Nottingham for longer. Seeds 1/2: -6.01/-6.00,
    # ACC 33.47/33.14 % (400 sweeps; the default 33.71 %); plateau 8: -6.03; lr 2e-3: -6.32;
    # Nottingham GRU: -2.42, ACC 54.4 % (100 sweeps). Full table: README, "The RNN-RBM against the paper".
    "rnn-lr3e-3-s1": (None, ["lr=0.003", "seed=1", *_LONG]),
    "rnn-lr3e-3-s2": (None, ["lr=0.003", "seed=2", *_LONG]),
    "rnn-lr3e-3-p8": (None, ["lr=0.003", "plateau=8", "patience=30", "epochs=2000"]),
    "rnn-lr2e-3": (None, ["lr=0.002", *_LONG]),
    "notts-gru-lr3e-3": (".rnnrbm_data/nottingham.json", ["cell=gru", "lr=0.003", "batch_size=32",
                                                            "pretrain_epochs=5", *_LONG]),
}


@torch.no_grad()
def ais_check(model: str, data: str, frames: int = 200, chains: int = 200,
              betas: tuple = (300, 2000, 10000, 30000), device: str = "auto") -> dict:
    """Does the AIS estimate of log Z still move with more temperatures? On the first ``frames``
    valid frames, the mean log Z and the mean LL for each schedule, plus the spread of the
    per-frame estimates between two independent runs at the largest schedule. log Z_hat is biased
    low (so the LL high) until it stops rising."""
    dev = pick_device(device)
    net, info = load_any(model)
    net = net.to(dev)
    rolls = _rolls(enc.load(data, "valid", info["frame_ticks"]))
    v, bv, bh = conditional_biases(net, rolls, dev)
    idx = torch.linspace(0, len(v) - 1, min(frames, len(v))).long().to(dev)
    v, bv, bh = v[idx], bv[idx], bh[idx]
    neg_f = -net.free_energy(v, bv, bh)
    out = {"model": info["name"], "frames": len(idx), "chains": chains, "rows": []}
    for i, n in enumerate(betas):
        t0 = time.time()
        lz = ais_log_z(net.W, bv, bh, chains, n, torch.Generator(device=dev).manual_seed(100 + i))
        out["rows"].append({"betas": n, "mean_log_z": float(lz.mean()), "ll": float((neg_f - lz).mean()),
                            "seconds": round(time.time() - t0, 2)})
    lz2 = ais_log_z(net.W, bv, bh, chains, betas[-1], torch.Generator(device=dev).manual_seed(999))
    out["repeat_abs_diff_mean"] = float((lz2 - lz).abs().mean())
    out["repeat_ll"] = float((neg_f - lz2).mean())
    return out


def gpu_job(data: str, out: Path, seconds: float, names: list[str] | None = None) -> int:
    """One device call: the candidates train side by side (one process each, same GPU) under a
    time guard; each is then evaluated with the full AIS on its own data's valid split, and every
    run's checkpoint and figures come back under ``out``."""
    import shutil
    import subprocess
    import sys

    out.mkdir(parents=True, exist_ok=True)
    Path("runs").mkdir(exist_ok=True)
    names = names or list(SWEEP)
    procs, datas = {}, {}
    for name in names:
        extra_data, sets = SWEEP[name]
        datas[name] = extra_data or data
        seed = next((x.split("=")[1] for x in sets if x.startswith("seed=")), "0")
        cmd = [sys.executable, "-m", "training.rnnrbm", "train", "--preset", "default", "--data", datas[name],
               "--out", f"runs/gpu-{name}", "--seed", seed, "--set", f"max_seconds={seconds}",
               *[x for x in sets if not x.startswith("seed=")]]
        procs[name] = subprocess.Popen(cmd, stdout=open(f"runs/gpu-{name}.log", "w"), stderr=subprocess.STDOUT)
    for name, pr in procs.items():
        rc = pr.wait()
        print(f"{name}: exit {rc}", flush=True)
        print(Path(f"runs/gpu-{name}.log").read_text()[-300:], flush=True)
    summary = {}
    for name in procs:
        rd = Path(f"runs/gpu-{name}")
        if not (rd / "metrics.json").exists():
            continue
        m = json.loads((rd / "metrics.json").read_text())
        try:
            r = evaluate(str(rd), [datas[name]], "valid", 10, 0, show=False)
        except Exception as e:  # one bad candidate must not lose the others' figures
            print(f"{name}: evaluation failed: {e!r}", flush=True)
            continue
        (rd / "eval.json").write_text(json.dumps(r, indent=2) + "\n")
        summary[name] = {k: m.get(k) for k in ("best_valid_loss", "epochs_run", "wall_seconds", "stopped_by_time",
                                                 "train_seconds_measured", "device_name")}
        summary[name]["eval"] = r
        print(name, json.dumps({k: r[k] for k in ("ll_per_step", "acc", "acc_meanfield", "acc_marginal",
                                                  "acc_marginal_threshold", "seconds")}), flush=True)
        dst = out / name
        dst.mkdir(exist_ok=True)
        for f in ("best.pt", "metrics.json", "loss.png", "eval.json"):
            if (rd / f).exists():
                shutil.copy(rd / f, dst / f)
        shutil.copy(f"runs/gpu-{name}.log", dst / "train.log")
    jsb = sorted((n for n in summary if not n.startswith("notts")), key=lambda n: -summary[n]["eval"]["ll_per_step"])
    for name in jsb[:1]:  # is the best LL an AIS artefact? (round 2 checked three: no)
        try:
            summary[name]["ais_check"] = chk = ais_check(f"runs/gpu-{name}", datas[name])
            print(name, "ais check", json.dumps(chk), flush=True)
        except Exception as e:
            print(f"{name}: AIS check failed: {e!r}", flush=True)
    (out / "sweep.json").write_text(json.dumps(summary, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    import sys

    sys.exit(main())
