"""``--record DIR``: every session kept as MIDI files, a take per piece.

A performer wants the good night back: what they played, what improvd answered, at the tempo
it was played, with the chords that went by. A take ends after ``silence`` seconds in which
nobody played (a new piece starts) and when the daemon stops; each take is written as
``YYYYmmdd-HHMMSS-take-N.mid`` (performer and improvd tracks, the tempo map, the chords as
markers) with a piano-roll PNG beside it.

The engine thread only appends to lists. Writing happens on a thread of its own, and the
piano roll is drawn by ``improvd plot`` in a child process at low priority: matplotlib
neither loads into the daemon nor holds its GIL while the next piece is played.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import mido

from improvd import ImprovdError
from improvd.midi.files import write_midi

log = logging.getLogger("improvd")

PERFORMER_PROGRAM, IMPROVD_PROGRAM = 0, 11  # as replay writes them: piano and vibraphone
MAX_MESSAGES = 200_000  # a take this long is written and a new one begun


@dataclass
class Take:
    started: float  # perf_counter seconds
    performer: list = field(default_factory=list)  # (seconds, Message)
    machine: list = field(default_factory=list)
    tempo: list = field(default_factory=list)  # (seconds, bpm)
    chords: list = field(default_factory=list)  # (seconds, name)
    last_note: float = 0.0  # the last note-on or note-off
    sounding: dict = field(default_factory=dict)  # (channel, note) -> note-ons not yet ended

    def empty(self) -> bool:
        return not any(m.type == "note_on" for _t, m in self.performer + self.machine)


def check_folder(folder: str | Path) -> Path:
    """The folder takes go to, made if missing; a folder that cannot be written is refused at
    start with one line rather than found out at the end of the night."""
    path = Path(folder).expanduser()
    try:
        path.mkdir(parents=True, exist_ok=True)
        probe = path / ".improvd-write-test"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as e:
        raise ImprovdError(f"record folder {path} cannot be written ({e.strerror}): pick another --record DIR") from None
    return path


class Takes:
    def __init__(self, folder: str | Path, tempo: float, silence: float = 30.0, plot: bool = True):
        self.folder = check_folder(folder)
        self.silence = silence
        self.plot = plot
        self.count = 0
        self._writers: list[threading.Thread] = []
        self._take = Take(time.perf_counter(), tempo=[(0.0, tempo)])
        self.tempo_now = tempo
        self.chord_now = None

    # -- called by the engine thread: appends only ---------------------------------------------
    def performer(self, msg, t: float) -> None:
        self._add(self._take.performer, msg, t)

    def machine(self, data: list, t: float) -> None:
        try:
            msg = mido.Message.from_bytes(data)
        except (ValueError, TypeError):
            return
        if msg.type in ("note_on", "note_off", "control_change", "program_change", "pitchwheel"):
            self._add(self._take.machine, msg, t)

    def tempo(self, bpm: float, t: float) -> None:
        if abs(bpm - self.tempo_now) > 0.05:
            self.tempo_now = bpm
            self._take.tempo.append((max(0.0, t - self._take.started), bpm))

    def chord(self, name: str | None, t: float) -> None:
        if name != self.chord_now:
            self.chord_now = name
            self._take.chords.append((max(0.0, t - self._take.started), name or "N.C."))

    def _add(self, into: list, msg, t: float) -> None:
        take = self._take
        if not into and not take.performer and not take.machine:
            take.started = t  # a take begins with its first message, not with the silence before it
            take.tempo = [(0.0, self.tempo_now)]
            take.chords = [(0.0, self.chord_now)] if self.chord_now else []
        into.append((t - take.started, msg))
        if msg.type in ("note_on", "note_off"):
            key = (msg.channel, msg.note)
            if msg.type == "note_on" and msg.velocity:
                take.last_note = t
                take.sounding[key] = take.sounding.get(key, 0) + 1
            elif take.sounding.get(key):
                take.last_note = t  # silence counts from the last note's end
                take.sounding[key] -= 1
                if not take.sounding[key]:
                    del take.sounding[key]
        if len(take.performer) + len(take.machine) >= MAX_MESSAGES:
            self.rotate(t)

    def poll(self, now: float) -> None:
        """Once a second or so: a silence long enough ends the take."""
        take = self._take
        if take.last_note and now - take.last_note >= self.silence and not take.sounding:
            self.rotate(now)

    def rotate(self, now: float) -> Path | None:
        """The take so far goes to disk (on a thread); the next one starts empty."""
        take, self._take = self._take, Take(now, tempo=[(0.0, self.tempo_now)])
        if take.empty():
            return None
        self.count += 1
        path = self.folder / f"{time.strftime('%Y%m%d-%H%M%S')}-take-{self.count}.mid"
        writer = threading.Thread(target=self._write, args=(take, path), name="improvd-take", daemon=False)
        writer.start()
        self._writers.append(writer)
        self._writers = [w for w in self._writers if w.is_alive()]
        return path

    def close(self, now: float) -> None:
        """At exit: the last take is written before the daemon goes."""
        self.rotate(now)
        for w in self._writers:
            w.join(timeout=30)

    # -- the writer thread -------------------------------------------------------------------
    def _write(self, take: Take, path: Path) -> None:
        try:
            write_take(take, path)
        except OSError as e:
            log.error("take %s could not be written (%s): check the --record folder", path, e.strerror)
            return
        notes = sum(1 for _t, m in take.performer + take.machine if m.type == "note_on" and m.velocity)
        log.info("take written: %s (%d notes, %.0f s)", path, notes, max((t for t, _m in take.performer + take.machine), default=0))
        if self.plot:
            draw_later(path)


def write_take(take: Take, path: Path) -> None:
    """Performer and improvd tracks, the tempo map and the chords, as replay writes its files."""
    used = {m.channel for _t, m in take.machine if hasattr(m, "channel")}
    programs = [(0.0, mido.Message("program_change", channel=c, program=IMPROVD_PROGRAM)) for c in sorted(used) if c != 9]
    performer_channels = {m.channel for _t, m in take.performer if hasattr(m, "channel")} or {0}
    performer = [(0.0, mido.Message("program_change", channel=c, program=PERFORMER_PROGRAM))
                 for c in sorted(performer_channels) if c != 9]
    write_midi(path, [("performer", performer + take.performer), ("improvd", programs + take.machine)],
               take.tempo[0][1], tempo_map=take.tempo, markers=take.chords)


def draw_later(path: Path) -> None:
    """The piano roll by ``improvd plot`` in a child process at the lowest priority."""
    import tempfile

    # matplotlib keeps a font cache under HOME, which the systemd unit hides: a private one
    env = {**os.environ, "MPLCONFIGDIR": os.path.join(tempfile.gettempdir(), "improvd-matplotlib")}
    try:
        subprocess.Popen([sys.executable, "-m", "improvd", "plot", str(path), "-o", str(path.with_suffix(".png"))],
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
                         preexec_fn=lambda: os.nice(19), env=env)
    except OSError as e:
        log.warning("piano roll for %s not drawn (%s)", path, e.strerror)
