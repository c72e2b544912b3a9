"""The streaming ABC parser, char by char, against music21 on real tunes and on the constructs."""

import warnings
from pathlib import Path

import pytest

from improvd.abcstream import AbcMark, AbcNote, AbcStream, parse_text
from improvd.encoding import abc as enc

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
IRISH = DATA / "abc" / "irish.trainvalid.abc"
NOTT = DATA / "nottingham_abc" / "train" / "waltzes.abc"


def m21_notes(text):
    music21 = pytest.importorskip("music21")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        s = music21.converter.parse(text, format="abc").stripTies()
    out = []
    for n in s.flatten().notesAndRests:
        if n.duration.isGrace or type(n).__name__ in ("ChordSymbol", "NoChord"):
            continue
        pitch = None if n.isRest else max(p.midi for p in n.pitches)
        out.append((pitch, round(float(n.quarterLength) * 12)))
    return out


def stream_notes(text, **kw):
    s = AbcStream(**kw)
    out = []
    for ch in text:  # one character at a time, as the model samples them
        out += [x for x in s.feed(ch) if isinstance(x, AbcNote)]
    out += [x for x in s.close() if isinstance(x, AbcNote)]
    return [(n.pitch, n.duration) for n in out], out


@pytest.mark.skipif(not IRISH.exists(), reason="shared data absent")
@pytest.mark.parametrize("index", [0, 3, 10, 25, 29, 100, 250, 400, 600])
def test_irish_tunes_match_music21(index):
    tune = enc.load_irish(IRISH)[index]
    # music21 reads files with no %abc-2 line as ABC 1.x: accidentals do not carry to the bar line
    got, notes = stream_notes(tune, propagate="not")
    assert got == m21_notes(tune)
    onsets = [n.onset for n in notes]
    assert onsets == sorted(onsets) and all(b.onset == a.onset + a.duration for a, b in zip(notes, notes[1:]))


@pytest.mark.skipif(not IRISH.exists(), reason="shared data absent")
def test_abc21_accidental_propagation_matches_music21():
    tune = enc.load_irish(IRISH)[10]  # =F then F in one bar (D mixolydian)
    text = "%abc-2.1\n" + tune
    got, _ = stream_notes(text, propagate="pitch")
    assert got == m21_notes(text)
    assert got != stream_notes(tune, propagate="not")[0]


@pytest.mark.skipif(not NOTT.exists(), reason="shared data absent")
def test_nottingham_tunes_with_chords_and_field_changes_match_music21():
    for tune in enc.load_abc_file(NOTT)[:6]:
        assert stream_notes(tune, propagate="not")[0] == m21_notes(tune)


def body(text, **kw):
    kw = {"key": "C", "meter": "4/4", "unit": "1/8", **kw}
    notes, s = parse_text(text, **kw)
    return [(n.pitch, n.onset, n.duration) for n in notes], s


def test_broken_rhythm():
    assert body("A>B c<d e>>f|")[0] == [(69, 0, 9), (71, 9, 3), (72, 12, 3), (74, 15, 9), (76, 24, 10), (77, 34, 2)]


def test_triplets_and_general_tuplets():
    assert body("(3abc d2|")[0] == [(81, 0, 4), (83, 4, 4), (72, 8, 4), (74, 12, 12)]
    assert [d for _p, _o, d in body("(3:2:4ABcd e|")[0]] == [4, 4, 4, 4, 6]  # r=4 notes
    assert [d for _p, _o, d in body("(2AB|", meter="6/8")[0]] == [9, 9]


def test_ties_merge_across_bar_lines_and_only_same_pitch():
    assert body("A2-A2 B2-|B2 c-d|")[0] == [(69, 0, 24), (71, 24, 24), (72, 48, 6), (74, 54, 6)]


def test_repeats_endings_and_bar_lengths():
    notes, s = body("|:ABcd efga:|[1 gfed cBAG:|[2 g8||\n")
    assert len(notes) == 17
    marks = [m.text for m in parse_text_marks("|:ABcd efga:|[1 gfed cBAG:|[2 g8||\n")]
    assert marks[:3] == ["|:", ":|", "[1"] and "||" in marks
    assert s.bar_lengths == [48, 48, 48]


def parse_text_marks(text):
    s = AbcStream(key="C", meter="4/4", unit="1/8")
    out = []
    for ch in text:
        out += [x for x in s.feed(ch) if isinstance(x, AbcMark) and x.kind == "bar"]
    return out


def test_key_signature_accidentals_and_bar_reset():
    notes, _ = body("F^FF|F=fF|", key="D")
    assert [p for p, _o, _d in notes] == [66, 66, 66, 66, 77, 65]
    notes, _ = body("F^FF|F", key="C", propagate="not")
    assert [p for p, _o, _d in notes] == [65, 66, 65, 65]


def test_chords_symbols_grace_notes_and_decorations():
    s = AbcStream(key="G", meter="3/4", unit="1/8")
    out = []
    for ch in '"Am"A{g}B [CEG]2 !trill!~c .d|':
        out += s.feed(ch)
    out += s.close()
    notes = [(n.pitch, n.duration, n.pitches) for n in out if isinstance(n, AbcNote)]
    assert notes == [(69, 6, ()), (71, 6, ()), (67, 12, (60, 64, 67)), (72, 6, ()), (74, 6, ())]
    assert [m.text for m in out if isinstance(m, AbcMark) and m.kind == "chord"] == ["Am"]


def test_headers_fields_and_tune_end():
    s = AbcStream()
    out = s.feed_text("X:3\nT:Jig\nM:6/8\nL:1/8\nK:Ador\nc2B [K:D]c2B|\n\n")
    assert s.fields["M"] == "6/8" and s.fields["K"] == "Ador"
    notes = [(n.pitch, n.duration) for n in out if isinstance(n, AbcNote)]
    assert notes == [(72, 12), (71, 6), (73, 12), (71, 6)]
    assert out[-1].kind == "end" and s.bar_lengths == [36]


def test_a_half_written_token_waits():
    s = AbcStream(key="C", meter="4/4", unit="1/8")
    assert s.feed("A") == []
    assert s.feed("3") == []
    assert s.feed("/") == []
    assert s.feed("2") == []
    assert s.feed(">") == []  # broken rhythm: A's length still changes
    got = s.feed("B")
    assert [(n.pitch, n.duration) for n in got] == [(69, 14)]  # 9 ticks * 3/2 = 13.5, on the grid
    assert [(n.pitch, n.onset) for n in s.feed("|")] == [(71, 14)]
