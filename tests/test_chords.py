"""Chord symbols as a musician types them, chord charts, and the left-hand chord detector."""

import pytest

from improvd import ImprovdError
from improvd.chords import Chord, Progression, detect_chord, parse_chord, parse_progression
from improvd.encoding import BAR_TICKS

C, Db, D, Eb, E, F, Gb, G, Ab, A, Bb, B = range(12)


@pytest.mark.parametrize("symbol, root, kind", [
    ("C", C, "maj"), ("Cmaj7", C, "maj"), ("CM7", C, "maj"), ("C^7", C, "maj"), ("CΔ", C, "maj"),
    ("C6", C, "maj"), ("C69", C, "maj"), ("C6/9", C, "maj"), ("Eb6/9/G", Eb, "maj"), ("Ebmaj7", Eb, "maj"), ("Bb^7", Bb, "maj"),
    ("G7", G, "dom7"), ("G9", G, "dom7"), ("G13", G, "dom7"), ("Gsus4", G, "dom7"), ("G7#11", G, "dom7"),
    ("G7b9", G, "dom7alt"), ("G7#9", G, "dom7alt"), ("G7alt", G, "dom7alt"), ("Galt", G, "dom7alt"),
    ("Dm7", D, "min7"), ("D-7", D, "min7"), ("Dm", D, "min7"), ("Dmin7", D, "min7"), ("Dm9", D, "min7"),
    ("D-", D, "min7"), ("Dm6", D, "min7"),
    ("Bm7b5", B, "m7b5"), ("Bø", B, "m7b5"), ("Bø7", B, "m7b5"), ("Bh7", B, "m7b5"), ("B-7b5", B, "m7b5"),
    ("Bdim7", B, "dim"), ("Bo7", B, "dim"), ("B°", B, "dim"), ("Bdim", B, "dim"),
    ("Caug", C, "aug"), ("C+", C, "aug"), ("C7+", C, "aug"),
    ("CmM7", C, "minmaj7"), ("Cm(maj7)", C, "minmaj7"), ("C-^7", C, "minmaj7"),
    ("F#m7", Gb, "min7"), ("Gbm7", Gb, "min7"), ("F♯7", Gb, "dom7"), ("B♭7", Bb, "dom7"),
    ("Cb", B, "maj"), ("E#7", F, "dom7"), ("c7", C, "dom7"),
    ("F#m7(11)", Gb, "min7"),  # an extension after a known quality is tolerated
    ("  Am7  ", A, "min7"),
])
def test_parse_spellings(symbol, root, kind):
    assert parse_chord(symbol) == Chord(root, kind)


@pytest.mark.parametrize("symbol, root, kind", [
    ("Bb7/D", Bb, "dom7"), ("C/E", C, "maj"), ("Dm7/G", D, "min7"), ("F#ø/C", Gb, "m7b5"), ("Ab/Bb", Ab, "maj"),
])
def test_slash_chords_keep_the_upper_chord(symbol, root, kind):
    assert parse_chord(symbol) == Chord(root, kind)


@pytest.mark.parametrize("bad", ["H7", "X", "", "   ", "7", "Cfoo", "C/", "Dm7/Q", "Dm7/", "mC7", "C##7x?"])
def test_bad_symbols_raise_one_line(bad):
    with pytest.raises(ImprovdError) as e:
        parse_chord(bad)
    msg = str(e.value)
    assert "\n" not in msg
    assert repr(bad) in msg  # the message names the symbol the user wrote


def test_chord_tones_and_scales():
    assert parse_chord("G7").tones == {G, B, D, F}
    assert parse_chord("Dm7").tones == {D, F, A, C}
    assert parse_chord("Cmaj7").tones == {C, E, G, B}
    assert parse_chord("Bm7b5").tones == {B, D, F, A}
    assert parse_chord("Cdim7").tones == {C, Eb, Gb, A}
    assert parse_chord("Cmaj7").scale == {C, D, E, F, G, A, B}
    assert parse_chord("Dm7").scale == {C, D, E, F, G, A, B}  # dorian of C major
    assert parse_chord("G7").transpose(5) == parse_chord("C7")
    assert parse_chord("Bb7").name == "Bb7" and parse_chord("F#ø").name == "F#m7b5"


def test_progression_bars_and_repeats():
    bars = parse_progression("Dm7 G7 | Cmaj7 | %")
    assert bars == [[Chord(D, "min7"), Chord(G, "dom7")], [Chord(C, "maj")], [Chord(C, "maj")]]
    # a lone % repeats the whole previous bar, including its two chords
    assert parse_progression("Dm7 G7 | %")[1] == [Chord(D, "min7"), Chord(G, "dom7")]
    # inside a bar % (or /) repeats the previous chord and takes its share of the bar
    assert parse_progression("Cmaj7 % % A7")[0] == [Chord(C, "maj")] * 3 + [Chord(A, "dom7")]
    assert parse_progression("Dm7 / G7 /")[0] == [Chord(D, "min7")] * 2 + [Chord(G, "dom7")] * 2
    # new lines are bar lines too; empty bars between pipes are ignored
    assert len(parse_progression("Dm7 | G7\nCmaj7 ||")) == 3


@pytest.mark.parametrize("bad", ["%", "| |", "", "Dm7 | Zz7", "/ Dm7"])
def test_bad_progressions_raise_one_line(bad):
    with pytest.raises(ImprovdError) as e:
        parse_progression(bad)
    assert "\n" not in str(e.value)


def test_progression_at_splits_bars_and_loops():
    p = Progression.parse("Dm7 G7 | Cmaj7", BAR_TICKS)
    half = BAR_TICKS // 2
    assert p.at(0) == Chord(D, "min7")
    assert p.at(half - 1) == Chord(D, "min7")
    assert p.at(half) == Chord(G, "dom7")
    assert p.at(BAR_TICKS - 1) == Chord(G, "dom7")
    assert p.at(BAR_TICKS) == Chord(C, "maj")
    assert p.at(2 * BAR_TICKS - 1) == Chord(C, "maj")
    assert p.at(2 * BAR_TICKS) == Chord(D, "min7")  # the chart loops
    assert p.at(7 * BAR_TICKS + half) == Chord(C, "maj")
    three = Progression.parse("C7 F7 G7", BAR_TICKS)
    assert [three.at(t).root for t in (0, 15, 16, 31, 32, 47)] == [C, C, F, F, G, G]


@pytest.mark.parametrize("pitches, expect", [
    ([50, 53, 57, 60], Chord(D, "min7")),  # D F A C
    ([43, 47, 50, 53], Chord(G, "dom7")),  # G B D F
    ([48, 52, 55, 59], Chord(C, "maj")),  # C E G B
    ([47, 50, 53, 57], Chord(B, "m7b5")),  # B D F A
    ([53, 57, 60, 64], Chord(F, "maj")),  # F A C E
    ([41, 51, 57], Chord(F, "dom7")),  # shell voicing F Eb A
    ([48, 55, 64], Chord(C, "maj")),  # open triad C G E
    ([45, 48, 52, 55], Chord(A, "min7")),  # A C E G: bass breaks the tie with Cmaj6
])
def test_detect_chord_on_voicings(pitches, expect):
    assert detect_chord(pitches) == expect


def test_detect_chord_needs_two_pitch_classes():
    assert detect_chord([60]) is None
    assert detect_chord([48, 60, 72]) is None
    assert detect_chord([]) is None
