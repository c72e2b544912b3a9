"""Raw bytes from a port: only what the engine understands gets through, and nothing raises."""

import mido
import pytest
from hypothesis import given, settings as hsettings, strategies as st

from improvd.midi.normalise import normalise


def test_note_on_velocity_zero_is_a_note_off():
    m = normalise([0x93, 60, 0])
    assert m.type == "note_off" and m.note == 60 and m.channel == 3
    m = normalise(bytes([0x90, 61, 64]))
    assert m.type == "note_on" and m.velocity == 64


@pytest.mark.parametrize("data, kind", [
    ([0x80, 60, 40], "note_off"), ([0xB0, 64, 127], "control_change"), ([0xC0, 5], "program_change"),
    ([0xE0, 0, 64], "pitchwheel"), ([0xF8], "clock"), ([0xFA], "start"), ([0xFB], "continue"),
    ([0xFC], "stop"), ([0xF2, 16, 0], "songpos"),
])
def test_messages_the_engine_uses(data, kind):
    assert normalise(data).type == kind


@pytest.mark.parametrize("data", [
    [], None, [0xF0, 0x7E, 0x7F, 0x06, 0x01, 0xF7],  # sysex (identity request)
    [0xF7], [0xFE], [0xFF],  # end of sysex, active sensing, reset
    [60, 100], [0x3C],  # stray data bytes (running status already expanded by rtmidi)
    [0x90, 60],  # truncated note-on
    [0x90, 200, 300],  # data bytes out of range
    [0xA0, 60, 10], [0xD0, 10],  # aftertouch: ignored
    [0xF1, 3], [0xF3, 1], [0xF6],  # MTC quarter frame, song select, tune request
    ["x", 1, 2], [object()],  # garbage
])
def test_what_improvd_ignores_gives_none(data):
    assert normalise(data) is None


@given(st.lists(st.integers(-300, 300), max_size=8))
@hsettings(max_examples=1500)
def test_random_bytes_never_raise(data):
    m = normalise(data)
    assert m is None or isinstance(m, mido.Message)
    if m is not None:
        assert not (m.type == "note_on" and m.velocity == 0)
        assert m.type in ("note_on", "note_off", "control_change", "program_change", "pitchwheel",
                          "clock", "start", "stop", "continue", "songpos")


@given(st.binary(max_size=6))
def test_random_binary_never_raises(data):
    normalise(data)
