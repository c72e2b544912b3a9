"""The deepjazz values grammar: interval names, scales, typing, unparsing, post-processing."""

import random
from pathlib import Path

import pytest

from improvd import ImprovdError
from improvd.chords import CHORD_TYPES, Chord
from improvd.encoding import grammar as g

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "jazz" / "original_metheny.mid"
needs_data = pytest.mark.skipif(not DATA.exists(), reason="../shared/data/jazz/original_metheny.mid is not here")

CMAJ7 = g.Harmony.from_chord(Chord(0, "maj"))


def test_interval_names_by_hand():
    cases = {"P1": 0, "M2": 2, "m-2": -1, "M-2": -2, "m3": 3, "d-4": -4, "P4": 5, "A4": 6, "d5": 6,
             "P5": 7, "A1": 1, "d1": -1, "P-8": -12, "M7": 11, "P11": 17, "dd5": 5, "m-7": -10}
    for name, semis in cases.items():
        assert g.interval_semitones(name) == semis, name


def test_interval_names_agree_with_music21():
    interval = pytest.importorskip("music21.interval")
    names = []
    for n in range(1, 16):
        perfect = (n - 1) % 7 in (0, 3, 4)
        for q in (("P", "A", "d", "AA", "dd") if perfect else ("M", "m", "A", "d")):
            names += [f"{q}{n}", f"{q}-{n}"]
    checked = 0
    for name in names:
        try:
            ref = interval.Interval(name).semitones
        except interval.IntervalException:  # e.g. a descending perfect unison does not exist
            continue
        assert g.interval_semitones(name) == ref, name
        checked += 1
    assert checked > 100


def test_bad_names_and_values_raise():
    for bad in ("X3", "M4", "P3", "m0", ""):
        with pytest.raises(ImprovdError):
            g.interval_semitones(bad)
    for bad in ("C", "Q,0.25", "C,0.25,<M2>", "C,abc"):
        with pytest.raises(ImprovdError):
            g.parse_value(bad)


def test_value_round_trip_orders_bounds_by_size():
    text = g.format_value("C", 0.25, "M2", "d-4")
    assert text == "C,0.250,<M2,d-4>"
    v = g.parse_value(text)
    assert (v.kind, v.duration, v.upper, v.lower) == ("C", 0.25, 2, -4)
    w = g.parse_value("S,0.500,<d-4,M2>")  # written the other way round
    assert (w.upper, w.lower) == (2, -4)
    assert not g.parse_value("R,1.000").has_interval


def test_derive_scale_agrees_with_music21():
    chord_mod = pytest.importorskip("music21.chord")
    from music21 import pitch, scale

    rng = random.Random(3)
    sets = [g.Harmony.from_chord(Chord(r, k)).pitches for r in range(12) for k in CHORD_TYPES]
    sets += [tuple(rng.sample(range(36, 84), rng.randint(2, 6))) for _ in range(60)]
    for ps in sets:
        c = chord_mod.Chord([pitch.Pitch(midi=p) for p in ps])
        for major in (True, False):
            ref = (scale.MajorScale() if major else scale.DorianScale()).derive(c)
            assert frozenset(p.pitchClass for p in ref.getPitches()) == g.derive_scale(ps, major), (ps, major)


def test_scale_of_chords_follows_music21_derive():
    # C and G major both hold C E G B; music21 keeps the higher tonic, so F# is Cmaj7's 'S'.
    assert CMAJ7.scale == frozenset({7, 9, 11, 0, 2, 4, 6})
    assert g.Harmony.from_chord(Chord(7, "dom7")).scale == frozenset({0, 2, 4, 5, 7, 9, 11})  # C major
    assert g.Harmony.from_chord(Chord(2, "min7")).scale == frozenset({7, 9, 10, 0, 2, 4, 5})  # G dorian


def test_tone_types():
    assert [g.tone_type(p, CMAJ7) for p in range(60, 72)] == list("CASACASCASAC")
    fifth = g.Harmony.from_pitches([60, 67], major=False)  # C and G: Bb dorian by music21's rule
    assert fifth.scale == frozenset({10, 0, 1, 3, 5, 7, 8})
    assert g.tone_type(67, fifth) == "C"
    assert g.tone_type(61, fifth) == "S"
    assert g.tone_type(66, fifth) == "A"  # a semitone under G
    assert g.tone_type(64, fifth) == "X"


def test_unparse_chord_value_gives_a_chord_tone_within_bounds():
    v = g.parse_value("C,0.250,<P5,A1>")  # from 1 to 7 semitones above the previous note
    seen = set()
    for seed in range(200):
        p = g.unparse_value(v, CMAJ7, 62, random.Random(seed))
        assert p % 12 in CMAJ7.tones
        assert 62 + 1 <= p <= 62 + 7
        seen.add(p)
    assert seen == {64, 67}  # both candidates get drawn


