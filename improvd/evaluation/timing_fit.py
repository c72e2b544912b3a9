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
from improvd.tempo import (CLASSES, KERNEL_BINS, TrackerSettings, is_compound, onset_features)

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
        "KERNELS = {",
    ]
    for k, v in model["kernels"].items():
        lines.append(f'    "{k}": [')
        lines += [f"        {_fmt(row)}," for row in v]
        lines.append("    ],")
    lines.append("}")
    out.write_text("\n".join(lines) + "\n")
    return out


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", action="append", default=[], help="the timing folder or its asap/ subfolder")
    args = ap.parse_args(argv)
    folder = find_corpora(args.data).get("asap")
    if folder is None:
        raise SystemExit("no asap/ corpus under --data")
    data = collect(folder, TrackerSettings())
    model = fit(data)
    print(f"{data['performances']} performances, {model['clusters']} clusters; wrote {write(model)}")


if __name__ == "__main__":
    main()
