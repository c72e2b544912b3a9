"""Reading and writing standard MIDI files with mido, to and from notes on the tick grid.

A file that cannot be read gives one ImprovdError line naming the file and the fix; nothing
is written until an output is complete (write to a temp file, then rename).
"""

from __future__ import annotations

import os
import stat
import tempfile
from dataclasses import dataclass
from pathlib import Path

import mido

from improvd import ImprovdError, file_info
from improvd.encoding import TICKS_PER_BEAT

# What a recorded performance can be. Beyond these a file is corrupt or crafted, and reading it
# would take minutes (mido parses some 100k messages a second) or hold a note for years.
MAX_MIDI_BYTES = 2 << 20
MAX_NOTES = 200_000
MAX_HOURS = 4.0


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
    track_names: tuple = ()  # the file's track names by track number ("" where a track has none)

    def to_grid(self, t: float) -> int:
        return int(round(t / self.beat_seconds * TICKS_PER_BEAT))


def read_midi(path: str | Path, tracks: set[int] | None = None) -> Performance:
    """All notes of a file in seconds (tempo changes applied), note-on v0 read as note-off.

    A file is refused with one line, never half-read, when it is not a regular file, is over
    MAX_MIDI_BYTES, cannot be parsed, sets a tempo of 0, or holds more than MAX_NOTES notes or
    a note beyond MAX_HOURS: each of these is a broken or crafted file, not a performance.
    """
    path = Path(path)
    info = file_info(path, "MIDI file", unreadable="check the path and its permissions")
    if not stat.S_ISREG(info.st_mode):
        raise ImprovdError(f"MIDI file {path} is not a regular file: pass a .mid file")
    if info.st_size > MAX_MIDI_BYTES:
        raise ImprovdError(f"MIDI file {path} is {info.st_size / 2**20:.1f} MB, more than the {MAX_MIDI_BYTES >> 20} MB "
                           f"improvd reads: export only the tracks and bars you need")
    try:
        mid = mido.MidiFile(str(path), clip=True)
    except PermissionError as e:
        raise ImprovdError(f"MIDI file {path} cannot be read ({e.strerror}): check its permissions") from None
    except Exception as e:  # mido raises what its parser meets: EOFError, ValueError, KeySignatureError...
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
    limit = MAX_HOURS * 3600

    def too_long(at: float) -> ImprovdError:
        return ImprovdError(f"MIDI file {path} has a note at {at / 3600:.1f} hours, more than the {MAX_HOURS:g} hours "
                            f"improvd reads: the file is corrupt or not one performance; cut it in your DAW")

    for tick, ti, msg in events:
        seconds += mido.tick2second(tick - last_tick, mid.ticks_per_beat, cur_tempo)
        last_tick = tick
        if msg.type == "set_tempo":
            if msg.tempo <= 0:
                raise ImprovdError(f"MIDI file {path} sets a tempo of 0 at tick {tick} of track {ti}: the file is corrupt; export it again")
            cur_tempo = msg.tempo
            if tempo is None:
                tempo = mido.tempo2bpm(msg.tempo)
            continue
        if tracks is not None and ti not in tracks:
            continue
        if msg.type == "control_change":
            if seconds <= limit:
                controls.append((seconds, msg.channel, msg.control, msg.value, ti))
            continue
        if msg.type not in ("note_on", "note_off"):
            continue
        if seconds > limit:
            raise too_long(seconds)
        if msg.type == "note_on" and msg.velocity > 0:
            key = (ti, msg.channel, msg.note)
            if key in open_notes:  # re-struck without a note-off: end the first one here
                s, v = open_notes.pop(key)
                notes.append(Note(msg.note, v, s, seconds, msg.channel, ti))
            open_notes[key] = (seconds, msg.velocity)
            if len(notes) + len(open_notes) > MAX_NOTES:
                raise ImprovdError(f"MIDI file {path} holds more than {MAX_NOTES} notes, more than one performance: "
                                   f"export only the tracks and bars you need")
        else:
            key = (ti, msg.channel, msg.note)
            if key in open_notes:
                s, v = open_notes.pop(key)
                notes.append(Note(msg.note, v, s, max(seconds, s), msg.channel, ti))
    if open_notes and seconds > limit:  # a lost note-off would hold its note to a far end of track
        raise too_long(seconds)
    for (ti, ch, p), (s, v) in open_notes.items():
        notes.append(Note(p, v, s, max(seconds, s + 0.1), ch, ti))
    notes.sort(key=lambda n: (n.start, n.pitch))
    bpm = tempo or 120.0
    names = tuple(_track_name(tr) for tr in mid.tracks)
    return Performance(tuple(notes), bpm, 60.0 / bpm, str(path), mid.ticks_per_beat, tuple(controls), names)


def _track_name(track) -> str:
    name = getattr(track, "name", "") or ""
    return "".join(ch for ch in name if ch.isprintable())[:40]


def _umask() -> int:
    """The process's umask (only readable by setting it): mkstemp makes 0600 files, but a
    written MIDI file should get the mode any other file of the user's would (0644 usually)."""
    mask = os.umask(0)
    os.umask(mask)
    return mask


