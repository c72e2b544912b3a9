"""Motifs: fragments of the performer's call and the ways a player develops them.

An answer that answers takes something of the call with it: a few notes quoted, moved to the
chord under them, sequenced a step higher, pushed a beat later, stretched to twice their
length, or played with another last note. Everything here is a pure function over small
frozen values (like note_seq's sequences_lib): a ``Fragment`` goes in, a new one comes out.
No model, no clock, no I/O: the voice (improvd/voice.py) decides when a fragment plays and
which one, and lets the model score the candidates (docs/motifs.md).

Times are ticks on the engine's grid (12 a beat); a fragment's notes carry absolute onsets,
so where it is placed in the bar (its groove) is part of it.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Callable

import numpy as np

from improvd.chords import Chord
from improvd.encoding import BAR_TICKS, TICKS_PER_BEAT

MIN_NOTES, MAX_NOTES = 3, 8  # a motif: a cell of three notes up to a short phrase
MAX_SPAN = 2 * BAR_TICKS  # longer than two bars is a tune, not a motif
FIT_SHIFTS = tuple(range(-5, 7))  # transpositions a fitted fragment may take (semitones)

ChordAt = Callable[[int], "Chord | None"]


@dataclass(frozen=True)
class Note:
    onset: int  # absolute tick
    pitch: int
    duration: int  # ticks it sounds


@dataclass(frozen=True)
class Fragment:
    """A few consecutive notes of a line (one at a time, ordered by onset), and how they came
    to be what they are: ``how`` names the transforms, "quote" for the call's own notes."""

    notes: tuple
    how: str = "quote"

    @property
    def start(self) -> int:
        return self.notes[0].onset

    @property
    def end(self) -> int:
        return max(n.onset + n.duration for n in self.notes)

    @property
    def span(self) -> int:
        return self.end - self.start

    @property
    def pitches(self) -> tuple:
        return tuple(n.pitch for n in self.notes)

    def _with(self, notes, what: str) -> "Fragment":
        return Fragment(tuple(notes), what if self.how == "quote" else f"{self.how}, {what}")


# -- the call as a line ------------------------------------------------------------------------------
def line_of(notes) -> tuple:
    """The call as one line: ordered by onset, a chord read as its top note, each note ending by
    the next onset at the latest (a fragment never overlaps itself)."""
    by_onset: dict[int, Note] = {}
    for n in notes:
        if n.onset not in by_onset or n.pitch > by_onset[n.onset].pitch:
            by_onset[n.onset] = n
    ordered = [by_onset[t] for t in sorted(by_onset)]
    return tuple(replace(n, duration=max(1, min(n.duration, b.onset - n.onset))) for n, b in zip(ordered, ordered[1:])) \
        + tuple(ordered[-1:])


def fragments(notes, min_notes: int = MIN_NOTES, max_notes: int = MAX_NOTES, max_span: int = MAX_SPAN) -> list[Fragment]:
    """Every run of ``min_notes``..``max_notes`` consecutive notes of the line that lasts at
    most ``max_span`` ticks and has no silence of a beat or more inside: the motifs a listener
    could take from the call."""
    line = line_of(notes)
    out = []
    for i in range(len(line)):
        for k in range(min_notes, max_notes + 1):
            if i + k > len(line):
                break
            run = line[i:i + k]
            if run[-1].onset + run[-1].duration - run[0].onset > max_span:
                break
            if any(b.onset - (a.onset + a.duration) >= TICKS_PER_BEAT for a, b in zip(run, run[1:])):
                break
            out.append(Fragment(run))
    return out


# -- transforms: pure functions -----------------------------------------------------------------------
def transpose(f: Fragment, semitones: int) -> Fragment:
    """Every note moved by ``semitones`` (chromatic: the intervals stay exactly)."""
    if not semitones:
        return f
    return f._with((replace(n, pitch=n.pitch + semitones) for n in f.notes), f"transpose {semitones:+d}")


def _degree_step(pitch: int, steps: int, scale: frozenset) -> int:
    """``pitch`` moved ``steps`` degrees along ``scale`` (pitch classes); a note off the scale
    moves as the nearest scale tone below it does."""
    if not scale or not steps:
        return pitch
    base = pitch
    while base % 12 not in scale:
        base -= 1
    p, direction = base, 1 if steps > 0 else -1
    for _ in range(abs(steps)):
        p += direction
        while p % 12 not in scale:
            p += direction
    return p + (pitch - base)


def diatonic(f: Fragment, steps: int, scale: frozenset) -> Fragment:
    """Moved ``steps`` degrees along ``scale``: a diatonic sequence keeps the key, so a step
    may be a whole tone for one note and a half tone for the next."""
    if not steps or not scale:
        return f
    return f._with((replace(n, pitch=_degree_step(n.pitch, steps, scale)) for n in f.notes), f"diatonic {steps:+d}")


