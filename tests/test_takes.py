"""Takes as written: the tempo map keeps every note at its second, chords become markers, a
silence ends a take, an unwritable folder is refused at start."""

from __future__ import annotations

import time

import mido
import pytest

from improvd import ImprovdError
from improvd.takes import Takes


def note(kind, pitch, velocity=80):
    return mido.Message(kind, note=pitch, velocity=velocity)


def seconds_of_notes(path):
    t, out = 0.0, []
    for msg in mido.MidiFile(path):  # mido plays the file through its own tempo map
        t += msg.time
        if msg.type == "note_on" and msg.velocity:
            out.append((round(t, 3), msg.note))
    return out


def test_a_tempo_change_mid_take_keeps_every_note_at_its_time(tmp_path):
    takes = Takes(tmp_path, 120.0, silence=5.0, plot=False)
    t0 = 1000.0
    takes.performer(note("note_on", 60), t0)
    takes.performer(note("note_off", 60), t0 + 0.4)
    takes.tempo(90.0, t0 + 1.0)  # tapped slower
    takes.chord("Dm7", t0 + 1.0)
    takes.machine(note("note_on", 67).bytes(), t0 + 2.5)
    takes.machine(note("note_off", 67).bytes(), t0 + 3.0)
    path = takes.rotate(t0 + 10)
    takes.close(t0 + 10)
    assert sorted(seconds_of_notes(path)) == [(0.0, 60), (2.5, 67)]
    mid = mido.MidiFile(path)
    tempos = [round(mido.tempo2bpm(m.tempo)) for m in mid.tracks[0] if m.type == "set_tempo"]
    assert tempos == [120, 90]
    assert [m.text for m in mid.tracks[0] if m.type == "marker"] == ["Dm7"]


def test_a_long_silence_ends_the_take_and_an_empty_one_is_not_written(tmp_path):
    takes = Takes(tmp_path, 120.0, silence=2.0, plot=False)
    now = time.perf_counter()
    takes.poll(now + 100)  # nothing played yet
    takes.performer(note("note_on", 62), now)
    takes.poll(now + 1.0)  # the key is down
    takes.performer(note("note_off", 62), now + 1.5)
    takes.poll(now + 2.0)  # not silent long enough
    assert takes.count == 0
    takes.poll(now + 3.6)
    takes.close(now + 4)
    assert takes.count == 1 and len(list(tmp_path.glob("*.mid"))) == 1


def test_an_unwritable_folder_is_refused_in_one_line(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(ImprovdError, match="record folder"):
        Takes(blocker / "takes", 120.0)
