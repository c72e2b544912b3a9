"""The abc-chars encoding: vocabulary, tunes, corpora, keys, and the performer's line as ABC."""

from fractions import Fraction
from pathlib import Path

import pytest

from improvd import ImprovdError
from improvd.abcstream import parse_text
from improvd.encoding import abc as enc
from improvd.encoding.events import REST, Event

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
IRISH = DATA / "abc" / "irish.trainvalid.abc"


def test_vocabulary_is_fixed_and_round_trips():
    assert len(enc.VOCAB) == 96 and len(set(enc.VOCAB)) == 96
    text = "X:1\nT:Tune\nM:6/8\nL:1/8\nK:D Major\n(3ABc|d2A ^f>e _B,|!\n"
    ids = enc.encode(text)
    assert ids.dtype.kind == "i" and enc.decode(ids) == text
    with pytest.raises(ImprovdError):
        enc.encode("caf\u00e9")
    assert enc.to_ascii("caf\u00e9\tx\r\n") == "cafe x\n"


@pytest.mark.skipif(not IRISH.exists(), reason="shared data absent")
def test_irish_corpus_round_trips_and_splits_by_tune():
    tunes = enc.load_irish(IRISH)
    assert len(tunes) == 683  # 685 blank-line blocks, two of them stray halves with no X:/K:
    text = enc.join_tunes(tunes)
    assert enc.decode(enc.encode(text)) == text
    assert len(set(text)) <= 83  # the lab's symbols all fall inside the fixed vocabulary
    train, valid = enc.split_valid(tunes, 0.1, 0)
    assert len(valid) == 68 and len(train) + len(valid) == len(tunes)
    assert not set(valid) & set(train)
    assert enc.split_valid(tunes, 0.1, 0) == (train, valid)
    assert enc.split_valid(tunes, 0.1, 1)[1] != valid


def test_split_tunes_needs_x_and_k():
    text = "free text\n\nX:1\nT:a\nK:G\nabc|\n\n\nX:2\nT:no key\n\nX:3\nK:D\nd|"
    assert [enc.header(t)["X"] for t in enc.split_tunes(text)] == ["1", "3"]


def test_normalize_tune_keeps_music_only():
    raw = 'X: 7\nT:Reel\nS:someone\nR:reel\nM:C\nK:Am\n"Am"u(c<A)!trill!A>.B % fingering\n"4"e|\\\n T c2 :|\n'
    out = enc.normalize_tune(raw)
    assert out.startswith("X:7\nT:Reel\nM:C\nL:1/8\nK:Am\n")
    body = out.split("K:Am\n", 1)[1]
    assert '"' not in body and "!" not in body and "%" not in body and "u" not in body and "T" not in body
    music21 = pytest.importorskip("music21")
    assert len(music21.converter.parse(out, format="abc").flatten().notes) == 6


def test_keys_meters_units():
    assert dict(enc.parse_key("D Major").accidentals) == {"F": 1, "C": 1}
    assert dict(enc.parse_key("Ador").accidentals) == {"F": 1}
    assert dict(enc.parse_key("G Dorian").accidentals) == {"B": -1}
    assert dict(enc.parse_key("F#m").accidentals) == {"F": 1, "C": 1, "G": 1}
    assert dict(enc.parse_key("Bb").accidentals) == {"B": -1, "E": -1}
    assert dict(enc.parse_key("D ^g").accidentals) == {"F": 1, "C": 1, "G": 1}
    with pytest.raises(ImprovdError):
        enc.parse_key("d2d2BA3")
    assert enc.parse_meter("C|") == 1 and enc.parse_meter("6/8") == Fraction(3, 4) and enc.parse_meter("6/8x") is None
    assert enc.parse_unit("1/16") == Fraction(1, 16)
    with pytest.raises(ImprovdError):
        enc.parse_unit("1/0")


def _events(spec, start=0):
    out, t = [], start
    for p, d in spec:
        out.append(Event(p, d, t, None))
        t += d
    return out


def test_writer_round_trips_through_the_stream_parser():
    # in G: an F natural (out of key), a note across the bar line (tied), a rest, a triplet eighth
    spec = [(67, 6), (69, 6), (71, 12), (65, 6), (66, 6), (74, 24), (72, 24), (REST, 12), (79, 4), (78, 4), (76, 4), (74, 12)]
    w = enc.AbcWriter(enc.parse_key("G"), Fraction(1), Fraction(1, 8))
    text = w.write(_events(spec))
    assert "=F" in text and "-|" in text and "z" in text
    notes, _ = parse_text(text + "|", key="G", meter="4/4", unit="1/8")
    assert [(n.pitch if n.pitch is not None else REST, n.duration) for n in notes] == spec


def test_writer_gives_short_lifts_to_the_note_and_spells_in_key():
    ev = [Event(62, 5, 0, None), Event(REST, 1, 5, None), Event(66, 6, 6, None), Event(70, 6, 12, None)]
    w = enc.AbcWriter(enc.parse_key("D"), Fraction(1), Fraction(1, 8))
    assert w.write(ev) == "DF^A"  # a sharp key spells sharps


def test_detect_key():
    g_major = _events([(p, 6) for p in (67, 69, 71, 72, 74, 76, 78, 79, 74, 71, 67)])
    assert enc.detect_key(g_major) == "G Major"
    assert enc.detect_key(g_major[:2]) is None
