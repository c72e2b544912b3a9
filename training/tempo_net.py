"""Train the tempo tracker's GRU (improvd.tempo_net) on the timing corpora's train split.

    python -m improvd.training.tempo_net build [--data DIR] --out clusters.npz    # CPU: parse, cluster, label
    python -m improvd.training.tempo_net fit clusters.npz --out models/tempo_net.npz [--device cuda]
    python -m improvd.training.tempo_net plot models/tempo_net.npz --out models/tempo_net.loss.png

Two steps so the slow part (reading 800 MIDI files) runs once, and the fit can travel to a GPU
with one compact file. Only the "train" side of improvd.evaluation.timing.split_of is read;
one piece in ten of it is kept apart as a dev set for choosing the epoch, so the "valid" side
stays a clean score.

Labels:
- WJazzD (annotated average tempo only): the tempo, at every cluster; with --jazz-labels also
  where each cluster falls in the beat (beat / half / other, phase) against beats placed by
  librosa's dynamic-programming beat tracker held at the annotated tempo (pseudo-labels: without
  them the net learns ASAP's levels alone and hears a fast swing line at half its tempo).
- --synthetic N: generated performances with known beats (``synthetic``): exact and steady
  playing, swing, tempo drifts and jumps, which the corpora hold little of.

The shipped models/tempo_net.npz (docs/tempo.md has its figures) is
    build --jazz-labels --synthetic 600 --out clusters.npz
    fit clusters.npz --device cuda --hidden 128 --layers 2 --dropout 0.3 --tempo-weight 0 --epochs 1000 --limit-s 470
(an H200, 8 min, 411 epochs; the epoch with the lowest dev loss is kept, here 158). The tempo
head is not trained (--tempo-weight 0): the tracker does not read it (net_tempo 0), its targets
were most of each batch's cost, and its early overfitting chose the epoch before the class
head had learned (dev class loss 0.592 with it, 0.450 without).
- ASAP (annotated beats and downbeats): each cluster's class (beat / half / other, as
  improvd.evaluation.timing_fit labels them), whether its beat is a downbeat, and the local
  tempo (median of the five beat intervals around it).

Augmentation, per performance and epoch: time stretched by 0.8-1.25 (tempo targets move with
it) and transposed by -5..+6 semitones, so the net learns intervals, not the corpora's tempi.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import time
from pathlib import Path, PurePosixPath

import numpy as np

from improvd.tempo_net import FEATURES, PHASE_BINS, cluster_rows, encode, phase_target, smooth_target, tempo_candidates

DEV_SALT = "improvd-timing-dev/"


def _bucket(name: str) -> int:
    return int(hashlib.sha1((DEV_SALT + name).encode()).hexdigest(), 16)


def _dev(name: str) -> bool:
    return _bucket(name) % 10 == 0


def fold_key(item: dict) -> str:
    """What a fold holds out whole: an ASAP piece (all its performances), a solo, a generated one."""
    return str(PurePosixPath(item["name"]).parent) if item["corpus"] == "asap" else item["name"]


def in_fold(item: dict, fold: tuple[int, int]) -> bool:
    """Fold k of n (cross-validation over the train split: each fold's net is scored on the
    pieces it did not see, so all of train serves as dev). Fold 0 of 5 holds the dev set."""
    k, n = fold
    return _bucket(fold_key(item)) % n == k


def _asap_labels(times: np.ndarray, beats: np.ndarray, downbeats: np.ndarray) -> tuple[np.ndarray, ...]:
    from improvd.evaluation.timing_fit import _labels

    phase, cls, down = _labels(times, beats, downbeats)
    ok = ~np.isnan(phase)
    cls = np.where(ok, cls, -1).astype(np.int8)
    down = np.where(ok & (cls == 0), down, -1).astype(np.int8)
    iv = np.diff(beats)
    i = np.clip(np.searchsorted(beats, times) - 1, 0, len(iv) - 1)
    lo, hi = np.clip(i - 2, 0, len(iv)), np.clip(i + 3, 0, len(iv))
    period = np.array([np.median(iv[a:b]) for a, b in zip(lo, hi)])
    bpm = 60.0 / np.maximum(period, 1e-3)
    return cls, down, np.where((bpm >= 30) & (bpm <= 300), bpm, np.nan).astype(np.float32), phase.astype(np.float32)


def jazz_pseudo_beats(times: np.ndarray, bpm: float) -> np.ndarray:
    """Beat times for a solo whose average tempo is known: librosa's beat tracker on an onset
    envelope of its note-ons, told the tempo (offline, for labels only)."""
    import librosa

    from improvd.evaluation.timing import ENVELOPE_HOP, ENVELOPE_SR, Notes, onset_envelope

    env = onset_envelope(Notes(times, np.zeros(len(times), int), np.zeros(len(times), int), np.zeros(len(times))))
    _, beats = librosa.beat.beat_track(onset_envelope=env, sr=ENVELOPE_SR, hop_length=ENVELOPE_HOP, bpm=bpm,
                                       tightness=400, trim=False, units="time")
    return np.asarray(beats, dtype=float)


PATTERNS = ((0.0,), (0.0, 0.5), (0.0, 2 / 3), (0.0, 0.25, 0.5, 0.75), (0.0, 1 / 3, 2 / 3), (0.5,), (), (0.0, 0.75),
            (0.0, 0.5, 0.75))
PATTERN_P = (0.22, 0.2, 0.14, 0.08, 0.06, 0.05, 0.1, 0.08, 0.07)


def synthetic(n: int, seed: int = 0) -> list[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray, int]]:
    """Performances with known beats: steady, drifting or jumping tempo (50-260 BPM), 2, 3 or 4 beats
    a bar, rhythms from a small vocabulary (swung pairs, triplets, sixteenths, rests), a bass or a
    chord on some downbeats, accents, timing spread 0-15 ms. The corpora have little of the exact,
    metronomic playing a sideman also meets (and the daemon's tests play); these teach it.
    Returns (times, pitches, velocities, beats, downbeats, beats a bar) each."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        bpb = int(rng.choice([2, 3, 4], p=[0.2, 0.3, 0.5]))
        bars = int(rng.integers(12, 33))
        t0 = 60.0 / math.exp(rng.uniform(math.log(50), math.log(260)))
        kind = rng.choice(["steady", "drift", "jump"], p=[0.5, 0.3, 0.2])
        nb = bars * bpb
        ratio = np.ones(nb)
        if kind == "drift":
            ratio = np.linspace(1.0, math.exp(rng.uniform(-0.2, 0.2)), nb)
        elif kind == "jump":
            ratio[nb // 2:] = math.exp(rng.choice([-1, 1]) * rng.uniform(0.1, 0.25))
        periods = t0 * ratio
        beats = 1.0 + np.concatenate([[0.0], np.cumsum(periods)])
        jitter = float(rng.choice([0.0, 0.005, 0.015]))
        rows, pitch = [], int(rng.integers(60, 76))
        fav = rng.choice(len(PATTERNS), p=PATTERN_P)
        for b in range(nb):
            k = fav if rng.random() < 0.6 else rng.choice(len(PATTERNS), p=PATTERN_P)
            for f in PATTERNS[k]:
                when = beats[b] + f * periods[b] + rng.normal(0, jitter) if jitter else beats[b] + f * periods[b]
                pitch = int(np.clip(pitch + rng.integers(-4, 5), 55, 84))
                vel = 70 + (15 if b % bpb == 0 and f == 0 else 6 if f == 0 else 0) + int(rng.integers(-8, 9))
                rows.append((when, pitch, vel))
            if b % bpb == 0 and rng.random() < 0.5:
                root = int(rng.integers(36, 50))
                for p in (root, root + 7, root + 16)[: int(rng.integers(1, 4))]:
                    rows.append((beats[b] + abs(rng.normal(0, jitter + 0.002)), p, 80))
        rows.sort()
        a = np.array(rows)
        out.append((a[:, 0], a[:, 1].astype(int), a[:, 2].astype(int), beats[:nb + 1], beats[:nb + 1:bpb], bpb))
    return out


def build(data: list[str], out: Path, split: str = "train", limit: int = 0, jazz_labels: bool = False,
          synthetic_n: int = 0) -> dict:
    from improvd.evaluation.timing import asap_items, find_corpora, load_performance, load_solo, wjazzd_items
    from improvd.tempo import parse_meter

    corpora = find_corpora(data)
    rows, cls, down, bpm, phase, starts, items = [], [], [], [], [], [0], []
    t0 = time.perf_counter()
    if "wjazzd" in corpora:
        for name, avg in wjazzd_items(corpora["wjazzd"], split)[:limit or None]:
            solo = load_solo(corpora["wjazzd"], name, avg)
            t, r = cluster_rows(solo.notes.times, solo.notes.pitches, solo.notes.velocities, 4, False)
            beats = jazz_pseudo_beats(solo.notes.times, avg) if jazz_labels else np.zeros(0)
            if len(beats) > 8:
                c, _, _, ph = _asap_labels(t, beats, beats[:0])
            else:
                c, ph = np.full(len(r), -1, np.int8), np.full(len(r), np.nan, np.float32)
            rows.append(r); cls.append(c); down.append(np.full(len(r), -1, np.int8))
            bpm.append(np.full(len(r), avg, np.float32)); phase.append(ph)
            starts.append(starts[-1] + len(r))
            items.append({"name": name, "corpus": "wjazzd", "dev": _dev(name)})
    if "asap" in corpora:
        for midi, ann, piece in asap_items(corpora["asap"], split)[:limit or None]:
            perf = load_performance(corpora["asap"], midi, ann, piece)
            bpb, comp = parse_meter(perf.signature or "4/4")
            t, r = cluster_rows(perf.notes.times, perf.notes.pitches, perf.notes.velocities, bpb, comp)
            c, d, b, ph = _asap_labels(t, perf.beats, perf.downbeats)
            rows.append(r); cls.append(c); down.append(d); bpm.append(b); phase.append(ph); starts.append(starts[-1] + len(r))
            items.append({"name": midi, "corpus": "asap", "dev": _dev(piece)})
    for k, (times, pitches, vels, beats, downbeats, bpb) in enumerate(synthetic(synthetic_n)):
        t, r = cluster_rows(times, pitches, vels, bpb, False)
        c, d, b, ph = _asap_labels(t, beats, downbeats)
        rows.append(r); cls.append(c); down.append(d); bpm.append(b); phase.append(ph); starts.append(starts[-1] + len(r))
        items.append({"name": f"synthetic-{k}", "corpus": "synthetic", "dev": k % 10 == 0})
    np.savez_compressed(out, rows=np.concatenate(rows).astype(np.float32), cls=np.concatenate(cls),
                        down=np.concatenate(down), bpm=np.concatenate(bpm), phase=np.concatenate(phase), starts=np.array(starts),
                        items=json.dumps(items))
    info = {"items": len(items), "clusters": starts[-1], "seconds": time.perf_counter() - t0}
    print(f"{info['items']} performances, {info['clusters']} clusters in {info['seconds']:.0f} s -> {out}")
    return info


# ---------------------------------------------------------------------------------------- fit (torch)
def _model(hidden: int, layers: int, bins: int, dropout: float = 0.0):
    import torch

    class Net(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.gru = torch.nn.GRU(FEATURES, hidden, layers, batch_first=True, dropout=dropout if layers > 1 else 0.0)
            self.drop = torch.nn.Dropout(dropout)
            self.cls = torch.nn.Linear(hidden, 3)
            self.down = torch.nn.Linear(hidden, 1)
            self.tempo = torch.nn.Linear(hidden, bins)
            self.phase = torch.nn.Linear(hidden, PHASE_BINS)

        def forward(self, x, h=None):
            y, h = self.gru(x, h)
            y = self.drop(y)
            return self.cls(y), self.down(y).squeeze(-1), self.tempo(y), self.phase(y), h

    return Net()


def _augment(rows: np.ndarray, bpm: np.ndarray, rng, on: bool) -> tuple[np.ndarray, np.ndarray]:
    if not on:
        return rows, bpm
    r = rows.copy()
    s = math.exp(rng.uniform(math.log(0.75), math.log(1.33)))
    k = float(rng.integers(-5, 7))
    first = r[:, 5] >= 8.0
    r[:, 5] = np.where(first, r[:, 5], r[:, 5] * s)
    r[:, 1] += k
    r[:, 3] += k
    return r, bpm / s


def fit(data_path: Path, out: Path, device: str = "cpu", hidden: int = 96, layers: int = 2, epochs: int = 30,
        chunk: int = 384, batch: int = 64, lr: float = 3e-3, seed: int = 0, limit_s: float = 0.0,
        dropout: float = 0.2, jazz_labels: bool = True, tempo_weight: float = 1.0,
        fold: tuple[int, int] | None = None) -> dict:
    import torch

    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    z = np.load(data_path)
    rows, cls, down, bpm, phase, starts = z["rows"], z["cls"], z["down"], z["bpm"], z["phase"], z["starts"]
    items = json.loads(str(z["items"]))
    if not jazz_labels:  # the WJazzD pseudo beat labels of a --jazz-labels build left out: tempo only
        cls, phase = cls.copy(), phase.copy()
        for i, it in enumerate(items):
            if it["corpus"] == "wjazzd":
                cls[starts[i]:starts[i + 1]] = -1
                phase[starts[i]:starts[i + 1]] = np.nan
    grid = tempo_candidates()
    net = _model(hidden, layers, len(grid), dropout).to(device)
    opt = torch.optim.AdamW(net.parameters(), lr=lr, weight_decay=1e-4)
    held = [in_fold(it, fold) if fold else it["dev"] for it in items]
    train_ix = [i for i, h in enumerate(held) if not h]
    dev_ix = [i for i, h in enumerate(held) if h]
    jazz = np.array([it["corpus"] == "wjazzd" for it in items])
    # each corpus weighs the same in the tempo loss, however many clusters it has
    n_j = sum(starts[i + 1] - starts[i] for i in train_ix if jazz[i])
    n_a = sum(starts[i + 1] - starts[i] for i in train_ix if not jazz[i])
    w_jazz = 0.5 * (n_j + n_a) / max(n_j, 1)
    w_asap = 0.5 * (n_j + n_a) / max(n_a, 1)

    def batch_of(ix: list[int], augment: bool, full: bool = False):
        xs, cs, ds, ts, ws, ps = [], [], [], [], [], []
        for i in ix:
            a, b = int(starts[i]), int(starts[i + 1])
            if not full and b - a > chunk:
                # half the chunks start at the top of the piece: the first bars are what is scored
                a = a if rng.random() < 0.5 else int(rng.integers(a, b - chunk))
                b = a + chunk
            r, t = _augment(rows[a:b], bpm[a:b], rng, augment)
            xs.append(encode(r)); cs.append(cls[a:b]); ds.append(down[a:b]); ps.append(phase[a:b])
            ts.append(t); ws.append(np.full(b - a, w_jazz if jazz[i] else w_asap, np.float32))
        L = max(len(x) for x in xs)
        pad = lambda arrs, fill, dt: np.stack([np.pad(np.asarray(x, dt), (0, L - len(x)) if np.ndim(x) == 1 else ((0, L - len(x)), (0, 0)), constant_values=fill) for x in arrs])  # noqa: E731
        X = torch.tensor(pad(xs, 0.0, np.float32), device=device)
        C = torch.tensor(pad(cs, -1, np.int64), device=device)
        D = torch.tensor(pad(ds, -1, np.float32), device=device)
        T = pad(ts, np.nan, np.float32)
        W = torch.tensor(pad(ws, 0.0, np.float32), device=device)
        valid_t = ~np.isnan(T)
        tgt = np.zeros(T.shape + (len(grid),), np.float32)
        if tempo_weight > 0:  # (the targets are the slow part of a batch)
            tgt[valid_t] = smooth_target(T[valid_t], grid)
        else:
            valid_t[:] = False
        P = pad(ps, np.nan, np.float32)
        valid_p = ~np.isnan(P)
        ptg = np.zeros(P.shape + (PHASE_BINS,), np.float32)
        ptg[valid_p] = phase_target(P[valid_p])
        return (X, C, D, torch.tensor(tgt, device=device), torch.tensor(valid_t, device=device) * W,
                torch.tensor(ptg, device=device), torch.tensor(valid_p, device=device))

    def losses(X, C, D, TG, TW, PG, PM):
        c, d, t, ph, _ = net(X)
        lc = torch.nn.functional.cross_entropy(c.reshape(-1, 3), C.reshape(-1), ignore_index=-1) if (C >= 0).any() else c.sum() * 0
        m = D >= 0
        ld = torch.nn.functional.binary_cross_entropy_with_logits(d[m], D[m]) if m.any() else c.sum() * 0
        lt = -(TG * torch.log_softmax(t, -1)).sum(-1)
        lt = (lt * TW).sum() / TW.sum().clamp(min=1e-6)
        lp = -(PG * torch.log_softmax(ph, -1)).sum(-1)
        lp = (lp * PM).sum() / PM.sum().clamp(min=1)
        return lc, ld, lt, lp

    steps = max(1, len(train_ix) // batch)
    total = epochs * steps
    done = 0

    def set_lr() -> None:
        # a warm-up then a cosine decay, over the steps or, with limit_s, over the seconds allowed
        f = (time.perf_counter() - t0) / limit_s if limit_s else done / total
        g = f / 0.05 if f < 0.05 else 0.5 * (1 + math.cos(math.pi * min(1.0, (f - 0.05) / 0.95)))
        for group in opt.param_groups:
            group["lr"] = lr * max(g, 0.01)
    best, best_state, history = math.inf, None, []
    t0 = time.perf_counter()
    for epoch in range(epochs):
        net.train()
        order = rng.permutation(train_ix)
        tot = np.zeros(4)
        for s in range(steps):
            set_lr()
            lc, ld, lt, lp = losses(*batch_of(list(order[s * batch:(s + 1) * batch]), True))
            loss = lc + 0.5 * ld + tempo_weight * lt + lp
            opt.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(net.parameters(), 1.0)
            opt.step()
            done += 1
            tot += [lc.item(), ld.item(), lt.item(), lp.item()]
        net.eval()
        with torch.no_grad():
            dv = np.zeros(4)
            for s in range(0, len(dev_ix), 16):
                dv += [v.item() for v in losses(*batch_of(dev_ix[s:s + 16], False, full=True))]
            dv /= max(1, math.ceil(len(dev_ix) / 16))
        score = dv[0] + 0.5 * dv[1] + tempo_weight * dv[2] + dv[3]  # the epoch kept: as the loss weighs the heads
        history.append({"epoch": epoch, "train": (tot / steps).round(4).tolist(), "dev": dv.round(4).tolist(),
                        "s": round(time.perf_counter() - t0, 1)})
        print(json.dumps(history[-1]), flush=True)
        if score < best:
            best, best_state = score, {k: v.detach().cpu().clone() for k, v in net.state_dict().items()}
        if limit_s and time.perf_counter() - t0 > limit_s:
            break
    net.load_state_dict(best_state)
    export(net, grid, out, {"hidden": hidden, "layers": layers, "dropout": dropout, "chunk": chunk, "jazz_labels": jazz_labels,
                            "tempo_weight": tempo_weight, "fold": list(fold) if fold else None,
                            "history": history, "items": len(train_ix),
                            "dev_items": len(dev_ix), "best_dev": best})
    return {"best_dev": best, "history": history}


def export(net, grid: np.ndarray, out: Path, info: dict) -> None:
    sd = {k: v.detach().cpu().numpy() for k, v in net.state_dict().items()}
    layers = net.gru.num_layers
    arrays = {"layers": np.array(layers), "tempo_bpm": grid.astype(np.float32),
              "cls_w": sd["cls.weight"], "cls_b": sd["cls.bias"], "down_w": sd["down.weight"], "down_b": sd["down.bias"],
              "tempo_w": sd["tempo.weight"], "tempo_b": sd["tempo.bias"],
              "phase_w": sd["phase.weight"], "phase_b": sd["phase.bias"],
              "info": np.array(json.dumps(info))}
    for k in range(layers):
        for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
            short = {"weight_ih": "w_ih", "weight_hh": "w_hh", "bias_ih": "b_ih", "bias_hh": "b_hh"}[name]
            arrays[f"{short}{k}"] = sd[f"gru.{name}_l{k}"]
    np.savez_compressed(out, **{k: (v.astype(np.float32) if v.dtype.kind == "f" else v) for k, v in arrays.items()})
    print(f"wrote {out} ({out.stat().st_size / 1024:.0f} KiB)")


def plot(weights: Path, out: Path) -> Path:
    """Train and dev loss per epoch of an exported net (its info holds the history)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    with np.load(weights) as z:
        history = json.loads(str(z["info"]))["history"]
    epochs = [h["epoch"] for h in history]
    fig, axes = plt.subplots(1, 4, figsize=(14, 3))
    for k, (ax, name) in enumerate(zip(axes, ("class (beat/half/other)", "downbeat", "tempo", "phase"))):
        ax.plot(epochs, [h["train"][k] for h in history], label="train")
        ax.plot(epochs, [h["dev"][k] for h in history], label="dev")
        ax.set_title(name)
        ax.set_xlabel("epoch")
    axes[0].set_ylabel("cross-entropy (nats)")
    axes[0].legend()
    fig.tight_layout()
    fig.savefig(out, dpi=80)
    return out


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    b = sub.add_parser("build")
    b.add_argument("--data", action="append", default=[])
    b.add_argument("--out", type=Path, required=True)
    b.add_argument("--split", default="train")
    b.add_argument("--limit", type=int, default=0)
    b.add_argument("--jazz-labels", action="store_true", help="pseudo beat labels for WJazzD (librosa at the annotated tempo)")
    b.add_argument("--synthetic", type=int, default=0, help="this many generated performances with known beats (training.tempo_net.synthetic)")
    f = sub.add_parser("fit")
    f.add_argument("data", type=Path)
    f.add_argument("--out", type=Path, required=True)
    f.add_argument("--device", default="cpu")
    f.add_argument("--hidden", type=int, default=96)
    f.add_argument("--layers", type=int, default=2)
    f.add_argument("--epochs", type=int, default=30)
    f.add_argument("--chunk", type=int, default=384)
    f.add_argument("--batch", type=int, default=64)
    f.add_argument("--lr", type=float, default=3e-3)
    f.add_argument("--seed", type=int, default=0)
    f.add_argument("--limit-s", type=float, default=0.0)
    f.add_argument("--dropout", type=float, default=0.2)
    f.add_argument("--no-jazz-labels", action="store_true", help="leave out WJazzD's pseudo beat labels")
    f.add_argument("--tempo-weight", type=float, default=1.0,
                   help="weight of the tempo head's loss (0: not trained; the tracker does not read it by default)")
    f.add_argument("--fold", default=None, help="K/N: train on all but fold K of N, keep that fold as dev (cross-validation)")
    p = sub.add_parser("plot")
    p.add_argument("weights", type=Path)
    p.add_argument("--out", type=Path, required=True)
    a = ap.parse_args(argv)
    if a.cmd == "plot":
        print(plot(a.weights, a.out))
    elif a.cmd == "build":
        build(a.data, a.out, a.split, a.limit, a.jazz_labels, a.synthetic)
    else:
        fit(a.data, a.out, a.device, a.hidden, a.layers, a.epochs, a.chunk, a.batch, a.lr, a.seed, a.limit_s, a.dropout, not a.no_jazz_labels,
            a.tempo_weight, tuple(int(v) for v in a.fold.split("/")) if a.fold else None)


if __name__ == "__main__":
    main()
