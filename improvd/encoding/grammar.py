"""The 'values' grammar of deepjazz and the Coursera jazz assignment, shared by training and the daemon.

A value is ``TYPE,duration[,<upper,lower>]``: TYPE is R (rest), C (a tone of the chord), S (a
tone of a scale derived from the chord), A (a semitone from a chord tone) or X (anything else);
the interval field is the interval from the previous note plus and minus a minor third, in
music21's directed names, and is absent on a measure's first note. The grammar does not say
which pitch: it says what kind of pitch, how long, and roughly how far. ``unparse_value``
turns one value back into a pitch against a chord and the previous pitch.

Parsing a MIDI file needs music21 and is imported inside the functions that need it; the rest
(interval names, scales, unparsing, the post-processing rules) is plain Python so the daemon
runs it without music21. Where the seed compares music21 note *names* (so an enharmonic
spelling can miss), the plain-Python side compares pitch classes.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from functools import lru_cache
from pathlib import Path

from improvd import ImprovdError
from improvd.chords import CHORD_TONES, Chord

ENCODING_NAME = "deepjazz-values"
ENCODING_VERSION = 1

TYPES = ("C", "S", "A", "X", "R")
GRID = 0.25  # the post-processing rounds durations to sixteenth notes
MAJOR_STEPS = (0, 2, 4, 5, 7, 9, 11)
DORIAN_STEPS = (0, 2, 3, 5, 7, 9, 10)

# The seed's solo section of original_metheny.mid, in quarter lengths, and its parts.
SOLO_START, SOLO_END = 476.0, 548.0
MELODY_PART = 5
CHORD_PART = 0
ACCOMPANIMENT_PARTS = (0, 1, 6, 7)

_INTERVAL = re.compile(r"^(P|M|m|A+|d+)(-?)(\d+)$")
_VALUE = re.compile(r"^([CSAXR]),(\d+(?:\.\d+)?)(?:,<([^,<>]+),([^,<>]+)>)?$")


# -- interval names ----------------------------------------------------------------------------
@lru_cache(maxsize=None)
def interval_semitones(name: str) -> int:
    """Semitones of a music21 directed interval name ('M-2' -> -2, 'd-4' -> -4, 'P8' -> 12)."""
    m = _INTERVAL.match(name.strip())
    if not m:
        raise ImprovdError(f"interval {name!r} is not a music21 directed interval name such as M2, m-3, P5, d-4")
    quality, sign, number = m.group(1), m.group(2), int(m.group(3))
    if number < 1:
        raise ImprovdError(f"interval {name!r} has generic number 0: intervals count from 1 (unison)")
    steps = number - 1
    simple = steps % 7
    base = 12 * (steps // 7) + MAJOR_STEPS[simple]
    perfect = simple in (0, 3, 4)
    if quality == "P":
        if not perfect:
            raise ImprovdError(f"interval {name!r}: only unisons, fourths, fifths and octaves are perfect")
        adjust = 0
    elif quality in ("M", "m"):
        if perfect:
            raise ImprovdError(f"interval {name!r}: unisons, fourths and fifths are not major or minor")
        adjust = 0 if quality == "M" else -1
    elif quality[0] == "A":
        adjust = len(quality)
    else:  # diminished: one below perfect, two below major
        adjust = -len(quality) - (0 if perfect else 1)
    semis = base + adjust
    return -semis if sign else semis


# -- values ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Value:
    kind: str  # C S A X R
    duration: float  # quarter lengths
    upper: int | None = None  # semitones from the previous note, the bound with more cents
    lower: int | None = None
    text: str = ""

    @property
    def has_interval(self) -> bool:
        return self.upper is not None


@lru_cache(maxsize=4096)
def parse_value(text: str) -> Value:
    m = _VALUE.match(text.strip())
    if not m:
        raise ImprovdError(f"value {text!r} is not a deepjazz grammar value: write TYPE,duration[,<upper,lower>], e.g. C,0.250,<M2,d-4>")
    kind, dur, a, b = m.groups()
    if a is None:
        return Value(kind, float(dur), None, None, text.strip())
    sa, sb = interval_semitones(a), interval_semitones(b)
    # The seed orders the two bounds by cents, whatever order they were written in.
    up, lo = (sa, sb) if sa > sb else (sb, sa)
    return Value(kind, float(dur), up, lo, text.strip())


def format_value(kind: str, duration: float, upper: str | None = None, lower: str | None = None) -> str:
    text = "%s,%.3f" % (kind, duration)
    if upper is not None:
        text += ",<%s,%s>" % (upper, lower)
    return text


def vocabulary(measures: list[list[str]]) -> list[str]:
    """The distinct values of a corpus, sorted so one corpus always gives the same indices."""
    return sorted({v for m in measures for v in m})


def corpus_of(measures: list[list[str]]) -> list[str]:
    """The values of all measures in order: the sequence the LSTM is trained on."""
    return [v for m in measures for v in m]


# -- harmony -----------------------------------------------------------------------------------
def derive_scale(pitches, major: bool) -> frozenset:
    """The pitch classes of music21's ``MajorScale().derive(chord)`` (or ``DorianScale``).

    music21 realises the scale on each tonic it knows, counts the chord's distinct pitch
    classes that fall in it, and keeps the best count, the highest tonic winning ties.
    """
    steps = MAJOR_STEPS if major else DORIAN_STEPS
    chord_pcs = {p % 12 for p in pitches}
    best, best_count = 0, -1
    for tonic in range(12):
        pcs = {(tonic + s) % 12 for s in steps}
        count = len(chord_pcs & pcs)
        if count >= best_count:
            best, best_count = tonic, count
    return frozenset((best + s) % 12 for s in steps)


@dataclass(frozen=True)
class Harmony:
    """What the grammar needs of a chord: its tones, its derived scale, its voiced pitches."""

    tones: frozenset  # pitch classes
    scale: frozenset  # pitch classes
    pitches: tuple  # MIDI pitches as voiced (the seed draws a measure's first note from them)

    @classmethod
    def from_pitches(cls, pitches, major: bool) -> "Harmony":
        pitches = tuple(int(p) for p in pitches)
        if not pitches:
            raise ImprovdError("a chord with no pitches cannot be a harmony: give at least one pitch")
        return cls(frozenset(p % 12 for p in pitches), derive_scale(pitches, major), pitches)

    @classmethod
    def from_chord(cls, chord: Chord) -> "Harmony":
        return _harmony_of(chord)


@lru_cache(maxsize=256)
def _harmony_of(chord: Chord) -> Harmony:
    # Voiced from the octave below middle C, as the Metheny piano voicings mostly are; a major
    # triad underneath (maj, dom7) is what music21 calls quality 'major'.
    pitches = tuple(48 + chord.root + i for i in sorted(CHORD_TONES[chord.kind]))
    return Harmony.from_pitches(pitches, chord.kind in ("maj", "dom7"))


def is_chord_tone(pitch: int, h: Harmony) -> bool:
    return pitch % 12 in h.tones


def is_scale_tone(pitch: int, h: Harmony) -> bool:
    return pitch % 12 in h.scale


def is_approach_tone(pitch: int, h: Harmony) -> bool:
    pc = pitch % 12
    return any((pc - t) % 12 in (1, 11) for t in h.tones)


def tone_type(pitch: int, h: Harmony) -> str:
    """C, S, A or X, tested in the seed's order."""
    if is_chord_tone(pitch, h):
        return "C"
    if is_scale_tone(pitch, h):
        return "S"
    if is_approach_tone(pitch, h):
        return "A"
    return "X"