def place(f: Fragment, at: int) -> Fragment:
    """The same notes with their first onset at ``at`` (nothing changes but when)."""
    shift = at - f.start
    return Fragment(tuple(replace(n, onset=n.onset + shift) for n in f.notes), f.how)


def displace(f: Fragment, ticks: int) -> Fragment:
    """Rhythmic displacement: the motif later (or earlier) by ``ticks`` against the bar."""
    if not ticks:
        return f
    return f._with((replace(n, onset=n.onset + ticks) for n in f.notes), f"displace {ticks:+d}")


def augment(f: Fragment, factor: float) -> Fragment:
    """Augmentation (factor 2) or diminution (0.5): onsets from the first, and lengths, scaled."""
    if factor == 1:
        return f
    notes = (replace(n, onset=f.start + int(round((n.onset - f.start) * factor)), duration=max(1, int(round(n.duration * factor))))
             for n in f.notes)
    return f._with(notes, "augment" if factor > 1 else "diminish")


def vary_ending(f: Fragment, pool: frozenset, rng: np.random.Generator) -> Fragment:
    """The last note to a neighbouring tone of ``pool`` (pitch classes; any when empty), up or
    down at random: the motif heard, then turned another way."""
    last = f.notes[-1]
    pool = pool or frozenset(range(12))
    steps = [d for d in (1, 2, 3, 4, 5) if (last.pitch + d) % 12 in pool]
    downs = [-d for d in (1, 2, 3, 4, 5) if (last.pitch - d) % 12 in pool]
    choices = [s for s in (steps[:1] + downs[:1]) if s]
    if not choices:
        return f
    d = int(choices[int(rng.integers(len(choices)))])
    return f._with(f.notes[:-1] + (replace(last, pitch=last.pitch + d),), "vary ending")


