"""The folk model writes the performer's phrase in a key and meter from the settings, or finds
the key from the phrase (key = auto), and answers in it."""

from __future__ import annotations

from pathlib import Path

import pytest

from improvd.config import ConfigError, load_settings
from improvd.midi.files import Note, Performance
from improvd.models import load_model
from improvd.replay import replay

BEAT = 0.5
G_MAJOR = {7, 9, 11, 0, 2, 4, 6}
E_FLAT_MAJOR = {3, 5, 7, 8, 10, 0, 2}


def phrase(pitches):
    return Performance(tuple(Note(p, 90, i * BEAT / 2, (i + 0.9) * BEAT / 2) for i, p in enumerate(pitches)),
                       120.0, BEAT, "t", 480)


def answer(perf, **flags):
    m = load_model("folk")
    s = load_settings(None, {"model": "folk", "tempo": 120, "seed": 4, "bars": 4, **flags}, environ={})
    res = replay(perf, s, model=m)
    return m, [msg.note for _t, msg in res.machine if msg.type == "note_on" and msg.velocity > 0]


EB_PHRASE = [63, 65, 67, 68, 70, 72, 74, 75, 74, 70, 67, 63, 70, 68, 65, 63]


def test_auto_key_follows_the_phrase():
    m, notes = answer(phrase(EB_PHRASE))
    assert "K:Eb Major" in m.history_text
    assert notes and sum(p % 12 in E_FLAT_MAJOR for p in notes) / len(notes) >= 0.8


def test_a_key_from_the_settings_is_kept():
    m, notes = answer(phrase(EB_PHRASE), key="G")
    assert m.key_name == "G" and "K:Eb" not in m.history_text
    assert m.history_text.startswith("X:") and "\nK:G\n" in m.history_text
    assert notes and sum(p % 12 in G_MAJOR for p in notes) / len(notes) >= 0.8


def test_meter_from_the_settings_heads_the_tune():
    m, _ = answer(phrase(EB_PHRASE), meter="6/8")
    assert "\nM:6/8\n" in m.history_text


@pytest.mark.parametrize("flags", [{"key": "H minor"}, {"meter": "seven"}])
def test_bad_key_or_meter_is_one_clear_line(flags):
    with pytest.raises(ConfigError) as e:
        load_settings(None, flags, environ={})
    assert "\n" not in str(e.value)
