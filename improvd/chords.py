"""Chord symbols: parsing, templates, scales and live detection.

One vocabulary of eight chord types, the one the Weimar Jazz Database uses, so the chord the
performer types, the chord the daemon detects and the chord the model was trained on are the
same object.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from improvd import ImprovdError

NOTE_NAMES = ("C", "C#", "D", "Eb", "E", "F", "F#", "G", "Ab", "A", "Bb", "B")
_LETTER_PC = {"C": 0, "D": 2, "E": 4, "F": 5, "G": 7, "A": 9, "B": 11}

CHORD_TYPES = ("maj", "dom7", "dom7alt", "min7", "m7b5", "dim", "aug", "minmaj7")

# Pitch classes above the root that count as chord tones.
CHORD_TONES = {
    "maj": (0, 4, 7, 11),
    "dom7": (0, 4, 7, 10),
    "dom7alt": (0, 4, 10, 1, 3, 8),
    "min7": (0, 3, 7, 10),
    "m7b5": (0, 3, 6, 10),
    "dim": (0, 3, 6, 9),
    "aug": (0, 4, 8, 10),
    "minmaj7": (0, 3, 7, 11),
}

# The chord-scale a jazz player would reach for over each type.
CHORD_SCALES = {
    "maj": (0, 2, 4, 5, 7, 9, 11),
    "dom7": (0, 2, 4, 5, 7, 9, 10),
    "dom7alt": (0, 1, 3, 4, 6, 8, 10),
    "min7": (0, 2, 3, 5, 7, 9, 10),
    "m7b5": (0, 1, 3, 5, 6, 8, 10),
    "dim": (0, 2, 3, 5, 6, 8, 9, 11),
    "aug": (0, 2, 4, 6, 8, 10),
    "minmaj7": (0, 2, 3, 5, 7, 9, 11),
}

# Quality suffixes as people write them, longest first when matching.
_QUALITIES = {
    "": "maj", "maj": "maj", "maj7": "maj", "M7": "maj", "M": "maj", "^": "maj", "^7": "maj",
    "6": "maj", "69": "maj", "maj9": "maj", "add9": "maj", "Δ": "maj", "Δ7": "maj",
    "7": "dom7", "9": "dom7", "11": "dom7", "13": "dom7", "7sus4": "dom7", "7sus": "dom7",
    "sus4": "dom7", "sus": "dom7", "9sus4": "dom7",
    "7alt": "dom7alt", "alt": "dom7alt", "7b9": "dom7alt", "7#9": "dom7alt", "7b13": "dom7alt",
    "7#5": "dom7alt", "7b5": "dom7alt", "7#11": "dom7", "7b9b13": "dom7alt",
    "m": "min7", "m7": "min7", "-": "min7", "-7": "min7", "min": "min7", "min7": "min7",
    "m9": "min7", "m11": "min7", "m6": "min7", "-6": "min7", "mi7": "min7",
    "m7b5": "m7b5", "-7b5": "m7b5", "ø": "m7b5", "ø7": "m7b5", "h7": "m7b5",
    "dim": "dim", "dim7": "dim", "o": "dim", "o7": "dim", "°": "dim", "°7": "dim",
    "aug": "aug", "+": "aug", "+7": "aug", "aug7": "aug", "7+": "aug",
    "mM7": "minmaj7", "m(maj7)": "minmaj7", "-maj7": "minmaj7", "mmaj7": "minmaj7", "-^7": "minmaj7",
}
_SYMBOL = re.compile(r"^([A-Ga-g])([#b♯♭]?)(.*?)(?:/([A-Ga-g][#b♯♭]?))?$")


@dataclass(frozen=True)
class Chord:
    root: int  # pitch class 0..11
    kind: str  # one of CHORD_TYPES

    @property
    def tones(self) -> frozenset[int]:
        return frozenset((self.root + i) % 12 for i in CHORD_TONES[self.kind])

    @property
    def scale(self) -> frozenset[int]:
        return frozenset((self.root + i) % 12 for i in CHORD_SCALES[self.kind])

    @property
    def name(self) -> str:
        suffix = {"maj": "maj7", "dom7": "7", "dom7alt": "7alt", "min7": "m7", "m7b5": "m7b5",
                  "dim": "dim7", "aug": "aug", "minmaj7": "mM7"}[self.kind]
        return NOTE_NAMES[self.root] + suffix

    def transpose(self, semitones: int) -> "Chord":
        return Chord((self.root + semitones) % 12, self.kind)


def parse_chord(symbol: str) -> Chord:
    """One chord symbol such as ``Dm7``, ``G7b9``, ``Cmaj7``, ``F#ø``, ``Bb7/D``."""
    text = symbol.strip()
    m = _SYMBOL.match(text)
    if not m:
        raise ImprovdError(f"chord {symbol!r} is not a chord symbol: write a root A-G, an optional # or b, then a quality such as m7, 7, maj7, m7b5, dim7")
    letter, accidental, quality, _bass = m.groups()
    pc = _LETTER_PC[letter.upper()]
    pc += {"#": 1, "♯": 1, "b": -1, "♭": -1, "": 0}[accidental]
    quality = quality.replace("6/9", "69")
    if "/" in quality:  # a slash not followed by a valid bass note, e.g. Dm7/Q
        raise ImprovdError(f"chord {symbol!r}: the bass note after '/' must be A-G with an optional # or b, e.g. Bb7/D")
    kind = _QUALITIES.get(quality)
    if kind is None:
        # Tolerate extensions after a known quality, e.g. m7(11) or 13(#11).
        for q in sorted(_QUALITIES, key=len, reverse=True):
            if q and quality.startswith(q):
                kind = _QUALITIES[q]
                break
    if kind is None:
        raise ImprovdError(f"chord {symbol!r}: unknown quality {quality!r}; use one of maj7, 7, 7alt, m7, m7b5, dim7, aug, mM7 (and their usual spellings)")
    return Chord(pc % 12, kind)