def sequence(f: Fragment, steps: int, scale: frozenset = frozenset()) -> Fragment:
    """The motif, then the motif again a whole number of beats later, moved ``steps`` degrees
    along ``scale`` (a diatonic sequence), or ``steps`` semitones when no scale is given."""
    gap = -(-f.span // TICKS_PER_BEAT) * TICKS_PER_BEAT
    moved = [replace(n, onset=n.onset + gap) for n in f.notes]
    moved = [replace(n, pitch=_degree_step(n.pitch, steps, scale) if scale else n.pitch + steps) for n in moved]
    return f._with(f.notes + tuple(moved), f"sequence {steps:+d}")


def _chord_hits(f: Fragment, chord_at: ChordAt, shift: int = 0) -> float:
    """Notes on a tone of the chord under them, a note on a beat counting double."""
    hits = 0.0
    for n in f.notes:
        chord = chord_at(n.onset)
        if chord is not None and (n.pitch + shift) % 12 in chord.tones:
            hits += 2.0 if n.onset % TICKS_PER_BEAT == 0 else 1.0
    return hits


def chord_tone_share(f: Fragment, chord_at: ChordAt) -> float:
    """Share of the notes on a tone of the chord under them (0 with no chart)."""
    notes = [n for n in f.notes if chord_at(n.onset) is not None]
    if not notes:
        return 0.0
    return sum(1 for n in notes if n.pitch % 12 in chord_at(n.onset).tones) / len(f.notes)


def scale_of(notes, size: int = 7) -> frozenset:
    """The call's own scale: its ``size`` pitch classes held longest (fewer if it has fewer).
    Moving a motif along it keeps the call's key, so the answer keeps its colour."""
    weight: dict[int, int] = {}
    for n in notes:
        weight[n.pitch % 12] = weight.get(n.pitch % 12, 0) + n.duration
    return frozenset(sorted(weight, key=lambda pc: (-weight[pc], pc))[:size])


def fit_to_chords(f: Fragment, chord_at: ChordAt, scale: frozenset = frozenset(), shifts=FIT_SHIFTS,
                  steps=(0, -1, 1, -2, 2, -3, 3)) -> Fragment:
    """Moved to the chords under it: along ``scale`` (a diatonic transposition in the call's
    key) by the step in ``steps`` that lands the most notes on chord tones (beats count
    double), the smallest such step; with no scale, chromatically by the shift in ``shifts``.
    Unchanged with no chart."""
    if all(chord_at(n.onset) is None for n in f.notes):
        return f
    if scale:
        moved = [diatonic(f, k, scale) for k in steps]
        return max(moved, key=lambda g: _chord_hits(g, chord_at))  # max keeps the first: the smallest step
    best = max(shifts, key=lambda s: (_chord_hits(f, chord_at, s), -abs(s), s))
    return transpose(f, best)


def land_on_chords(f: Fragment, chord_at: ChordAt) -> Fragment:
    """Notes on a beat that miss the chord under them move to its nearest tone (a player
    bending a quoted motif to the new harmony), never onto the note before; the notes between
    beats stay."""
    notes, moved = [], False
    for n in f.notes:
        chord = chord_at(n.onset)
        if chord is None or n.onset % TICKS_PER_BEAT or n.pitch % 12 in chord.tones:
            notes.append(n)
            continue
        before = notes[-1].pitch if notes else None
        d = next((d for d in (1, -1, 2, -2) if (n.pitch + d) % 12 in chord.tones and n.pitch + d != before), 0)
        notes.append(replace(n, pitch=n.pitch + d))
        moved = moved or bool(d)
    return f._with(notes, "land on chords") if moved else f


def aligned(f: Fragment, after: int, unit: int = BAR_TICKS) -> int:
    """The first tick at or after ``after`` that lies where ``f`` starts within ``unit`` (a
    bar: the motif keeps its place in the bar, its groove)."""
    return after + (f.start - after) % unit


def nearest_place(f: Fragment, after: int) -> int:
    """Where ``f`` starts at or after ``after``: in its own place in the bar when that comes
    within half a bar, else in its place in the half bar (the beat and its subdivision kept),
    so an answer does not wait most of a bar for its motif."""
    at = aligned(f, after)
    return at if at - after <= BAR_TICKS // 2 else aligned(f, after, BAR_TICKS // 2)


# -- candidates ---------------------------------------------------------------------------------------
TRANSFORMS = ("quote", "land", "fit", "transpose", "diatonic", "sequence", "displace", "augment", "vary ending")


def develop(f: Fragment, how: str, at: int, chord_at: ChordAt, rng: np.random.Generator,
            key: frozenset = frozenset()) -> Fragment:
    """``f`` developed by ``how`` (one of TRANSFORMS) and placed at or after ``at`` where it
    keeps its place in the bar; then, unless quoted exactly, moved along ``key`` (the call's
    scale) to the chords under it there ("transpose" moves it chromatically instead)."""
    g = augment(f, 2 if f.span <= BAR_TICKS else 0.5) if how == "augment" else f
    g = place(g, nearest_place(g, at))
    if how == "displace":
        beats = int(rng.choice([1, 2, -1])) * TICKS_PER_BEAT
        g = displace(g, beats if g.start + beats >= at else beats + BAR_TICKS)
    if how == "quote":
        return g
    if how == "transpose":
        return fit_to_chords(g, chord_at)
    g = fit_to_chords(g, chord_at, key)
    if how == "diatonic":
        g = diatonic(g, int(rng.choice([-2, 2])), key)  # a third along the key: chord tones stay chord tones
    elif how == "sequence":
        g = sequence(g, int(rng.choice([-2, -1, 1, 2])), key)
    elif how == "vary ending":
        last = chord_at(g.notes[-1].onset)
        g = vary_ending(g, last.tones if last is not None else key, rng)
    elif how == "land":
        g = land_on_chords(g, chord_at)
    return g


def into_key(notes, home: frozenset) -> tuple:
    """``notes`` transposed by the fewest semitones that puts the most of them in ``home``
    (pitch classes): a call played in E flat, answered by a model that keeps G, is answered
    with its motifs in G, as a player answers in the tune's key."""
    if not home or not notes:
        return tuple(notes)
    shift = max(range(-6, 6), key=lambda k: (sum((n.pitch + k) % 12 in home for n in notes), -abs(k)))
    return tuple(replace(n, pitch=n.pitch + shift) for n in notes)


def candidates(call, at: int, chord_at: ChordAt, rng: np.random.Generator, count: int, until: int | None = None,
               avoid=frozenset(), home: frozenset = frozenset()) -> list[Fragment]:
    """``count`` developments of random fragments of ``call`` (notes), each placed at or after
    ``at`` and starting before ``until``; none whose pitches ``avoid`` holds already (an answer
    does not quote itself). ``home``: the key the answer keeps (see ``into_key``)."""
    call = into_key(call, home)
    pool = fragments(call)
    if not pool:
        return []
    key = home or scale_of(call)
    out: list[Fragment] = []
    for _ in range(4 * count):
        if len(out) >= count:
            break
        f = pool[int(rng.integers(len(pool)))]
        how = TRANSFORMS[int(rng.integers(len(TRANSFORMS)))]
        g = develop(f, how, at, chord_at, rng, key)
        if until is not None and g.start >= until - TICKS_PER_BEAT:
            continue
        if g.pitches in avoid or any(c.notes == g.notes for c in out):
            continue
        out.append(g)
    return out