def test_unparse_avoids_previous_pitch_and_keeps_type():
    v = g.parse_value("S,0.250,<m3,m-3>")
    for seed in range(100):
        p = g.unparse_value(v, CMAJ7, 64, random.Random(seed))
        assert p != 64 and 61 <= p <= 67 and p % 12 in CMAJ7.scale


def test_unparse_falls_back_to_a_whole_step():
    v = g.parse_value("C,0.250,<m2,P1>")  # D..Eb over Cmaj7 holds no chord tone
    got = {g.unparse_value(v, CMAJ7, 62, random.Random(s)) for s in range(50)}
    assert got == {60, 64}


def test_unparse_without_interval_and_octave_floors():
    for seed in range(50):
        rng = random.Random(seed)
        p = g.unparse_value(g.parse_value("C,0.250"), CMAJ7, None, rng)
        assert p >= 60 and p % 12 in CMAJ7.tones
        s = g.unparse_value(g.parse_value("S,0.500"), CMAJ7, 70, rng)
        assert s >= 60 and s % 12 in CMAJ7.scale
    low = g.unparse_value(g.parse_value("C,0.250,<m3,m-3>"), CMAJ7, 36, random.Random(0))
    assert 48 <= low < 60  # an interval note below octave 3 is lifted to octave 3
    assert g.unparse_value(g.parse_value("R,0.250"), CMAJ7, 60, random.Random(0)) is None


def test_retype_a_and_x_to_c():
    assert g.retype(g.parse_value("A,0.250,<M2,d-4>")).kind == "C"
    assert g.retype(g.parse_value("X,0.250,<M2,d-4>")).text == "C,0.250,<M2,d-4>"
    assert g.retype(g.parse_value("S,0.250")).kind == "S"


def test_round_duration_like_the_seed():
    assert g.round_duration(0.333, up=False) == 0.25
    assert g.round_duration(0.333, up=True) == 0.5
    assert g.round_duration(0.5, up=True) == 0.75  # already on the grid still moves up
    assert g.round_duration(0.5, up=False) == 0.5
    assert g.round_duration(0.083, up=False) == 0.0
    out = g.prune_grammar([g.parse_value("C,0.333")] * 40, random.Random(0))
    assert {v.duration for v in out} == {0.25, 0.5}


def test_unparse_line_places_after_adding_the_duration():
    vals = [g.parse_value(v) for v in ("C,0.25", "R,0.5", "C,0.25,<m3,m-3>")]
    placed = g.unparse_line(vals, lambda off: CMAJ7, random.Random(0))
    assert [x.offset for x in placed] == [0.25, 0.75, 1.0]
    assert placed[1].pitch is None and placed[2].pitch % 12 in CMAJ7.tones


def test_prune_notes_drops_the_second_of_a_repeated_pair():
    P = g.Placed
    items = [P(0.25, 60, 0.25), P(0.5, 60, 0.25), P(0.75, 62, 0.25), P(1.0, 62, 0.25), P(1.25, 62, 0.25)]
    assert [x.offset for x in g.prune_notes(items)] == [0.25, 0.75, 1.25]
    # pairs are (0,1), (2,3): a repeat across pairs stays, and rests never count
    items = [P(0.25, 60, 0.25), P(0.5, 62, 0.25), P(0.75, 62, 0.25), P(1.0, None, 0.25), P(1.25, None, 0.25)]
    assert len(g.prune_notes(items)) == 5


def test_clean_up_notes():
    P = g.Placed
    items = [P(0.25, 60, 0.0), P(0.25, 64, 0.25), P(0.5, None, 0.25), P(0.5, None, 0.25), P(0.75, 67, 0.5)]
    out = g.clean_up_notes(items)
    assert out[0] == P(0.25, 60, 0.25)  # zero length -> a sixteenth
    assert [x.pitch for x in out] == [60, None, None, 67]  # the note at its predecessor's offset goes; rests stay


@needs_data
def test_parse_metheny_gives_18_measures_and_the_seed_vocabulary():
    solo = g.parse_solo(str(DATA))
    assert len(solo.measures) == 18
    assert len(solo.chords) == 19
    assert 78 <= len(solo.values) <= 90
    assert len(solo.corpus) > 150
    with_notes = 0
    for m in solo.measures:
        notes = [v for v in m if not v.startswith("R")]
        if notes:
            with_notes += 1
            assert not g.parse_value(notes[0]).has_interval  # a measure's first note has none
            assert all(g.parse_value(v).has_interval for v in notes[1:])
    assert with_notes >= 16
    kinds = {v[0] for v in solo.values}
    assert {"C", "S", "A", "R"} <= kinds
    for bar in solo.chords:
        assert bar and all(0 <= c.offset < 4.5 and c.pitches for c in bar)
