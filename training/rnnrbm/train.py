"""Training: the presets, the RBM pre-training and the CD-k loop on the shared train loop.

Two presets besides a CPU smoke test: 'tutorial' is the Theano tutorial exactly (one chunk of
<= 100 steps per SGD update); 'default' batches many sequences on the GPU, pre-trains the RBM on
shuffled frames (the paper's initialisation), uses Adam and stops early on the validation
log-likelihood.
"""

from __future__ import annotations

import math
import random
import time

import numpy as np
import torch

from improvd import ImprovdError
from improvd.encoding import pianoroll as enc
from improvd.training.config import TrainConfig
from improvd.training.loop import RunDir, fit, pick_device, seed_everything, update
from improvd.training.rnnrbm.data import chunks, collate, load_splits
from improvd.training.rnnrbm.metrics import log_likelihood
from improvd.training.rnnrbm.model import RnnRbm

PRESETS = {
    # exactly the Theano tutorial: SGD, one chunk of at most 100 steps per update, CD-15, 200 epochs
    "tutorial": dict(hidden=150, recurrent=100, optimizer="sgd", lr=1e-3, k=15, chunk=100, epochs=200,
                     batch_size=1, pretrain_epochs=0, learn_u0=False, weight_decay=0.0, patience=0,
                     transpose=0, clip=0.0, eval_every=10, cell="rnn", dropout=0.0, plateau=0),
    # better trained: batched, Adam at 3e-3 halved after 4 evaluations without a new best, RBM
    # pre-training, early stopping on valid LL. Chosen over 22 runs on JSB valid (sweeps
    # 1-3, docs/rnnrbm_sweeps.md): at 1e-3 it stalls near -6.74; above 3e-3 the LL rises but ACC falls.
    "default": dict(hidden=150, recurrent=100, optimizer="adam", lr=3e-3, k=15, chunk=100, epochs=2000,
                    batch_size=16, pretrain_epochs=40, learn_u0=True, weight_decay=1e-4, patience=20,
                    transpose=0, clip=1.0, eval_every=1, cell="rnn", dropout=0.0, plateau=4),
    # CPU smoke tests
    "tiny": dict(hidden=16, recurrent=8, optimizer="adam", lr=3e-3, k=1, chunk=32, epochs=1, batch_size=8,
                 pretrain_epochs=0, learn_u0=True, weight_decay=0.0, patience=0, transpose=0, clip=1.0, eval_every=1,
                 cell="rnn", dropout=0.0, plateau=0),
}

# AIS settings of the per-epoch model selection (the reported figures: evaluate.FULL_AIS).
QUICK_AIS = dict(chains=16, betas=300)


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
    from improvd.progress import track

    opt = torch.optim.Adam([net.W, net.bv, net.bh], lr=p["lr"])
    hist = []
    for ep in track(range(p["pretrain_epochs"]), "pre-training the RBM on shuffled frames", unit="epochs"):
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
    from improvd.progress import stage

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
    with stage("building the optimiser"):  # torch's first optimiser imports its compiler: seconds
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
