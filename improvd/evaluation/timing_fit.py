"""Fit the tempo tracker's onset model on ASAP's train split and write improvd/tempo_model.py.

``python -m improvd.evaluation.timing_fit [--data DIR]``

What is fitted (and why from data): how likely an onset cluster is to fall on a beat, on a
half beat or elsewhere, given what a note-on tells at once (notes in the cluster, its lowest
pitch and its loudest velocity against the recent ones); the phase distribution of each of
those classes, separately for simple and compound meters; and how much more a downbeat's
cluster looks like a downbeat than another beat's. The tracker multiplies these into its
tempo-and-phase posterior, so a light run of sixteenths stops pulling the beat onto itself.

Only the "train" side of the split in improvd.evaluation.timing is read. The features are the
tracker's own (``improvd.tempo.onset_features``), so fitting and following agree.
"""

from __future__ import annotations

import argparse
import datetime
from pathlib import Path

import numpy as np

from improvd.evaluation.timing import asap_items, find_corpora, load_performance
from improvd.tempo import (CLASSES, KERNEL_BINS, MAX_BPM, MIN_BPM, PeriodicityModel, TrackerSettings, chordiness,
                           ioi_histogram, is_compound, onset_features)

HALF_WIDTH = 0.06  # a cluster within 6 % of a beat of its beat (or half beat) belongs to that class
OUT = Path(__file__).resolve().parents[1] / "tempo_model.py"


