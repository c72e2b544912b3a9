"""Scores of a trained net on piano rolls: log-likelihood per step by annealed importance
sampling, and frame accuracy (one Gibbs draw, mean-field, Gibbs marginals).

Log-likelihoods need the partition function of every conditional RBM: annealed importance
sampling (Salakhutdinov & Murray 2008) from the RBM with its weights switched off, one
independent AIS run per frame, all frames in one batch.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from improvd.training.rnnrbm.model import RnnRbm


def beta_schedule(n: int) -> torch.Tensor:
    """More temperatures near beta = 1, where the distribution changes fastest."""
    a, b = max(1, n // 10), max(1, (3 * n) // 10)
    c = max(1, n - a - b)
    return torch.cat([torch.linspace(0, 0.5, a + 1)[:-1], torch.linspace(0.5, 0.9, b + 1)[:-1], torch.linspace(0.9, 1.0, c)])


@torch.no_grad()
def ais_log_z(W, bv, bh, chains: int = 100, betas: int = 1000, generator=None, block: int = 200_000,
              progress: str | None = None) -> torch.Tensor:
    """log Z of N RBMs sharing W ([nv, nh]) with biases bv [N, nv], bh [N, nh].

    Base: the same RBM with W and bh switched off (p_0(v) = prod sigmoid(bv)), whose log Z is
    sum softplus(bv) + nh log 2. Intermediate p_beta(v, h) ~ exp(bv.v + beta h.(vW + bh)), so
    log f_beta(v) = bv.v + sum_j softplus(beta (vW + bh)_j); one Gibbs sweep per temperature.
    E[Z_hat] = Z, so log Z_hat is biased low (the LL high) by a margin that shrinks with more
    temperatures and chains. ``progress``: the stage to show it as (minutes on a CPU)."""
    from improvd.progress import stage

    N, nv = bv.shape
    nh = W.shape[1]
    bs = beta_schedule(betas).to(bv.device)
    out = torch.empty(N, device=bv.device)
    per = max(1, block // chains)
    total = -(-N // per) * (len(bs) - 1)
    with stage(progress or "", total=total, unit="temperatures", quiet=progress is None) as shown:
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
                shown.advance()
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
def log_likelihood(net: RnnRbm, rolls: list, device, chains: int, betas: int, seed: int = 0,
                   progress: str | None = None) -> dict:
    """Mean log p(v_t | v_<t) per time step: -F_t(v_t) - log Z_t over every frame."""
    v, bv, bh = conditional_biases(net, rolls, device)
    g = torch.Generator(device=device).manual_seed(seed)
    log_z = ais_log_z(net.W, bv, bh, chains, betas, g, progress=progress)
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
def frame_accuracy(net: RnnRbm, rolls: list, device, samples: int = 10, k: int = 25, mode: str = "gibbs", seed: int = 0,
                   progress: str | None = None) -> dict:
    """Bay et al. (2009) accuracy TP / (TP + FP + FN), counts summed over all frames, each frame
    predicted from the TRUE past. 'gibbs': expected counts over ``samples`` Gibbs samples of k
    steps from zeros (the tutorial's generator); 'meanfield': mean-field marginals > 0.5."""
    v, bv, bh = conditional_biases(net, rolls, device)
    if mode == "meanfield":
        pred = (mean_field(net, bv, bh, k) > 0.5).float()[None]
    else:
        from improvd.progress import track

        g = torch.Generator(device=device).manual_seed(seed)
        preds = []
        for _ in track(range(samples), progress or "", unit="draws", quiet=progress is None):
            p, _ = net.gibbs(torch.zeros_like(bv), bv, bh, k, g)
            preds.append(p)
        pred = torch.stack(preds)
    return {"acc": bay_accuracy(pred, v[None]), "acc_mode": mode, "acc_samples": pred.shape[0], "acc_gibbs_k": k}


@torch.no_grad()
def gibbs_marginals(net: RnnRbm, bv, bh, chains: int = 100, k: int = 100, seed: int = 0, block: int = 400_000,
                    progress: str | None = None):
    """p(v_i = 1 | past) per frame, estimated by ``chains`` Gibbs chains of ``k`` sweeps from
    zeros, p(v|h) averaged over the chains and the last half of the sweeps (Rao-Blackwellised:
    smoother than counting samples). Chains started from the previous true frame instead scored
    lower (JSB valid, 2026-11-24): they stay near it."""
    from improvd.progress import stage

    g = torch.Generator(device=bv.device).manual_seed(seed)
    N, nv = bv.shape
    out = torch.empty_like(bv)
    per = max(1, block // chains)
    with stage(progress or "", total=-(-N // per) * k, unit="sweeps", quiet=progress is None) as shown:
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
                shown.advance()
            out[s:s + per] = acc / (k - k // 2)
    return out


@torch.no_grad()
def marginal_accuracy(net: RnnRbm, rolls: list, device, threshold: float | None = None, tune_rolls: list | None = None,
                      chains: int = 100, k: int = 100, seed: int = 0, progress: str | None = None) -> dict:
    """ACC of the frame whose keys have Gibbs marginal >= threshold: the model's best single guess
    rather than one random draw. The threshold is the one that maximises ACC on ``tune_rolls``
    (training pieces: never the pieces scored), 0.5 when none are given."""
    if threshold is None and tune_rolls:
        v, bv, bh = conditional_biases(net, tune_rolls, device)
        m = gibbs_marginals(net, bv, bh, chains, k, seed + 1,
                            progress=progress and f"{progress}: setting t on {len(tune_rolls)} training pieces")
        grid = [x / 100 for x in range(5, 80, 5)]
        threshold = max(grid, key=lambda t: bay_accuracy((m >= t).float(), v))
    threshold = 0.5 if threshold is None else threshold
    v, bv, bh = conditional_biases(net, rolls, device)
    m = gibbs_marginals(net, bv, bh, chains, k, seed, progress=progress)
    return {"acc_marginal": bay_accuracy((m >= threshold).float(), v), "acc_marginal_threshold": threshold,
            "acc_marginal_chains": chains, "acc_marginal_k": k}


def bay_accuracy(pred: torch.Tensor, truth: torch.Tensor) -> float:
    """TP / (TP + FP + FN) with the counts summed over every frame (and sample) first."""
    pred, truth = torch.as_tensor(pred, dtype=torch.float32), torch.as_tensor(truth, dtype=torch.float32)
    tp = float((pred * truth).sum())
    fp = float((pred * (1 - truth)).sum())
    fn = float(((1 - pred) * truth).sum())
    return tp / max(tp + fp + fn, 1e-9)
