"""The tempo tracker's learned ears: a small GRU over onset clusters, run in plain numpy.

Why a recurrent net here: whether a cluster of note-ons falls on a beat, and which tempo a
phrase is in, depends on what came before it (the run of eighths it ends, the bass note four
clusters back, the swung pair before it), which the tracker's three-feature logistic onset model
and its interval histogram cannot see. The net reads one cluster at a time, causally, and says
(a) how likely this cluster is to fall on a beat, a half beat or elsewhere (the same three
classes as ``improvd.tempo_model``, so the tracker's phase kernels still apply), (b) the log-odds
that it is a downbeat, (c) a distribution over tempo candidates (the interval model's grid).
The tracker multiplies these into its filter; the bar-pointer filter, hysteresis and grid stay.

Trained offline with torch (``python -m improvd.training.tempo_net``, on the developers' train
split only) and exported as plain arrays (models/tempo_net.npz, shipped as improvd.bundled);
the daemon runs it with numpy and never imports torch. One encoding (``ClusterInput`` and
``encode``) serves training and runtime.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np

RAW_COLUMNS = ("notes", "low", "loud", "mean_low", "mean_loud", "dt", "beats_per_bar", "compound")
FEATURES = 11
FIRST_DT = 8.0  # the first cluster's interval: as long as the longest a feature tells apart
FEATURE_MEMORY = 0.15  # running means of bass and loudness: weight of each new cluster (as the tracker's)
WEIGHTS = "tempo_net.npz"
PHASE_BINS = 24  # the net's distribution over where in the beat a cluster falls


def encode(raw: np.ndarray) -> np.ndarray:
    """Features (n, FEATURES) of raw cluster rows (n, len(RAW_COLUMNS)): pure, float32.

    Counts in logs, pitch in octaves and loudness in 20 velocity steps against the recent
    clusters (the tracker's own onset features), absolute register and loudness, the interval
    since the previous cluster (log seconds), and the meter the performer set."""
    raw = np.asarray(raw, dtype=np.float64).reshape(-1, len(RAW_COLUMNS))
    notes, low, loud, mlow, mloud, dt, bpb, comp = raw.T
    out = np.empty((len(raw), FEATURES), dtype=np.float32)
    out[:, 0] = np.log(np.clip(notes, 1, 8))
    out[:, 1] = (low - mlow) / 12.0
    out[:, 2] = (loud - mloud) / 20.0
    out[:, 3] = (low - 60.0) / 24.0
    out[:, 4] = (loud - 64.0) / 32.0
    out[:, 5] = np.log(np.clip(dt, 0.02, FIRST_DT))
    out[:, 6] = dt >= FIRST_DT
    out[:, 7] = bpb == 2
    out[:, 8] = bpb == 3
    out[:, 9] = (bpb != 2) & (bpb != 3)
    out[:, 10] = comp
    return out


class ClusterInput:
    """Raw rows for the clusters of one performance, built as the tracker hears them: running
    means of bass and loudness over the clusters before (weight FEATURE_MEMORY), the interval
    from the previous cluster's first note."""

    def __init__(self, beats_per_bar: int = 4, compound: bool = False):
        self.beats_per_bar, self.compound = int(beats_per_bar), bool(compound)
        self.reset()

    def reset(self) -> None:
        self._prev_t: float | None = None
        self._mean_low: float | None = None
        self._mean_loud = 64.0

    def row(self, t: float, notes: int, low: float, loud: float) -> list[float]:
        """The row of a cluster starting at ``t`` (its notes so far); does not advance."""
        mean_low = low if self._mean_low is None else self._mean_low
        mean_loud = loud if self._mean_low is None else self._mean_loud
        dt = FIRST_DT if self._prev_t is None else max(0.0, t - self._prev_t)
        return [notes, low, loud, mean_low, mean_loud, dt, self.beats_per_bar, float(self.compound)]

    def close(self, t: float, low: float, loud: float) -> None:
        """The cluster at ``t`` is complete: it joins the running means."""
        if self._mean_low is None:
            self._mean_low, self._mean_loud = low, loud
        else:
            a = FEATURE_MEMORY
            self._mean_low = (1 - a) * self._mean_low + a * low
            self._mean_loud = (1 - a) * self._mean_loud + a * loud
        self._prev_t = t


def cluster_rows(times: np.ndarray, pitches: np.ndarray, velocities: np.ndarray, beats_per_bar: int = 4,
                 compound: bool = False, chord_window: float = 0.035, chord_notes: int = 8) -> tuple[np.ndarray, np.ndarray]:
    """(cluster start times, raw rows) of a whole performance, exactly as ClusterInput builds them
    live (for training and for tests that the two agree)."""
    feed = ClusterInput(beats_per_bar, compound)
    starts: list[int] = []
    for i, t in enumerate(times):
        if not starts or t - times[starts[-1]] >= chord_window:
            starts.append(i)
    bounds = starts + [len(times)]
    rows = []
    for c in range(len(starts)):
        a, b = bounds[c], min(bounds[c + 1], bounds[c] + chord_notes)
        t, low, loud = float(times[a]), float(np.min(pitches[a:b])), float(np.max(velocities[a:b]))
        rows.append(feed.row(t, b - a, low, loud))
        feed.close(t, low, loud)
    return np.asarray(times, dtype=float)[starts], np.array(rows, dtype=float).reshape(-1, len(RAW_COLUMNS))


@dataclass(frozen=True)
class Output:
    """What the net says after a cluster."""

    classes: np.ndarray  # p(beat, half, other) of the cluster
    downbeat_logodds: float
    hidden: tuple  # the state after the cluster (to step on from)
    phase: np.ndarray | None = None  # p(phase bin) of the cluster in its beat, PHASE_BINS bins from the beat


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * x))


