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
    ch = parse_chord(symbol)
    assert (ch.root, ch.kind) == (root, kind)


@pytest.mark.parametrize("symbol, root, kind", [
    ("Bb7/D", Bb, "dom7"), ("C/E", C, "maj"), ("Dm7/G", D, "min7"), ("F#ø/C", Gb, "m7b5"), ("Ab/Bb", Ab, "maj"),
])
def test_slash_chords_keep_the_upper_chord(symbol, root, kind):
    ch = parse_chord(symbol)
    assert (ch.root, ch.kind) == (root, kind)
    assert ch.bass in ch.pitch_classes and ch.bass != ch.root


@pytest.mark.parametrize("bad", ["H7", "X", "", "   ", "7", "Cfoo", "C/", "Dm7/Q", "Dm7/", "mC7", "C##7x?",
                                 "foo", "Cmaj7x", "C7(b9", "Cb10", "Cpower", "C5", "Cdom"])
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
    # new lines are bar lines too; a double bar line is no bar
    assert len(parse_progression("Dm7 | G7\nCmaj7 ||")) == 3
    assert len(parse_progression("|| Dm7 | G7 ||\n| Cmaj7 |")) == 3


# -- the written chord itself (issue 12, item 10): its tones, not the nearest of eight types --------
@pytest.mark.parametrize("symbol, tones, kind", [
    ("C", (C, E, G), "maj"), ("Cm", (C, Eb, G), "min7"), ("C6", (C, E, G, A), "maj"), ("Cm6", (C, Eb, G, A), "min7"),
    ("C69", (C, D, E, G, A), "maj"), ("C7", (C, E, G, Bb), "dom7"), ("Cmaj7", (C, E, G, B), "maj"),
    ("Cm7", (C, Eb, G, Bb), "min7"), ("Cm7b5", (C, Eb, Gb, Bb), "m7b5"), ("Cm7(b5)", (C, Eb, Gb, Bb), "m7b5"),
    ("Cdim", (C, Eb, Gb), "dim"), ("Cdim7", (C, Eb, Gb, A), "dim"), ("Caug", (C, E, Ab), "aug"),
    ("Csus2", (C, D, G), "maj"), ("Csus4", (C, F, G), "dom7"), ("C7sus4", (C, F, G, Bb), "dom7"),
    ("CmM7", (C, Eb, G, B), "minmaj7"), ("CmMaj7", (C, Eb, G, B), "minmaj7"),
    ("C9", (C, D, E, G, Bb), "dom7"), ("C13", (C, D, E, F, G, A, Bb), "dom7"),
    ("Cmaj13", (C, D, E, F, G, A, B), "maj"), ("Cmaj9", (C, D, E, G, B), "maj"), ("Cm11", (C, D, Eb, F, G, Bb), "min7"),
    ("C7b9", (C, Db, E, G, Bb), "dom7alt"), ("C7#9", (C, Eb, E, G, Bb), "dom7alt"), ("C7#11", (C, E, Gb, G, Bb), "dom7"),
    ("C7(#9,b13)", (C, Eb, E, G, Ab, Bb), "dom7alt"), ("C13b9", (C, Db, E, F, G, A, Bb), "dom7alt"),
    ("C7#5", (C, E, Ab, Bb), "aug"), ("Cmaj7#11", (C, E, Gb, G, B), "maj"), ("Cadd9", (C, D, E, G), "maj"),
    ("C/E", (C, E, G), "maj"), ("C7/Bb", (C, E, G, Bb), "dom7"), ("Dm7/G", (D, F, G, A, C), "min7"),
])
def test_the_written_chord_keeps_its_own_tones(symbol, tones, kind):
    ch = parse_chord(symbol)
    assert ch.pitch_classes == set(tones) and ch.kind == kind


def test_pitch_classes_agree_with_music21():
    """music21's ChordSymbol as the reference (offline only: the daemon never imports it), on the
    symbols both read alike; music21 reads '-' as a flat and has no maj9/maj13, so those differ."""
    harmony = pytest.importorskip("music21.harmony")
    symbols = ["C", "Cm", "C6", "Cm6", "C7", "Cmaj7", "CM7", "Cm7", "Cm7b5", "Cø7", "Cdim", "Cdim7", "Co7", "Caug",
               "C+", "Csus2", "Csus4", "Csus", "C7sus4", "CmM7", "C9", "C11", "C13", "Cm9", "Cm11", "Cm13", "C7b9",
               "C7#9", "C7#11", "C7b13", "C7b5", "C7#5", "Cadd9", "C/E", "C9#11", "C7b9#5", "Caug7", "C+7",
               "Cmaj7#5", "Cmaj7#11", "Cmin7", "C7b9b13", "Bbm7", "F#7", "Ebmaj7", "Abm6", "Dm7/G"]
    for s in symbols:
        ours = parse_chord(s).pitch_classes
        flat_root = s[:1] + "-" + s[2:] if s[1:2] == "b" else s  # music21 writes B-flat B-
        theirs = {p.pitchClass for p in harmony.ChordSymbol(flat_root).pitches}
        assert ours == theirs, s


def test_a_chart_keeps_empty_bars_and_no_chord():
    """An empty measure (| |) holds the chord before it, as on a lead sheet, so the bars after it
    stay where they were written; N.C. is silence from the chart."""
    bars = parse_progression("Dm7 | | G7 | N.C. | Cmaj7 N.C.")
    assert len(bars) == 5
    assert bars[1] == bars[0] == [parse_chord("Dm7")]
    assert bars[3] == [None] and bars[4] == [parse_chord("Cmaj7"), None]
    p = Progression.parse("| | C7 |", BAR_TICKS)  # nothing to hold yet: no chord
    assert p.at(0) is None and p.at(BAR_TICKS) == parse_chord("C7")


def test_a_refused_symbol_says_what_is_accepted_in_one_line():
    with pytest.raises(ImprovdError) as e:
        parse_chord("foo")
    msg = str(e.value)
    assert "\n" not in msg and "'foo'" in msg
    for accepted in ("m7b5", "dim7", "sus4", "mM7", "13", "#11", "/bass", "N.C."):
        assert accepted in msg


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