def parse_progression(text: str) -> list[list[Chord]]:
    """Bars separated by ``|``; chords in a bar share it equally; ``%`` repeats the last bar.

    ``"Dm7 G7 | Cmaj7 %"`` gives two bars... three, counting the repeat.
    """
    bars: list[list[Chord]] = []
    body = text.replace("\n", "|")
    for raw in body.split("|"):
        items = raw.split()
        if not items:
            continue
        bar: list[Chord] = []
        for item in items:
            if item in ("%", "/"):
                if item == "%" and len(items) == 1:
                    if not bars:
                        raise ImprovdError(f"chords {text!r}: '%' repeats the previous bar but there is none; start with a chord")
                    bar = list(bars[-1])
                    break
                if not bar:
                    if not bars:
                        raise ImprovdError(f"chords {text!r}: '{item}' repeats a chord but none came before it")
                    bar.append(bars[-1][-1])
                else:
                    bar.append(bar[-1])
                continue
            bar.append(parse_chord(item))
        bars.append(bar)
    if not bars:
        raise ImprovdError(f"chords {text!r} holds no chord: write e.g. \"Dm7 G7 | Cmaj7 %\"")
    return bars


@dataclass(frozen=True)
class Progression:
    """A looped chord chart on the tick grid."""

    bars: tuple[tuple[Chord, ...], ...]
    bar_ticks: int

    @classmethod
    def parse(cls, text: str, bar_ticks: int) -> "Progression":
        return cls(tuple(tuple(b) for b in parse_progression(text)), bar_ticks)

    def at(self, tick: int) -> Chord:
        bar = self.bars[(tick // self.bar_ticks) % len(self.bars)]
        pos = tick % self.bar_ticks
        return bar[min(len(bar) - 1, pos * len(bar) // self.bar_ticks)]


def detect_chord(pitches) -> Chord | None:
    """The chord whose template best covers the held pitch classes (bass note breaks ties).

    Score = tones covered - tones held outside the template, a plain template match: enough
    for a left hand voicing below a split point, which is what it is used for.
    """
    pcs = {p % 12 for p in pitches}
    if len(pcs) < 2:
        return None
    bass = min(pitches) % 12
    best, best_score = None, -99.0
    for root in range(12):
        for kind in ("maj", "dom7", "min7", "m7b5", "dim", "aug", "minmaj7"):
            tones = {(root + i) % 12 for i in CHORD_TONES[kind][:4]}
            score = len(pcs & tones) - 1.5 * len(pcs - tones) - 0.25 * len(tones - pcs)
            score += 0.5 if root == bass else 0.0
            score += 0.75 if root in pcs else 0.0
            if score > best_score:
                best, best_score = Chord(root, kind), score
    return best


def chord_features(chord: Chord | None):
    """24 floats: chord tones multi-hot (12) and root one-hot (12); zeros when no chord."""
    import numpy as np

    f = np.zeros(24, dtype=np.float32)
    if chord is not None:
        for pc in chord.tones:
            f[pc] = 1.0
        f[12 + chord.root] = 1.0
    return f
