"""Timed note-on/off out. Every note it starts, it ends: on time, on release, on close.

The scheduler is the only thing that sends notes, so it alone knows what is sounding; that
is what makes 'no stuck notes' a property of one class instead of a hope spread over many.
"""

from __future__ import annotations

import heapq
import itertools
from dataclasses import dataclass, field
from typing import Callable, NamedTuple

import mido


@dataclass
class Timing:
    """Sent-minus-due of every message sent, for --stats and the benchmark."""

    errors: list = field(default_factory=list)
    late: int = 0  # more than 2 ms late
    limit: int = 100000

    def add(self, err: float) -> None:
        if len(self.errors) >= self.limit:
            del self.errors[: self.limit // 2]
        self.errors.append(err)
        if err > 0.002:
            self.late += 1


class Planned(NamedTuple):
    """A message waiting in the heap. Field order is the heap's order: by time, a note-off
    before a note-on at one instant (a repeated pitch re-strikes cleanly), then first planned."""

    time: float
    order: int  # 0 off, 1 on
    seq: int
    kind: str  # "on" | "off"
    pitch: int
    velocity: int
    generation: int  # which note-on an off belongs to: a re-struck pitch's old off is ignored


class Repeat(NamedTuple):
    """A note-off to send again (see Scheduler.REPEAT_OFF)."""

    time: float
    channel: int
    pitch: int
    thru: bool  # the performer's note passed on, not improvd's own


class Scheduler:
    # Self-healing at the far end. A live MIDI path loses messages (JACK under load, USB MIDI,
    # a reconnect): a lost note-off is a note that sounds until something else ends it. So on
    # a live port every note-off is sent again REPEAT_OFF seconds later (unless the pitch sounds
    # again by then), and a channel that has been silent for SILENT_CLEAR seconds gets one
    # all-notes-off (CC123) and pedal-up (CC64 0). Replays write files, which lose nothing.
    # Four repeats, not two: with 10 % lost, three sends leave 1 note-off in 1,000 lost, which a
    # duet at 200 BPM reaches in about 12 s (a CI run heard one note sound 2.3 s); five sends
    # leave 1 in 100,000. The last lands 0.7 s after the note, inside the 1 s promise.
    REPEAT_OFF = (0.1, 0.25, 0.45, 0.7)
    SILENT_CLEAR = 1.0

    def __init__(self, send: Callable[[mido.Message, float, float], None], channel: int = 0,
                 max_note: float = 8.0, heal: bool = False):
        """``send(msg, due, now)`` (due None for passed-through performer messages and for the
        repeated note-offs of ``heal``); ``channel`` 0-based; ``max_note`` seconds guard every
        note; ``heal``: repeat note-offs and clear silent channels (live ports only)."""
        self._send = send
        self.heal = heal
        self._repeats: list[Repeat] = []  # a heap: note-offs to send again
        self._silent_since: dict[int, float] = {}  # channel -> when the last note there ended
        self.repeated_offs = 0
        self.clears = 0
        self.channel = channel
        self.max_note = max_note
        self._heap: list[Planned] = []
        self._seq = itertools.count()
        self.sounding: dict[int, int] = {}  # pitch -> generation of the note-on that sounds
        self._gen = itertools.count(1)
        self.timing = Timing()
        self.sent_on = 0
        self.sent_off = 0
        self.thru_sounding: set = set()  # (channel, note) of passed-through performer notes
        self.thru_pedal: set = set()
        self.thru_channels: set = set()
        self.now = float("-inf")  # the last flush: a note planned before it is already late
        self.late_planned = 0

    # -- planning ----------------------------------------------------------------------------
    def note(self, pitch: int, velocity: int, start: float, end: float) -> None:
        """Plan a note; its off comes at ``end`` or after ``max_note``, whichever is first."""
        gen = next(self._gen)
        if start < self.now - 1e-9:
            self.late_planned += 1
        end = min(max(end, start + 0.005), start + self.max_note)
        heapq.heappush(self._heap, Planned(start, 1, next(self._seq), "on", pitch, velocity, gen))
        heapq.heappush(self._heap, Planned(end, 0, next(self._seq), "off", pitch, 0, gen))

    def start_now(self, pitch: int, velocity: int, now: float) -> None:
        """A note held until ``stop_now`` (harmony voices), still guarded by ``max_note``."""
        self.note(pitch, velocity, now, now + self.max_note)
        self.flush(now)

    def stop_now(self, pitch: int, now: float) -> None:
        if pitch in self.sounding:
            self._off(pitch, now, now)
        self._heap = [planned for planned in self._heap if planned.pitch != pitch]
        heapq.heapify(self._heap)

    # -- sending -----------------------------------------------------------------------------
    def next_due(self) -> float | None:
        return self._heap[0].time if self._heap else None

    def flush(self, now: float) -> int:
        """Send everything due at or before ``now``; returns how many went out."""
        n = 0
        self.now = max(self.now, now)
        while self._heap and self._heap[0].time <= now:
            due, _order, _seq, kind, pitch, vel, gen = heapq.heappop(self._heap)
            if kind == "on":
                if pitch in self.sounding:
                    self._off(pitch, due, now)  # re-strike: end the old one first
                self._emit(mido.Message("note_on", channel=self.channel, note=pitch, velocity=max(1, min(127, vel))), due, now)
                self.sounding[pitch] = gen
                self.sent_on += 1
            elif self.sounding.get(pitch) == gen:
                self._off(pitch, due, now)
            n += 1
        if self.heal:
            self._heal(now)
        return n

    def _heal(self, now: float) -> None:
        """Send again the note-offs whose time has come, then clear channels long silent."""
        while self._repeats and self._repeats[0].time <= now:
            _time, ch, pitch, thru = heapq.heappop(self._repeats)
            if thru and (ch, pitch) in self.thru_sounding:
                continue  # the performer struck it again
            if not thru and pitch in self.sounding:
                continue  # improvd plays it again
            self._send(mido.Message("note_off", channel=ch, note=pitch, velocity=0), None, now)
            self.repeated_offs += 1
        for ch, since in list(self._silent_since.items()):
            if now - since < self.SILENT_CLEAR or not self._channel_silent(ch):
                continue
            del self._silent_since[ch]
            self._send(mido.Message("control_change", channel=ch, control=123, value=0), None, now)
            if ch not in self.thru_pedal:
                self._send(mido.Message("control_change", channel=ch, control=64, value=0), None, now)
            self.clears += 1

    def _channel_silent(self, ch: int) -> bool:
        """Nothing improvd started or passed through sounds on ``ch`` now or very soon."""
        if ch == self.channel and self.sounding:
            return False
        if ch in self.thru_pedal or any(c == ch for c, _n in self.thru_sounding):
            return False
        if ch == self.channel and self._heap and self._heap[0].time - self.now < 0.05:
            return False  # a note is about to start: an all-notes-off now could race it
        return True

    def _released(self, ch: int, pitch: int, now: float, thru: bool) -> None:
        if not self.heal:
            return
        for delay in self.REPEAT_OFF:
            heapq.heappush(self._repeats, Repeat(now + delay, ch, pitch, thru))
        self._silent_since[ch] = now

    def release_all(self, now: float) -> None:
        """Barge-in, mode change, panic, exit: nothing planned goes out, everything sounding ends."""
        self._heap.clear()
        for pitch in list(self.sounding):
            self._off(pitch, now, now)

    def send_now(self, msg, now: float) -> None:
        """A control message (state LED, clock) straight out."""
        self._emit(msg, now, now)

    def thru(self, msg, now: float, channel: int | None = None) -> None:
        """The performer's own notes passed on to the synth; tracked so close() can end them."""
        if channel is not None and hasattr(msg, "channel"):
            msg = msg.copy(channel=channel)
        if hasattr(msg, "channel"):
            self.thru_channels.add(msg.channel)
        if msg.type == "note_on" and msg.velocity > 0:
            key = (msg.channel, msg.note)
            if key in self.thru_sounding:  # struck again without a release: end the first
                self._send(mido.Message("note_off", channel=key[0], note=key[1], velocity=0), None, now)
            self.thru_sounding.add(key)
            self._silent_since.pop(msg.channel, None)
        elif msg.type in ("note_on", "note_off"):
            if (msg.channel, msg.note) not in self.thru_sounding:
                return  # a release of nothing we passed on
            self.thru_sounding.discard((msg.channel, msg.note))
            self._send(msg, None, now)
            self._released(msg.channel, msg.note, now, thru=True)
            return
        elif msg.type == "control_change" and msg.control == 64:
            if msg.value >= 64:
                self.thru_pedal.add(msg.channel)
            else:
                self.thru_pedal.discard(msg.channel)
                if self.heal:
                    self._silent_since[msg.channel] = now
        self._send(msg, None, now)  # due None: not one of improvd's own timed notes

    def release_thru(self, now: float) -> None:
        """The keyboard went away with keys down (or they were held implausibly long): end at
        the synth what passthrough started there, and lift the pedal it passed on."""
        for ch, note in sorted(self.thru_sounding):
            self._send(mido.Message("note_off", channel=ch, note=note, velocity=0), None, now)
            self._released(ch, note, now, thru=True)
        self.thru_sounding.clear()
        for ch in sorted(self.thru_pedal):
            self._send(mido.Message("control_change", channel=ch, control=64, value=0), None, now)
        self.thru_pedal.clear()

    def release_thru_note(self, channel: int | None, note: int, now: float) -> None:
        """One passed-through note whose release never came (see Engine's stale keys)."""
        for key in sorted(k for k in self.thru_sounding if k[1] == note and (channel is None or k[0] == channel)):
            self.thru_sounding.discard(key)
            self._send(mido.Message("note_off", channel=key[0], note=note, velocity=0), None, now)
            self._released(key[0], note, now, thru=True)

    def close(self, now: float) -> None:
        self.release_all(now)
        for ch, note in sorted(self.thru_sounding):
            self._send(mido.Message("note_off", channel=ch, note=note, velocity=0), None, now)
        for ch in sorted(self.thru_pedal):
            self._send(mido.Message("control_change", channel=ch, control=64, value=0), None, now)
        # On a live port, the note-offs still waiting to be repeated go out once more now: the
        # exit burst is where a loaded MIDI system loses (or mangles) messages most.
        for _t, ch, pitch, _thru in sorted(set(self._repeats)):
            self._send(mido.Message("note_off", channel=ch, note=pitch, velocity=0), None, now)
        self._repeats.clear()
        for ch in sorted(self.thru_channels - {self.channel}):  # self.channel gets its CC123 below
            # all notes off where the performer played: a note-off a loaded MIDI system
            # dropped on the way still ends at the synth
            self._send(mido.Message("control_change", channel=ch, control=123, value=0), None, now)
        self.thru_sounding.clear()
        self.thru_pedal.clear()
        try:
            self._send(mido.Message("control_change", channel=self.channel, control=123, value=0), now, now)
            if self.heal:
                self._send(mido.Message("control_change", channel=self.channel, control=64, value=0), None, now)
        except Exception:
            pass

    def _off(self, pitch: int, due: float, now: float) -> None:
        self.sounding.pop(pitch, None)
        self._emit(mido.Message("note_off", channel=self.channel, note=pitch, velocity=0), due, now)
        self.sent_off += 1
        self._released(self.channel, pitch, now, thru=False)

    def _emit(self, msg, due: float, now: float) -> None:
        self.timing.add(now - due)
        self._send(msg, due, now)
