"""Post-processing rules: each a small pure function on one candidate note, chained by config.

A rule gets the candidate and what it may look at (chord, recent output, the performer's
dynamics) and returns the note to play, or None to drop it. Order matters and is the
user's: ``[rules] order = [...]`` in the config.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from improvd.chords import Chord
from improvd.encoding import fold_to_range


@dataclass(frozen=True)
class Candidate:
    pitch: int
    velocity: int
    duration: int  # ticks
    delay_ms: float = 0.0


@dataclass(frozen=True)
class RuleContext:
    chord: Chord | None
    recent: tuple  # the machine's last pitches, oldest first
    performer_velocity: float | None  # mean of the performer's recent velocities
    sounding: int  # notes the machine has sounding now
    rng: np.random.Generator
    settings: object  # improvd.config.RuleSettings


def range_clamp(n: Candidate, c: RuleContext) -> Candidate:
    """Fold by octaves into [range_low, range_high]: keeps the pitch class the model chose."""
    lo, hi = c.settings.range_low, c.settings.range_high
    p = fold_to_range(n.pitch, lo, hi)
    if p < lo:  # range narrower than an octave
        p = lo
    return replace(n, pitch=p)


def max_leap(n: Candidate, c: RuleContext) -> Candidate:
    """A leap wider than max_leap moves by the fewest octaves that bring it within the limit
    (the nearest octave to the previous note when none does), staying in range: the pitch
    class the model chose is kept, only the register changes."""
    if not c.recent:
        return n
    prev, p = c.recent[-1], n.pitch
    limit = c.settings.max_leap
    if abs(p - prev) <= limit:
        return n
    lo, hi = c.settings.range_low, c.settings.range_high
    options = sorted((q for q in range(p % 12, 128, 12) if lo <= q <= hi), key=lambda q: abs(q - p)) or [p]
    within = [q for q in options if abs(q - prev) <= limit]
    return replace(n, pitch=within[0] if within else min(options, key=lambda q: (abs(q - prev), abs(q - p))))


def _in_range(q: int, n: Candidate, c: RuleContext) -> bool:
    """A step may not leave the range a note was already in (the range is the user's promise)."""
    lo, hi = c.settings.range_low, c.settings.range_high
    return lo <= q <= hi or not lo <= n.pitch <= hi


def max_repeats(n: Candidate, c: RuleContext) -> Candidate:
    """More than max_repeats of one pitch in a row: step to the nearest other chord or scale tone."""
    k = c.settings.max_repeats
    if len(c.recent) < k or any(r != n.pitch for r in c.recent[-k:]):
        return n
    pool = (c.chord.tones | c.chord.scale) if c.chord else frozenset(range(12))
    for d in (1, -1, 2, -2, 3, -3, 4, -4, 5, -5):
        if (n.pitch + d) % 12 in pool and _in_range(n.pitch + d, n, c):
            return replace(n, pitch=n.pitch + d)
    return n


def min_length(n: Candidate, c: RuleContext) -> Candidate:
    return replace(n, duration=max(n.duration, c.settings.min_length))


def snap(n: Candidate, c: RuleContext) -> Candidate:
    """With probability snap_strength, move to the nearest chord (or scale) tone."""
    s = c.settings.snap_strength
    if c.chord is None or s <= 0 or (s < 1 and c.rng.random() >= s):
        return n
    # the chord as written: over C6 a note snaps to the A, not to the template's B
    pool = c.chord.pitch_classes if c.settings.snap_to == "chord" else c.chord.scale
    if n.pitch % 12 in pool:
        return n
    for d in (1, -1, 2, -2, 3, -3):
        if (n.pitch + d) % 12 in pool and _in_range(n.pitch + d, n, c):
            return replace(n, pitch=n.pitch + d)
    return n


def polyphony(n: Candidate, c: RuleContext) -> Candidate | None:
    return None if c.sounding >= c.settings.max_polyphony else n


def velocity(n: Candidate, c: RuleContext) -> Candidate:
    """Lean towards the performer's recent dynamics, so a soft phrase gets a soft answer."""
    if c.performer_velocity is None:
        return n
    f = c.settings.velocity_follow
    v = (1 - f) * n.velocity + f * c.performer_velocity
    return replace(n, velocity=int(max(1, min(127, round(v)))))


def humanize(n: Candidate, c: RuleContext) -> Candidate:
    """A small random delay (never early: a note cannot leave before it is due)."""
    ms = c.settings.humanize_ms
    if ms <= 0:
        return n
    return replace(n, delay_ms=float(abs(c.rng.normal(0, ms))),
                   velocity=int(max(1, min(127, n.velocity + c.rng.integers(-6, 7)))))


RULES = {
    "range": range_clamp, "max_leap": max_leap, "max_repeats": max_repeats, "min_length": min_length,
    "snap": snap, "polyphony": polyphony, "velocity": velocity, "humanize": humanize,
}


def apply_rules(n: Candidate, ctx: RuleContext, order) -> Candidate | None:
    for name in order:
        n = RULES[name](n, ctx)
        if n is None:
            return None
    return n
