"""Hand-made performer phrases for the replay tests, written as small MIDI files with mido.

Run ``python tests/phrases.py`` to (re)write tests/data/*.mid; the files are committed and a
test checks they still match what this script builds. Each phrase is something a player
would really play at the daemon: a bebop line, a ballad held by the pedal, a call ending in a
fast run, a melody over a left-hand chord below a split point, and two calls where the second
cuts into the daemon's answer.
"""

from __future__ import annotations

from pathlib import Path

import mido

DATA = Path(__file__).resolve().parent / "data"
TPB = 480  # file ticks per beat


def _file(bpm: float, events: list[tuple[float, mido.Message]]) -> mido.MidiFile:
    """events: (beat, message) on channel 1; one tempo track plus one performer track."""
    mid = mido.MidiFile(type=1, ticks_per_beat=TPB)
    meta = mido.MidiTrack()
    meta.append(mido.MetaMessage("set_tempo", tempo=mido.bpm2tempo(bpm), time=0))
    meta.append(mido.MetaMessage("time_signature", numerator=4, denominator=4, time=0))
    mid.tracks.append(meta)
    tr = mido.MidiTrack()
    tr.append(mido.MetaMessage("track_name", name="performer", time=0))
    last = 0
    order = {"note_off": 0, "control_change": 1, "note_on": 2}
    for beat, msg in sorted(events, key=lambda e: (e[0], order.get(e[1].type, 3))):
        tick = int(round(beat * TPB))
        tr.append(msg.copy(time=tick - last))
        last = tick
    mid.tracks.append(tr)
    return mid


def _notes(notes, velocity=90, gap=0.1):
    """[(pitch, start_beat, beats)] -> events; each note released ``gap`` of its length early."""
    ev = []
    for pitch, start, beats in notes:
        ev.append((start, mido.Message("note_on", note=pitch, velocity=velocity)))
        ev.append((start + beats * (1 - gap), mido.Message("note_off", note=pitch, velocity=0)))
    return ev


def _line(pitches_beats, start=0.0):
    out, t = [], start
    for p, b in pitches_beats:
        out.append((p, t, b))
        t += b
    return out


def bebop() -> mido.MidiFile:
    """Two bars of eighths over Dm7 G7 | Cmaj7: D F A C B Bb A G | F E D C B D C (half)."""
    e = 0.5
    line = _line([(62, e), (65, e), (69, e), (72, e), (71, e), (70, e), (69, e), (67, e),
                  (65, e), (64, e), (62, e), (60, e), (59, e), (62, e), (60, 1.0)])
    return _file(160, _notes(line))


def ballad() -> mido.MidiFile:
    """A slow phrase held by the sustain pedal: keys let go early, the pedal lifts two beats later."""
    line = _line([(67, 1.0), (72, 1.0), (71, 1.5), (69, 0.5), (67, 2.0)])
    ev = _notes(line, velocity=48, gap=0.5)
    ev.append((0.0, mido.Message("control_change", control=64, value=127)))
    ev.append((2.9, mido.Message("control_change", control=64, value=0)))  # re-pedal mid phrase
    ev.append((3.0, mido.Message("control_change", control=64, value=127)))
    ev.append((6.0 + 2.0, mido.Message("control_change", control=64, value=0)))
    return _file(72, ev)


def fast_run() -> mido.MidiFile:
    """A call ending in a 32nd-note run (faster than the 12-per-beat grid) and a long top note."""
    line = _line([(60, 1.0), (67, 1.0)] + [(p, 0.125) for p in (60, 62, 64, 65, 67, 69, 71, 72, 74, 76, 77, 79)]
                 + [(84, 1.5)])
    return _file(120, _notes(line, velocity=100))


def split_chord() -> mido.MidiFile:
    """A melody above C4 over a G7 voicing below it, the left hand held past the melody's end."""
    melody = _line([(71, 1.0), (74, 0.5), (77, 0.5), (76, 1.0), (74, 1.0), (72, 2.0), (71, 2.0)])
    ev = _notes(melody)
    for p in (43, 47, 50, 53):  # G B D F
        ev.append((0.0, mido.Message("note_on", note=p, velocity=60)))
        ev.append((14.0, mido.Message("note_off", note=p, velocity=0)))
    return _file(120, ev)


def barge_in() -> mido.MidiFile:
    """A one-bar call, then a second call that cuts into the answer a third of a beat after it starts."""
    first = _line([(64, 1.0), (67, 1.0), (69, 1.0), (67, 1.0)])
    second = _line([(72, 1.0), (71, 1.0), (69, 1.0), (67, 1.0)], start=8.25)
    return _file(120, _notes(first) + _notes(second))


PHRASES = {"bebop": bebop, "ballad": ballad, "fast_run": fast_run, "split_chord": split_chord, "barge_in": barge_in}


def write_all(folder: Path = DATA) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    out = []
    for name, build in PHRASES.items():
        path = folder / f"{name}.mid"
        build().save(str(path))
        out.append(path)
    return out


if __name__ == "__main__":
    for p in write_all():
        print(p)
