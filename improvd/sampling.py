"""Turning logits into a choice: temperature, nucleus (top-p), greedy, all from one seeded RNG.

Written for one draw at a time on the daemon's hot path: an inverse-CDF draw from one uniform
costs a few microseconds where ``Generator.choice(p=...)`` costs tens.
"""

from __future__ import annotations

import numpy as np


def softmax(logits: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    z = np.asarray(logits, dtype=np.float64) / max(temperature, 1e-6)
    z = z - z.max()
    p = np.exp(z)
    return p / p.sum()


def sample(logits: np.ndarray, rng: np.random.Generator, temperature: float = 1.0,
           top_p: float = 1.0, mask: np.ndarray | None = None) -> int:
    """One index. ``temperature <= 0`` is greedy; ``mask`` (bool, True = forbidden)."""
    z = np.asarray(logits, dtype=np.float64)
    if mask is not None:
        z = np.where(mask, -np.inf, z)
    if temperature <= 0:
        return int(np.argmax(z))
    p = softmax(z, temperature)
    if top_p < 1.0:
        order = np.argsort(-p)
        cum = np.cumsum(p[order])
        cut = int(np.searchsorted(cum, top_p * cum[-1])) + 1
        keep = order[:cut]
        cdf = np.cumsum(p[keep])
        return int(keep[min(cut - 1, int(np.searchsorted(cdf, rng.random() * cdf[-1], side="right")))])
    cdf = np.cumsum(p)
    return min(len(p) - 1, int(np.searchsorted(cdf, rng.random() * cdf[-1], side="right")))
