"""Reading and writing standard MIDI files with mido, to and from notes on the tick grid.

A file that cannot be read gives one ImprovdError line naming the file and the fix; nothing
is written until an output is complete (write to a temp file, then rename).
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

import mido

from improvd import ImprovdError
from improvd.encoding import TICKS_PER_BEAT


@dataclass(frozen=True)
class Note:
    pitch: int
    velocity: int
    start: float  # seconds
    end: float  # seconds
    channel: int = 0
    track: int = 0


@dataclass(frozen=True)
class Performance:
    notes: tuple  # Note, sorted by start
    tempo: float  # BPM of the file's first tempo
    beat_seconds: float
    path: str = ""
    ticks_per_beat: int = 480
    controls: tuple = ()  # (seconds, channel, control, value, track): the sustain pedal and friends

    def to_grid(self, t: float) -> int:
        return int(round(t / self.beat_seconds * TICKS_PER_BEAT))


def read_midi(path: str | Path, tracks: set[int] | None = None) -> Performance:
    """All notes of a file in seconds (tempo changes applied), note-on v0 read as note-off."""
    path = Path(path)
    try:
        mid = mido.MidiFile(str(path), clip=True)
    except FileNotFoundError:
        raise ImprovdError(f"MIDI file {path} does not exist: check the path") from None
    except (OSError, EOFError, ValueError, KeyError, IndexError) as e:
        raise ImprovdError(f"MIDI file {path} is malformed or truncated ({str(e)[:80] or type(e).__name__}): export it again from your DAW or recorder") from None
    if mid.ticks_per_beat <= 0:
        raise ImprovdError(f"MIDI file {path} uses SMPTE time division (or a corrupt header): save it with ticks per beat")
    if mid.type == 2:
        raise ImprovdError(f"MIDI file {path} is type 2 (independent patterns): save it as type 0 or 1")
    tempo = None
    notes: list[Note] = []
    controls: list = []
    open_notes: dict[tuple, tuple] = {}
    # Merge tracks keeping track numbers, then walk once applying tempo changes in order.
    seconds, cur_tempo = 0.0, 500000
    events = []
    for ti, track in enumerate(mid.tracks):
        t = 0
        for msg in track:
            t += msg.time
            events.append((t, ti, msg))
    events.sort(key=lambda e: e[0])
    last_tick = 0
    for tick, ti, msg in events:
        seconds += mido.tick2second(tick - last_tick, mid.ticks_per_beat, cur_tempo)
        last_tick = tick
        if msg.type == "set_tempo":
            cur_tempo = msg.tempo
            if tempo is None:
                tempo = mido.tempo2bpm(msg.tempo)
            continue
        if tracks is not None and ti not in tracks:
            continue
        if msg.type == "control_change":
            controls.append((seconds, msg.channel, msg.control, msg.value, ti))
            continue
        if msg.type == "note_on" and msg.velocity > 0:
            key = (ti, msg.channel, msg.note)
            if key in open_notes:  # re-struck without a note-off: end the first one here
                s, v = open_notes.pop(key)
                notes.append(Note(msg.note, v, s, seconds, msg.channel, ti))
            open_notes[key] = (seconds, msg.velocity)
        elif msg.type in ("note_off", "note_on"):
            key = (ti, msg.channel, msg.note)
            if key in open_notes:
                s, v = open_notes.pop(key)
                notes.append(Note(msg.note, v, s, max(seconds, s), msg.channel, ti))
    for (ti, ch, p), (s, v) in open_notes.items():
        notes.append(Note(p, v, s, max(seconds, s + 0.1), ch, ti))
    notes.sort(key=lambda n: (n.start, n.pitch))
    bpm = tempo or 120.0
    return Performance(tuple(notes), bpm, 60.0 / bpm, str(path), mid.ticks_per_beat, tuple(controls))


def write_midi(path: str | Path, tracks: list[tuple[str, list]], tempo: float, ticks_per_beat: int = 480) -> None:
    """Tracks of (name, [(seconds, mido.Message), ...]) to a type-1 file, atomically."""
    path = Path(path)
    mid = mido.MidiFile(type=1, ticks_per_beat=ticks_per_beat)
    us = mido.bpm2tempo(tempo)
    meta = mido.MidiTrack()
    meta.append(mido.MetaMessage("set_tempo", tempo=us, time=0))
    meta.append(mido.MetaMessage("time_signature", numerator=4, denominator=4, time=0))
    mid.tracks.append(meta)
    for name, timed in tracks:
        tr = mido.MidiTrack()
        tr.append(mido.MetaMessage("track_name", name=name, time=0))
        last = 0
        # note-offs before note-ons at the same instant, so a repeated pitch re-strikes cleanly
        for t, msg in sorted(timed, key=lambda x: (x[0], 0 if _is_off(x[1]) else 1)):
            tick = int(round(mido.second2tick(max(0.0, t), ticks_per_beat, us)))
            tr.append(msg.copy(time=max(0, tick - last)))
            last = max(last, tick)
        mid.tracks.append(tr)
    path.parent.mkdir(parents=True, exist_ok=True) if str(path.parent) else None
    fd, tmp = tempfile.mkstemp(prefix=".improvd-", suffix=".mid", dir=str(path.parent or "."))
    os.close(fd)
    try:
        mid.save(tmp)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def _is_off(msg) -> bool:
    return msg.type == "note_off" or (msg.type == "note_on" and msg.velocity == 0)


def melody_events(perf: Performance, chord_at=None):
    """The top line of a performance as grid events (skyline: the highest sounding note wins).

    Used to train on a user's MIDI files and on the Metheny solo: a solo instrument's track
    is monophonic already; for piano the skyline is the usual melody heuristic.
    """
    from improvd.encoding.events import REST, Event

    grid = []
    for n in perf.notes:
        s, e = perf.to_grid(n.start), perf.to_grid(n.end)
        grid.append((s, max(e, s + 1), n.pitch))
    grid.sort(key=lambda x: (x[0], -x[2]))
    line = []
    for s, e, p in grid:
        if line and line[-1][0] == s:
            continue  # a chord's lower notes
        if line and line[-1][1] > s:
            ps, pe, pp = line[-1]
            line[-1] = (ps, s, pp)
        line.append((s, e, p))
    events = []
    for i, (s, e, p) in enumerate(line):
        if s >= e:
            continue
        nxt = line[i + 1][0] if i + 1 < len(line) else e
        chord = chord_at(s) if chord_at else None
        events.append(Event(p, max(1, e - s), s, chord))
        if nxt > e:
            events.append(Event(REST, nxt - e, e, chord_at(e) if chord_at else None))
    return events