class TempoNet:
    """The exported GRU: ``step`` one cluster at a time (a few small gemv's per layer), ``tempo``
    for the distribution over the tempo candidates when asked (one more gemv)."""

    def __init__(self, weights: dict):
        self.layers = []
        n = int(weights["layers"])
        for k in range(n):
            w_ih, w_hh = weights[f"w_ih{k}"].astype(np.float32), weights[f"w_hh{k}"].astype(np.float32)
            b_ih, b_hh = weights[f"b_ih{k}"].astype(np.float32), weights[f"b_hh{k}"].astype(np.float32)
            H = w_hh.shape[1]
            # r and z take both biases at once; n keeps b_hh inside r * (...)
            self.layers.append((w_ih, w_hh, b_ih + np.r_[b_hh[:2 * H], np.zeros(H, np.float32)], b_hh[2 * H:].copy(), H))
        self.hidden_size = self.layers[-1][4]
        self.cls_w, self.cls_b = weights["cls_w"].astype(np.float32), weights["cls_b"].astype(np.float32)
        self.down_w, self.down_b = weights["down_w"].astype(np.float32).ravel(), float(np.asarray(weights["down_b"]).ravel()[0])
        self.tempo_w, self.tempo_b = weights["tempo_w"].astype(np.float32), weights["tempo_b"].astype(np.float32)
        self.tempo_bpm = weights["tempo_bpm"].astype(float)
        self.phase_w = weights["phase_w"].astype(np.float32) if "phase_w" in weights else None
        self.phase_b = weights["phase_b"].astype(np.float32) if "phase_b" in weights else None
        self.info = str(weights["info"]) if "info" in weights else ""

    @classmethod
    def load(cls, path: str | Path | None = None) -> "TempoNet":
        if path is None:
            with resources.as_file(resources.files("improvd.bundled") / WEIGHTS) as p:
                with np.load(p) as z:
                    return cls(dict(z))
        with np.load(path) as z:
            return cls(dict(z))

    def initial(self) -> tuple:
        return tuple(np.zeros(layer[4], np.float32) for layer in self.layers)

    def step(self, hidden: tuple, features: np.ndarray, phase: bool = False) -> Output:
        """One cluster; the phase head only when asked (the tracker reads it only with net_phase > 0)."""
        x = np.asarray(features, dtype=np.float32)
        new = []
        for (w_ih, w_hh, b_i, b_hn, H), h in zip(self.layers, hidden):
            gi = w_ih @ x + b_i
            gh = w_hh @ h
            rz = _sigmoid(gi[:2 * H] + gh[:2 * H])
            n = np.tanh(gi[2 * H:] + rz[:H] * (gh[2 * H:] + b_hn))
            z = rz[H:]
            h = n + z * (h - n)
            new.append(h)
            x = h
        c = self.cls_w @ x + self.cls_b
        c = np.exp(c - c.max())
        ph = None
        if phase and self.phase_w is not None:
            ph = self.phase_w @ x + self.phase_b
            ph = np.exp(ph - ph.max())
            ph /= ph.sum()
        return Output(c / c.sum(), float(self.down_w @ x + self.down_b), tuple(new), ph)

    def tempo(self, hidden: tuple) -> np.ndarray:
        """p(tempo candidate) over ``tempo_bpm``."""
        z = self.tempo_w @ hidden[-1] + self.tempo_b
        z = np.exp(z - z.max())
        return z / z.sum()

    def run(self, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Whole performance at once (tests, evaluation): (classes (n, 3), downbeat log-odds (n,), tempo (n, bins))."""
        h = self.initial()
        feats = encode(rows)
        cls, down, tempo = [], [], []
        for f in feats:
            o = self.step(h, f)
            h = o.hidden
            cls.append(o.classes)
            down.append(o.downbeat_logodds)
            tempo.append(self.tempo(h))
        return np.array(cls), np.array(down), np.array(tempo)


_CACHE: dict[str, TempoNet] = {}


def bundled() -> TempoNet | None:
    """The shipped net, loaded once per process; None if the package holds none."""
    if "net" not in _CACHE:
        try:
            _CACHE["net"] = TempoNet.load()
        except (FileNotFoundError, ModuleNotFoundError, OSError, KeyError):
            return None
    return _CACHE["net"]


def phase_target(phase: np.ndarray, sigma: float = 1.0 / PHASE_BINS) -> np.ndarray:
    """Soft phase targets: a circular Gaussian (in beats) around each cluster's phase, over PHASE_BINS."""
    centres = np.arange(PHASE_BINS) / PHASE_BINS  # bin 0 is centred on the beat
    d = np.asarray(phase, dtype=float)[:, None] - centres[None, :]
    d = d - np.round(d)
    p = np.exp(-0.5 * (d / sigma) ** 2)
    return p / p.sum(axis=1, keepdims=True)


def tempo_candidates(min_bpm: float = 30.0, max_bpm: float = 300.0) -> np.ndarray:
    """The interval model's tempo grid (1 % steps): the net's tempo output uses the same one."""
    from improvd.tempo import PeriodicityModel

    return PeriodicityModel(120.0, min_bpm, max_bpm).bpm.copy()


def smooth_target(bpm: np.ndarray, grid: np.ndarray, sigma: float = 0.015) -> np.ndarray:
    """Soft tempo targets: a Gaussian in log tempo around each reference (rows sum to 1)."""
    d = np.log(grid[None, :]) - np.log(np.asarray(bpm, dtype=float))[:, None]
    p = np.exp(-0.5 * (d / sigma) ** 2)
    return p / np.maximum(p.sum(axis=1, keepdims=True), 1e-12)


__all__ = ["ClusterInput", "TempoNet", "encode", "cluster_rows", "bundled", "tempo_candidates", "smooth_target",
           "phase_target", "RAW_COLUMNS", "FEATURES", "PHASE_BINS"]