# -- unparsing ---------------------------------------------------------------------------------
def _choice(seq, rng):
    """One element, drawn with ``rng.random()`` (works for random.Random and numpy Generators)."""
    return seq[min(len(seq) - 1, int(rng.random() * len(seq)))]


def _with_octave_at_least(pitch: int, octave: int) -> int:
    """music21's ``note.octave = octave`` when the note is lower: same pitch class, that octave."""
    if pitch // 12 - 1 < octave:
        return 12 * (octave + 1) + pitch % 12
    return pitch


def unparse_value(value: Value, h: Harmony, prev: int | None, rng) -> int | None:
    """A pitch for one value against a harmony and the previous note's pitch (None: a rest).

    With an interval: every pitch from prev+lower to prev+upper of the value's type, one drawn
    at random avoiding the previous pitch; none: prev +/- a whole step; below octave 3 it is
    lifted to octave 3. Without one (or with no previous note): a chord tone of the voicing, a
    scale tone in an octave of the voicing, or a scale tone's neighbour, lifted to octave >= 4.
    """
    if value.kind == "R":
        return None
    if not value.has_interval or prev is None:
        if value.kind == "C":
            pitch = _choice(h.pitches, rng)
        else:
            octave = _choice(sorted(p // 12 - 1 for p in h.pitches), rng)
            pitch = 12 * (octave + 1) + _choice(sorted(h.scale), rng)
            if value.kind != "S":
                pitch += _choice((1, -1), rng)
        return _with_octave_at_least(pitch, 4)
    test = is_chord_tone if value.kind == "C" else is_scale_tone if value.kind == "S" else is_approach_tone
    cands = [p for p in range(prev + value.lower, prev + value.upper + 1) if test(p, h)]
    if len(cands) > 1:
        pitch = _choice([p for p in cands if p != prev], rng)
    elif len(cands) == 1:
        pitch = cands[0]
    else:
        pitch = prev + _choice((-2, 2), rng)
    return _with_octave_at_least(pitch, 3)


# -- post-processing (in the seed's order) -----------------------------------------------------
def retype(value: Value) -> Value:
    """Rule 1: approach and arbitrary tones are played as chord tones."""
    if value.kind in ("A", "X"):
        return replace(value, kind="C", text="C" + value.text[1:])
    return value


def round_duration(duration: float, up: bool, mult: float = GRID) -> float:
    """Rule 2, the seed's rounding: down drops the remainder, up adds a whole step to that
    (so a duration already on the grid still moves up)."""
    down = float(duration) - float(duration) % mult
    return down + mult if up else down


def prune_grammar(values: list[Value], rng) -> list[Value]:
    """Rule 2 over a sequence: each duration rounded up or down at random."""
    return [replace(v, duration=round_duration(v.duration, rng.random() >= 0.5)) for v in values]


@dataclass(frozen=True)
class Placed:
    offset: float  # quarter lengths from the segment's start
    pitch: int | None  # None: a rest
    duration: float


def unparse_line(values: list[Value], harmony_at, rng) -> list[Placed]:
    """Rule 3 over a sequence, placed as the seed places it: the running offset grows by each
    value's duration *before* the value is put there. ``harmony_at(offset)`` gives the chord."""
    out, offset, prev = [], 0.0, None
    for v in values:
        offset += v.duration
        if v.kind == "R":
            out.append(Placed(offset, None, v.duration))
            continue
        pitch = unparse_value(v, harmony_at(offset), prev, rng)
        out.append(Placed(offset, pitch, v.duration))
        prev = pitch
    return out


def prune_notes(items: list[Placed]) -> list[Placed]:
    """Rule 4: in pairs (0,1), (2,3), ... the second note goes when it repeats the first's pitch."""
    drop = set()
    for i in range(0, len(items) - 1, 2):
        a, b = items[i], items[i + 1]
        if a.pitch is not None and b.pitch is not None and a.pitch == b.pitch:
            drop.add(i + 1)
    return [x for i, x in enumerate(items) if i not in drop]


def clean_up_notes(items: list[Placed]) -> list[Placed]:
    """Rule 5: zero lengths become a sixteenth; a note at its predecessor's offset goes."""
    fixed = [replace(x, duration=GRID) if x.duration == 0 else x for x in items]
    drop = {i + 1 for i in range(len(fixed) - 1)
            if fixed[i].offset == fixed[i + 1].offset and fixed[i + 1].pitch is not None}
    return [x for i, x in enumerate(fixed) if i not in drop]


# -- parsing a MIDI file (music21) -------------------------------------------------------------
@dataclass(frozen=True)
class ChordRec:
    """One accompaniment chord of a measure, kept so the seed's chords can be replayed and
    unparsed against without music21."""

    offset: float  # quarter lengths from the measure's start
    duration: float
    pitches: tuple  # MIDI pitches
    major: bool  # music21's quality == 'major': picks the major scale, else dorian

    def harmony(self) -> Harmony:
        return Harmony.from_pitches(self.pitches, self.major)

    def to_json(self) -> list:
        return [self.offset, self.duration, list(self.pitches), self.major]

    @classmethod
    def from_json(cls, row) -> "ChordRec":
        try:
            off, dur, pitches, major = row
            return cls(float(off), float(dur), tuple(int(p) for p in pitches), bool(major))
        except (TypeError, ValueError) as e:
            raise ImprovdError(f"chord record {row!r} is not [offset, duration, [pitches], major] ({e}): re-export the model") from None


@dataclass(frozen=True)
class Solo:
    measures: list  # grammar values per measure, measures 1.. of the solo (the seed skips 0)
    chords: list  # ChordRec per measure, measure 0.. (index i goes with measure i)
    values: list  # the vocabulary

    @property
    def corpus(self) -> list[str]:
        return corpus_of(self.measures)


def harmony_at(chords: list[ChordRec], offset: float) -> Harmony:
    """The last chord starting at or before ``offset``; before the first, the first one."""
    last = chords[0]
    for c in chords:
        if c.offset <= offset:
            last = c
    return last.harmony()


def _measure_values(notes, chords) -> list[str]:
    """The seed's parse of one measure: music21 notes and rests against music21 chords."""
    from music21 import interval, note, scale

    items = [n for n in notes if isinstance(n, (note.Note, note.Rest))]
    if not items:
        return []
    scale_names = {}

    def scale_of(c):
        if id(c) not in scale_names:
            kind = scale.MajorScale() if c.quality == "major" else scale.DorianScale()
            scale_names[id(c)] = {p.name for p in kind.derive(c).getPitches()}
        return scale_names[id(c)]

    def approach(c, n):
        for p in c.pitches:
            for step in (p.transpose(1), p.transpose(-1)):
                if n.name in (step.name, step.getEnharmonic().name):
                    return True
        return False

    values, prev, first_chord_moved = [], None, False
    for n in items:
        # Before the measure's first chord, the first chord counts from the measure's start.
        sounding = [c for c in chords if c.offset <= n.offset or (first_chord_moved and c is chords[0])]
        if not sounding:
            first_chord_moved = True
            sounding = [chords[0]]
        last = sounding[-1]
        if isinstance(n, note.Rest):
            kind = "R"
        elif n.name in last.pitchNames:
            kind = "C"
        elif n.name in scale_of(last):
            kind = "S"
        elif approach(last, n):
            kind = "A"
        else:
            kind = "X"
        upper = lower = None
        if isinstance(n, note.Note):
            if prev is not None:
                dist = interval.Interval(noteStart=prev, noteEnd=n)
                upper = interval.add([dist, "m3"]).directedName
                lower = interval.subtract([dist, "m3"]).directedName
            prev = n
        values.append(format_value(kind, float(n.quarterLength), upper, lower))
    return values


@lru_cache(maxsize=4)
def parse_solo(path: str, start: float = SOLO_START, end: float = SOLO_END) -> Solo:
    """The seed's preprocessing of original_metheny.mid (see SEEDS.md).

    Melody: part 5, its voices merged (a flattened part; ties music21 adds at bar lines are
    stripped, as the seed's music21 never split notes there), zero lengths set to 0.25.
    Chords: the chord objects of part 0. Both are cut to ``start..end`` (end included) and
    grouped into measures by ``int(offset / 4)``; surplus trailing chord groups are dropped
    (the seed drops its last one), and measures 1.. are parsed.
    """
    try:
        from music21 import chord, converter, note
    except ImportError:
        raise ImprovdError("parsing MIDI into the deepjazz grammar needs music21: pip install music21") from None
    p = Path(path)
    if not p.exists():
        raise ImprovdError(f"MIDI file {p} does not exist: pass the Metheny file (shared/data/jazz/original_metheny.mid) or another solo")
    try:
        score = converter.parse(str(p))
    except Exception as e:
        raise ImprovdError(f"MIDI file {p} cannot be parsed by music21 ({str(e)[:80] or type(e).__name__}): export it again") from None
    parts = list(score.parts)
    if len(parts) <= max(MELODY_PART, CHORD_PART):
        raise ImprovdError(f"MIDI file {p} has {len(parts)} parts; the deepjazz seed reads its melody from part {MELODY_PART} and chords from part {CHORD_PART}")
    melody = [n for n in parts[MELODY_PART].stripTies().flatten().notesAndRests if start <= n.offset <= end]
    for n in melody:
        if n.quarterLength == 0:
            n.quarterLength = 0.25
    comp = [c for c in parts[CHORD_PART].stripTies().flatten().getElementsByClass(chord.Chord) if start <= c.offset <= end]
    m_groups = _group(melody)
    c_groups = _group(comp)
    if len(m_groups) < 2 or not c_groups:
        raise ImprovdError(f"MIDI file {p} has no solo between offsets {start} and {end} in parts {MELODY_PART} and {CHORD_PART}")
    c_groups = c_groups[: len(m_groups)]
    if len(c_groups) != len(m_groups):
        raise ImprovdError(f"MIDI file {p}: {len(m_groups)} melody measures but {len(c_groups)} chord measures; the grammar needs a chord in every measure")
    measures = []
    for i in range(1, len(m_groups)):
        vals = _measure_values([n for n in m_groups[i] if isinstance(n, (note.Note, note.Rest))], c_groups[i])
        if vals:
            measures.append(vals)
    recs = []
    for group in c_groups:
        bar = int(group[0].offset / 4) * 4
        recs.append([ChordRec(float(c.offset - bar), float(c.quarterLength), tuple(x.midi for x in c.pitches),
                              c.quality == "major") for c in group])
    return Solo(measures, recs, vocabulary(measures))


def _group(elements) -> list[list]:
    groups, key = [], None
    for e in elements:
        k = int(e.offset / 4)
        if k != key:
            groups.append([])
            key = k
        groups[-1].append(e)
    return groups