def _labels(cluster_times: np.ndarray, beats: np.ndarray, downbeats: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(phase in the annotated beat, class 0 beat / 1 half / 2 other, is the beat a downbeat)."""
    i = np.searchsorted(beats, cluster_times) - 1
    ok = (i >= 0) & (i < len(beats) - 1)
    i = np.where(ok, i, 0)
    phase = np.where(ok, (cluster_times - beats[i]) / np.maximum(beats[np.minimum(i + 1, len(beats) - 1)] - beats[i], 1e-6), np.nan)
    dist = np.minimum(phase, 1 - phase)
    cls = np.where(dist < HALF_WIDTH, 0, np.where(np.abs(phase - 0.5) < HALF_WIDTH, 1, 2))
    nearest = np.where(phase < 0.5, i, np.minimum(i + 1, len(beats) - 1))
    down = np.isin(np.round(beats[nearest], 6), np.round(downbeats, 6))
    return phase, cls, down & ok


def collect(folder: Path, settings: TrackerSettings) -> dict:
    feats, phases, classes, compound, down = [], [], [], [], []
    for midi, annotations, piece in asap_items(folder, "train"):
        perf = load_performance(folder, midi, annotations, piece)
        times, x = onset_features(perf.notes.times, perf.notes.pitches, perf.notes.velocities, settings)
        phase, cls, is_down = _labels(times, perf.beats, perf.downbeats)
        ok = ~np.isnan(phase)
        feats.append(x[ok]); phases.append(phase[ok]); classes.append(cls[ok]); down.append(is_down[ok])
        compound.append(np.full(int(ok.sum()), is_compound(perf.signature)))
    return {"x": np.concatenate(feats), "phase": np.concatenate(phases), "cls": np.concatenate(classes),
            "compound": np.concatenate(compound), "down": np.concatenate(down), "performances": len(feats)}


def _softmax_fit(x: np.ndarray, y: np.ndarray, classes: int) -> tuple[np.ndarray, np.ndarray]:
    """Multinomial logistic regression by L-BFGS (a small L2 keeps it finite)."""
    from scipy.optimize import minimize

    xb = np.c_[x, np.ones(len(x))]
    onehot = np.eye(classes)[y]

    def loss(w):
        w = w.reshape(classes, -1)
        z = xb @ w.T
        z -= z.max(axis=1, keepdims=True)
        logp = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
        grad = (np.exp(logp) - onehot).T @ xb / len(x) + 1e-4 * w
        return -(onehot * logp).sum() / len(x) + 0.5e-4 * (w ** 2).sum(), grad.ravel()

    w = minimize(loss, np.zeros(classes * xb.shape[1]), jac=True, method="L-BFGS-B").x.reshape(classes, -1)
    return w[:, :-1], w[:, -1]


def _kernel(phase: np.ndarray) -> np.ndarray:
    """Phase histogram over KERNEL_BINS, lightly smoothed (circularly), mean 1."""
    h = np.histogram(phase % 1.0, bins=KERNEL_BINS, range=(0.0, 1.0))[0].astype(float) + 0.5
    x = np.arange(KERNEL_BINS)
    g = np.exp(-0.5 * (np.minimum(x, KERNEL_BINS - x) / 0.8) ** 2)
    h = np.real(np.fft.ifft(np.fft.fft(h) * np.fft.fft(g / g.sum())))
    return h / h.mean()


def fit(data: dict) -> dict:
    x, cls, comp = data["x"], data["cls"], data["compound"]
    coef, intercept = _softmax_fit(x, cls, len(CLASSES))
    prior = np.bincount(cls, minlength=3) / len(cls)
    model = {"class_coef": coef, "class_intercept": intercept, "adjust": {}, "kernels": {}}
    for name, flag in (("simple", False), ("compound", True)):
        sel = comp == flag
        model["adjust"][name] = np.log(np.bincount(cls[sel], minlength=3) / sel.sum() / prior)
        model["kernels"][name] = np.array([_kernel(data["phase"][sel & (cls == c)]) for c in range(3)])
    beat = cls == 0
    dcoef, dintercept = _softmax_fit(x[beat], data["down"][beat].astype(int), 2)
    model["downbeat_coef"] = dcoef[1] - dcoef[0]
    model["downbeat_intercept"] = float(dintercept[1] - dintercept[0])
    model["clusters"] = int(len(cls))
    model["performances"] = data["performances"]
    return model


# --------------------------------------------------------------------------- the tempo (periodicity) model
ASAP_CHECKPOINTS = (8.0, 15.0, 30.0, 60.0, 120.0)  # seconds after the first onset
TEMPO_L2 = 1e-3


def tempo_samples(folder_jazz: Path | None, folder_asap: Path | None, memory: float, limit: int = 0) -> list[tuple[np.ndarray, float, str]]:
    """(IOI histogram of the clusters before a checkpoint, the tempo there, corpus) from the
    train split: WJazzD solos after 4 and 8 bars and at the end (annotated average tempo), ASAP
    performances at a few checkpoints (the annotated beats' local tempo: median of the last 8
    inter-beat intervals)."""
    from improvd.evaluation.timing import WJAZZD_CHECKPOINTS, load_solo, wjazzd_items

    out = []
    if folder_jazz is not None:
        items = wjazzd_items(folder_jazz, "train")
        for name, bpm in items[:limit or None]:
            solo = load_solo(folder_jazz, name, bpm)
            starts, x = onset_features(solo.notes.times, solo.notes.pitches, solo.notes.velocities)
            t0 = float(starts[0])
            for end in [t0 + n * 4 * 60.0 / bpm for n in WJAZZD_CHECKPOINTS] + [float(starts[-1]) + 1e-6]:
                out.append((ioi_histogram(starts, memory, end), bpm, "wjazzd", chordiness(starts, x, memory, end)))
    if folder_asap is not None:
        items = asap_items(folder_asap, "train")
        for midi, annotations, piece in items[:limit or None]:
            perf = load_performance(folder_asap, midi, annotations, piece)
            starts, x = onset_features(perf.notes.times, perf.notes.pitches, perf.notes.velocities)
            t0 = float(starts[0])
            for c in ASAP_CHECKPOINTS:
                end = t0 + c
                before = perf.beats[perf.beats < end]
                if end > starts[-1] or len(before) < 9:
                    continue
                bpm = 60.0 / float(np.median(np.diff(before[-9:])))
                if MIN_BPM <= bpm <= MAX_BPM:
                    out.append((ioi_histogram(starts, memory, end), bpm, "asap", chordiness(starts, x, memory, end)))
    return out


def _conditional_logit(X: np.ndarray, Y: np.ndarray, l2: float = TEMPO_L2, weights: np.ndarray | None = None) -> np.ndarray:
    """Weights w maximising the mean log of the softmax(X @ w) mass on the positive candidates."""
    from scipy.optimize import minimize

    sw = np.ones(len(X)) if weights is None else weights / weights.mean()

    def loss(w):
        z = X @ w
        z = z - z.max(axis=1, keepdims=True)
        p = np.exp(z)
        p /= p.sum(axis=1, keepdims=True)
        pos = (p * Y).sum(axis=1) + 1e-12
        # d/dw of -log pos: E_p[x] - E_{p|pos}[x]
        q = p * Y / pos[:, None]
        grad = ((p - q)[:, :, None] * X).sum(axis=1)
        return float(-(sw * np.log(pos)).mean() + l2 * (w ** 2).sum()), (sw[:, None] * grad).mean(axis=0) + 2 * l2 * w

    return minimize(loss, np.zeros(X.shape[2]), jac=True, method="L-BFGS-B").x


def tempo_design(samples, fallback_bpm: float = 120.0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    model = PeriodicityModel(fallback_bpm)
    X = np.array([model.features(h, c) for h, _, _, c in samples])
    R = np.array([s[1] for s in samples])
    Y = np.abs(model.bpm[None, :] / R[:, None] - 1.0) <= 0.04
    return X, Y, R


def tempo_accuracy(w: np.ndarray, X: np.ndarray, R: np.ndarray) -> tuple[float, float]:
    from improvd.evaluation.timing import tempo_hits

    bpm = PeriodicityModel(120.0).bpm
    est = bpm[np.argmax(X @ w, axis=1)]
    hits = np.array([tempo_hits(e, r) for e, r in zip(est, R)])
    return float(hits[:, 0].mean()), float(hits[:, 1].mean())


def fit_tempo(samples) -> dict:
    X, Y, R = tempo_design(samples)
    corpus = np.array([s[2] for s in samples])
    # each corpus weighs the same however many samples it gives
    sw = np.where(corpus == "wjazzd", 1.0 / max(1, (corpus == "wjazzd").sum()), 1.0 / max(1, (corpus == "asap").sum()))
    w = _conditional_logit(X, Y, weights=sw)
    report = {c: tempo_accuracy(w, X[corpus == c], R[corpus == c]) for c in sorted(set(corpus))}
    return {"tempo_weights": w, "tempo_samples": len(samples), "tempo_train_acc": report}


def current_onset_model() -> dict:
    """The onset model as improvd/tempo_model.py holds it now (to refit the interval model alone)."""
    import importlib
    import re

    from improvd import tempo_model as m

    m = importlib.reload(m)
    head = re.search(r"Fitted on (\d+) performances \((\d+) onset clusters\)", m.__doc__ or "")
    return {"class_coef": m.CLASS_COEF, "class_intercept": m.CLASS_INTERCEPT, "adjust": m.CLASS_ADJUST,
            "kernels": m.KERNELS, "downbeat_coef": m.DOWNBEAT_COEF, "downbeat_intercept": m.DOWNBEAT_INTERCEPT,
            "performances": int(head.group(1)) if head else 0, "clusters": int(head.group(2)) if head else 0}


def _fmt(a) -> str:
    a = np.asarray(a, dtype=float)
    if a.ndim == 0:
        return f"{float(a):.5f}"
    return "[" + ", ".join(_fmt(v) for v in a) + "]"


def write(model: dict, out: Path = OUT) -> Path:
    lines = [
        '"""The tempo tracker\'s onset model: GENERATED by `python -m improvd.evaluation.timing_fit`, do not edit.',
        "",
        f"Fitted on {model['performances']} performances ({model['clusters']} onset clusters) of ASAP's train split",
        f"(improvd.evaluation.timing.split_of), {datetime.date.today().isoformat()}. Classes: {', '.join(CLASSES)}.",
        '"""',
        "",
        f"CLASS_COEF = {_fmt(model['class_coef'])}",
        f"CLASS_INTERCEPT = {_fmt(model['class_intercept'])}",
        "CLASS_ADJUST = {" + ", ".join(f'"{k}": {_fmt(v)}' for k, v in model["adjust"].items()) + "}",
        f"DOWNBEAT_COEF = {_fmt(model['downbeat_coef'])}",
        f"DOWNBEAT_INTERCEPT = {_fmt(model['downbeat_intercept'])}",
        "# the interval model (improvd.tempo.PeriodicityModel): comb at x1/3 x1/2 x2/3 x1 x1.5 x2 x3 x4, prior x, x^2;",
        f"# then the same times the share of chords. {model['tempo_samples']} samples (WJazzD and ASAP train); on them,",
        "# Acc1/Acc2 of its best candidate: " + ", ".join(f"{k} {a:.3f}/{b:.3f}" for k, (a, b) in model["tempo_train_acc"].items()),
        f"TEMPO_WEIGHTS = {_fmt(model['tempo_weights'])}",
        "KERNELS = {",
    ]
    for k, v in model["kernels"].items():
        lines.append(f'    "{k}": [')
        lines += [f"        {_fmt(row)}," for row in v]
        lines.append("    ],")
    lines.append("}")
    text = "\n".join(lines) + "\n"
    out.write_text(text)
    return out


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", action="append", default=[], help="the timing folder (wjazzd_onsets/ and asap/)")
    ap.add_argument("--part", choices=("all", "tempo"), default="all",
                    help="tempo: refit the interval model only, keeping the onset model as it is")
    args = ap.parse_args(argv)
    corpora = find_corpora(args.data)
    folder = corpora.get("asap")
    if folder is None:
        raise SystemExit("no asap/ corpus under --data")
    if args.part == "all":
        data = collect(folder, TrackerSettings())
        model = fit(data)
    else:
        model = current_onset_model()
    model |= fit_tempo(tempo_samples(corpora.get("wjazzd"), folder, TrackerSettings().ioi_memory))
    print(f"{model['performances']} performances, {model['clusters']} clusters; {model['tempo_samples']} tempo samples "
          f"(train Acc1/Acc2 {model['tempo_train_acc']}); wrote {write(model)}")


if __name__ == "__main__":
    main()
