"""Chord symbols: parsing, templates, scales and live detection.

One vocabulary of eight chord types, the one the Weimar Jazz Database uses, so the chord the
performer types, the chord the daemon detects and the chord the model was trained on are the
same object. A typed chord also keeps its own tones (C6 has an A, Cmaj13 its 9, 11 and 13) for
the rules and the player; a symbol outside the vocabulary is refused, never approximated.
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

# Chord qualities as people write them -> (intervals above the root, as written). Matched longest
# first at the start of what follows the root; alterations, then a slash bass, may follow.
_MAJ, _MIN, _DOM = (0, 4, 7), (0, 3, 7), (0, 4, 7, 10)
_BASE_QUALITIES = {
    **dict.fromkeys(("", "M", "maj", "major"), _MAJ),
    **dict.fromkeys(("6",), _MAJ + (9,)),
    **dict.fromkeys(("69", "6add9"), _MAJ + (9, 2)),
    **dict.fromkeys(("maj7", "M7", "ma7", "j7", "^", "^7", "Δ", "Δ7"), _MAJ + (11,)),
    **dict.fromkeys(("maj9", "M9", "ma9", "^9", "Δ9"), _MAJ + (11, 2)),
    **dict.fromkeys(("maj11", "M11", "ma11", "^11", "Δ11"), _MAJ + (11, 2, 5)),
    **dict.fromkeys(("maj13", "M13", "ma13", "^13", "Δ13"), _MAJ + (11, 2, 5, 9)),
    **dict.fromkeys(("m", "mi", "min", "-"), _MIN),
    **dict.fromkeys(("m6", "mi6", "min6", "-6"), _MIN + (9,)),
    **dict.fromkeys(("m69", "mi69", "min69", "-69"), _MIN + (9, 2)),
    **dict.fromkeys(("m7", "mi7", "min7", "-7"), _MIN + (10,)),
    **dict.fromkeys(("m9", "mi9", "min9", "-9"), _MIN + (10, 2)),
    **dict.fromkeys(("m11", "mi11", "min11", "-11"), _MIN + (10, 2, 5)),
    **dict.fromkeys(("m13", "mi13", "min13", "-13"), _MIN + (10, 2, 5, 9)),
    **dict.fromkeys(("mM7", "mmaj7", "mMaj7", "m(maj7)", "m^7", "-^7", "-maj7", "-M7", "minmaj7", "mi(maj7)"), _MIN + (11,)),
    **dict.fromkeys(("mM9", "mmaj9", "mMaj9", "m(maj9)", "-^9", "-maj9"), _MIN + (11, 2)),
    **dict.fromkeys(("m7b5", "mi7b5", "min7b5", "-7b5", "ø", "ø7", "h", "h7"), (0, 3, 6, 10)),
    **dict.fromkeys(("dim", "o", "°"), (0, 3, 6)),
    **dict.fromkeys(("dim7", "o7", "°7"), (0, 3, 6, 9)),
    **dict.fromkeys(("aug", "+"), (0, 4, 8)),
    **dict.fromkeys(("aug7", "+7", "7+"), (0, 4, 8, 10)),
    **dict.fromkeys(("7",), _DOM),
    **dict.fromkeys(("9",), _DOM + (2,)),
    **dict.fromkeys(("11",), _DOM + (2, 5)),
    **dict.fromkeys(("13",), _DOM + (2, 5, 9)),
    **dict.fromkeys(("alt", "7alt"), (0, 4, 10, 1, 3, 8)),
}
_BASES_LONGEST_FIRST = sorted(_BASE_QUALITIES, key=len, reverse=True)

# Alterations after the quality: (tones removed, tones added), applied in the order written.
_NO_THIRD, _FIFTH = (3, 4), (7,)
_ALTERATIONS = {
    **dict.fromkeys(("b5", "-5"), (_FIFTH, (6,))),
    **dict.fromkeys(("#5", "+5"), (_FIFTH, (8,))),
    **dict.fromkeys(("b9", "-9"), ((2,), (1,))),
    **dict.fromkeys(("#9", "+9"), ((2,), (3,))),
    **dict.fromkeys(("#11", "+11"), ((5,), (6,))),
    **dict.fromkeys(("b13", "-13"), ((9,), (8,))),
    "9": ((), (2,)), "11": ((), (5,)), "13": ((), (9,)),
    **dict.fromkeys(("add9", "add2"), ((), (2,))),
    **dict.fromkeys(("add11", "add4"), ((), (5,))),
    **dict.fromkeys(("add13", "add6"), ((), (9,))),
    **dict.fromkeys(("sus4", "sus"), (_NO_THIRD, (5,))),
    "sus2": (_NO_THIRD, (2,)),
    **dict.fromkeys(("no3", "omit3"), (_NO_THIRD, ())),
    **dict.fromkeys(("no5", "omit5"), (_FIFTH, ())),
}
_ALTERATIONS_LONGEST_FIRST = sorted(_ALTERATIONS, key=len, reverse=True)
NO_CHORD = ("N.C.", "N.C", "NC", "n.c.")

ACCEPTED = ("a root A-G with an optional # or b, then one of: (nothing) for major, m, 6, m6, 69, 7, maj7 (M7 ^7 Δ), "
            "m7 (-7 mi7), m7b5 (ø), dim, dim7 (o7), aug (+), aug7, sus2, sus4, 7sus4, mM7, 9, 11, 13, maj9, m9, m11, "
            "m13, alt; alterations b5 #5 b9 #9 #11 b13 add9 no3 no5, also in parentheses; an optional /bass note; "
            "N.C. for no chord")
_ROOT = re.compile(r"^([A-Ga-g])([#b♯♭]?)(.*)$")
_BASS = re.compile(r"^(.*?)/([A-Ga-g][#b♯♭]?)$")


def kind_of(intervals) -> str:
    """The one of the eight vocabulary types (what the models were trained on) nearest a chord's
    own tones: its third, fifth and seventh decide; upper extensions keep the type, altered
    ones (b9, #9, b13, b5) make a dominant 'alt', as the Weimar annotators did."""
    pcs = {i % 12 for i in intervals}
    minor, major = 3 in pcs and 4 not in pcs, 4 in pcs
    if minor:
        if 6 in pcs and 7 not in pcs:
            return "m7b5" if 10 in pcs else "dim"
        return "minmaj7" if 11 in pcs and 10 not in pcs else "min7"
    if 10 in pcs:
        if 8 in pcs and 7 not in pcs and not pcs & {1, 3, 6}:
            return "aug"
        if pcs & {1, 8} or (major and 3 in pcs) or (6 in pcs and 7 not in pcs):
            return "dom7alt"
        return "dom7"
    if 11 in pcs:
        return "maj"
    if 8 in pcs and 7 not in pcs:
        return "aug"
    if not major and 5 in pcs:
        return "dom7"  # a sus4 chord does a dominant's job
    return "maj"


@dataclass(frozen=True)
class Chord:
    """A chord as the models see it (``root`` and one of eight ``kind``s, whose template is
    ``tones``) and as it was written (``intervals`` above the root, and the ``bass``): the
    models were trained on the eight types, the rules and the performer hear the chord itself."""

    root: int  # pitch class 0..11
    kind: str  # one of CHORD_TYPES
    intervals: tuple = ()  # the chord's own tones above the root; empty = the kind's template
    bass: int | None = None  # pitch class under a slash; None = the root

    def __post_init__(self):
        if not self.intervals:
            object.__setattr__(self, "intervals", CHORD_TONES[self.kind])

    @property
    def tones(self) -> frozenset[int]:
        return frozenset((self.root + i) % 12 for i in CHORD_TONES[self.kind])

    @property
    def pitch_classes(self) -> frozenset[int]:
        """The tones the symbol names, its bass included (C6 has an A, Cmaj13 a D, F and A)."""
        own = {(self.root + i) % 12 for i in self.intervals}
        return frozenset(own | ({self.bass} if self.bass is not None else set()))

    @property
    def scale(self) -> frozenset[int]:
        return frozenset((self.root + i) % 12 for i in CHORD_SCALES[self.kind])

    @property
    def name(self) -> str:
        suffix = {"maj": "maj7", "dom7": "7", "dom7alt": "7alt", "min7": "m7", "m7b5": "m7b5",
                  "dim": "dim7", "aug": "aug", "minmaj7": "mM7"}[self.kind]
        return NOTE_NAMES[self.root] + suffix

    def transpose(self, semitones: int) -> "Chord":
        bass = None if self.bass is None else (self.bass + semitones) % 12
        return Chord((self.root + semitones) % 12, self.kind, self.intervals, bass)


def _pitch_class(letter: str, accidental: str) -> int:
    return (_LETTER_PC[letter.upper()] + {"#": 1, "♯": 1, "b": -1, "♭": -1, "": 0}[accidental]) % 12


def parse_chord(symbol: str) -> Chord:
    """One chord symbol such as ``Dm7``, ``G7b9``, ``Cmaj13``, ``F#ø``, ``Bb7/D``, ``C7(#9,b13)``.

    Anything outside the common jazz vocabulary is refused with the list of what is accepted,
    never read as the nearest-looking chord: a mistyped chart should stop the start, not play
    F diminished for 'foo'.
    """
    text = symbol.strip() if isinstance(symbol, str) else ""
    m = _ROOT.match(text)
    if not m:
        raise ImprovdError(f"chord {symbol!r} is not a chord symbol: write {ACCEPTED}")
    letter, accidental, rest = m.groups()
    root = _pitch_class(letter, accidental)
    bass = None
    slash = _BASS.match(rest.replace("6/9", "69"))
    quality = rest.replace("6/9", "69")
    if slash:
        quality, bass_text = slash.groups()
        bass = _pitch_class(bass_text[0], bass_text[1:])
    if "/" in quality:  # a slash not followed by a valid bass note, e.g. Dm7/Q
        raise ImprovdError(f"chord {symbol!r}: the bass note after '/' must be A-G with an optional # or b, e.g. Bb7/D")
    quality = quality.replace("♯", "#").replace("♭", "b")
    base = next((b for b in _BASES_LONGEST_FIRST if quality.startswith(b)), None)
    tones = list(_BASE_QUALITIES[base]) if base is not None else []
    rest = quality[len(base):] if base is not None else quality
    if rest.startswith("(") and rest.endswith(")"):
        rest = rest[1:-1]
    rest = rest.replace(",", "").replace(" ", "")
    while rest:
        alteration = next((a for a in _ALTERATIONS_LONGEST_FIRST if rest.startswith(a)), None)
        if alteration is None or base is None:
            raise ImprovdError(f"chord {symbol!r}: {quality!r} is not a chord quality this improvd reads: write {ACCEPTED}")
        removed, added = _ALTERATIONS[alteration]
        tones = [t for t in tones if t not in removed] + [a for a in added if a not in tones]
        rest = rest[len(alteration):]
    if base is None:
        raise ImprovdError(f"chord {symbol!r}: {quality!r} is not a chord quality this improvd reads: write {ACCEPTED}")
    intervals = tuple(dict.fromkeys(t % 12 for t in tones))
    bass = None if bass == root else bass
    return Chord(root, kind_of(intervals), intervals, bass)


def parse_progression(text: str) -> list[list[Chord | None]]:
    """Bars separated by ``|``; chords in a bar share it equally; ``%`` repeats the last bar.

    ``"Dm7 G7 | Cmaj7 %"`` gives two bars... three, counting the repeat. An empty bar (``| |``)
    holds the chord before it, as an empty measure of a lead sheet does; ``N.C.`` is no chord;
    ``||`` is a double bar line, not a bar. Each line of a file is a row of bars.
    """
    bars: list[list[Chord | None]] = []
    for line in str(text).splitlines() or [""]:
        pieces = line.split("|")
        for k, raw in enumerate(pieces):
            items = raw.split()
            if not items:
                edge = k == 0 or k == len(pieces) - 1
                if edge or raw == "":  # outside the first/last bar line, or a double bar line
                    continue
                bars.append([bars[-1][-1] if bars else None])  # an empty measure holds the chord
                continue
            bar: list[Chord | None] = []
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
                bar.append(None if item in NO_CHORD else parse_chord(item))
            bars.append(bar)
    if not any(c is not None for bar in bars for c in bar):
        raise ImprovdError(f"chords {text[:60]!r} holds no chord: write e.g. \"Dm7 G7 | Cmaj7 %\"")
    return bars


@dataclass(frozen=True)
class Progression:
    """A looped chord chart on the tick grid."""

    bars: tuple[tuple[Chord | None, ...], ...]
    bar_ticks: int

    @classmethod
    def parse(cls, text: str, bar_ticks: int) -> "Progression":
        return cls(tuple(tuple(b) for b in parse_progression(text)), bar_ticks)

    def at(self, tick: int) -> Chord | None:
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
