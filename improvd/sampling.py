"""Turning logits into a choice: temperature, nucleus (top-p), greedy, all from one seeded RNG."""

from __future__ import annotations

import numpy as np


def softmax(logits: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    z = np.asarray(logits, dtype=np.float64) / max(temperature, 1e-6)
    z = z - z.max()
    p = np.exp(z)
    return p / p.sum()


def sample(logits: np.ndarray, rng: np.random.Generator, temperature: float = 1.0,
           top_p: float = 1.0, mask: np.ndarray | None = None) -> int:
    """One index. ``temperature <= 0`` is greedy; ``mask`` (bool) forbids indices."""
    logits = np.asarray(logits, dtype=np.float64).copy()
    if mask is not None:
        logits[mask] = -np.inf
    if temperature <= 0:
        return int(np.argmax(logits))
    p = softmax(logits, temperature)
    if top_p < 1.0:
        order = np.argsort(-p)
        cum = np.cumsum(p[order])
        keep = order[: int(np.searchsorted(cum, top_p) + 1)]
        q = np.zeros_like(p)
        q[keep] = p[keep]
        p = q / q.sum()
    return int(rng.choice(len(p), p=p))