def seconds_to_ticks(tempo_map: list[tuple[float, float]], ticks_per_beat: int):
    """A function from seconds to file ticks under a tempo map [(seconds, bpm), ...] (the
    first entry at 0): piecewise, so each segment keeps its own tempo."""
    segments = []  # (start seconds, start ticks, ticks per second)
    ticks = 0.0
    for i, (t, bpm) in enumerate(tempo_map):
        if i:
            prev_t, prev_ticks, rate = segments[-1]
            ticks = prev_ticks + (t - prev_t) * rate
        segments.append((t, ticks, bpm / 60.0 * ticks_per_beat))

    def convert(seconds: float) -> int:
        seconds = max(0.0, seconds)
        start, base, rate = segments[0]
        for seg in segments:
            if seg[0] <= seconds:
                start, base, rate = seg
        return int(round(base + (seconds - start) * rate))

    return convert


def write_midi(path: str | Path, tracks: list[tuple[str, list]], tempo: float, ticks_per_beat: int = 480,
               tempo_map: list[tuple[float, float]] | None = None, markers: list[tuple[float, str]] = ()) -> None:
    """Tracks of (name, [(seconds, mido.Message), ...]) to a type-1 file, atomically.

    ``tempo_map`` [(seconds, bpm), ...] puts tempo changes in the file (a recorded take whose
    tempo was tapped or followed); ``markers`` [(seconds, text)] become marker events (the
    chord chart as it went by)."""
    path = Path(path)
    mid = mido.MidiFile(type=1, ticks_per_beat=ticks_per_beat)
    tempo_map = sorted(tempo_map) if tempo_map else [(0.0, tempo)]
    if tempo_map[0][0] > 0:
        tempo_map.insert(0, (0.0, tempo))
    to_tick = seconds_to_ticks(tempo_map, ticks_per_beat)
    meta = mido.MidiTrack()
    conductor = [(to_tick(t), 0, mido.MetaMessage("set_tempo", tempo=mido.bpm2tempo(bpm))) for t, bpm in tempo_map]
    conductor.append((0, 1, mido.MetaMessage("time_signature", numerator=4, denominator=4)))
    conductor += [(to_tick(t), 2, mido.MetaMessage("marker", text=str(text)[:60])) for t, text in markers]
    last = 0
    for tick, _rank, msg in sorted(conductor, key=lambda x: (x[0], x[1])):
        meta.append(msg.copy(time=tick - last))
        last = tick
    mid.tracks.append(meta)
    for name, timed in tracks:
        tr = mido.MidiTrack()
        tr.append(mido.MetaMessage("track_name", name=name, time=0))
        last = 0
        ticked = [(to_tick(t), msg) for t, msg in sorted(timed, key=lambda x: x[0])]
        for tick, msg in file_order(ticked):
            tr.append(msg.copy(time=max(0, tick - last)))
            last = max(last, tick)
        mid.tracks.append(tr)
    try:
        path.parent.mkdir(parents=True, exist_ok=True) if str(path.parent) else None
        fd, tmp = tempfile.mkstemp(prefix=".improvd-", suffix=".mid", dir=str(path.parent or "."))
    except OSError as e:  # a parent that cannot be made: /proc, a file in the way, no permission
        raise ImprovdError(f"MIDI file {path} cannot be written ({e.strerror}): write it into a folder you can write to") from None
    os.close(fd)
    try:
        mid.save(tmp)
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    except BaseException as e:
        if os.path.exists(tmp):
            os.unlink(tmp)
        if isinstance(e, OSError):  # -o names a folder, or a file we may not replace
            raise ImprovdError(f"MIDI file {path} cannot be written ({e.strerror}): name a file, in a folder you can write to") from None
        raise


def _is_off(msg) -> bool:
    return msg.type == "note_off" or (msg.type == "note_on" and msg.velocity == 0)


def file_order(ticked: list) -> list:
    """(tick, message) pairs in time order, reordered within each tick so that every note-on
    keeps a later note-off.

    A file has no order finer than a tick, so at one tick a note that sounded before it ends
    first (a repeated pitch re-strikes cleanly), and a note that starts and ends there (zero
    length, e.g. a click cut by the end of a replay) is written on-then-off: written off-then-on
    it would sound to the end of the file. Other messages keep their order.
    """
    out: list = []
    sounding: dict = {}  # (channel, note) -> note-ons not yet ended, before this tick
    i = 0
    while i < len(ticked):
        j = i
        while j < len(ticked) and ticked[j][0] == ticked[i][0]:
            j += 1
        group = ticked[i:j]
        early, rest = [], []
        ending = dict(sounding)  # how many offs at this tick end notes from before it
        for tick, msg in group:
            key = (msg.channel, msg.note) if msg.type in ("note_on", "note_off") else None
            if key is not None and _is_off(msg) and ending.get(key, 0) > 0:
                ending[key] -= 1
                early.append((tick, msg))
            else:
                rest.append((tick, msg))
        for _tick, msg in early:
            sounding[(msg.channel, msg.note)] -= 1
        waiting: dict = {}  # key -> offs met before any note of theirs had started at this tick
        late = []
        for tick, msg in rest:
            if msg.type not in ("note_on", "note_off"):
                late.append((tick, msg))
                continue
            key = (msg.channel, msg.note)
            if _is_off(msg):
                if sounding.get(key, 0) > 0:
                    sounding[key] -= 1
                    late.append((tick, msg))
                else:
                    waiting.setdefault(key, []).append((tick, msg))
            else:
                late.append((tick, msg))
                if waiting.get(key):
                    late.append(waiting[key].pop(0))  # a zero-length note: its off after its on
                else:
                    sounding[key] = sounding.get(key, 0) + 1
        out += early + late + [m for offs in waiting.values() for m in offs]
        i = j
    return out
