"""Timed note-on/off out. Every note it starts, it ends: on time, on release, on close.

The scheduler is the only thing that sends notes, so it alone knows what is sounding; that
is what makes 'no stuck notes' a property of one class instead of a hope spread over many.
"""

from __future__ import annotations

import heapq
import itertools
from dataclasses import dataclass, field
from typing import Callable

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


class Scheduler:
    def __init__(self, send: Callable[[mido.Message, float, float], None], channel: int = 0,
                 max_note: float = 8.0):
        """``send(msg, due, now)`` (due None for passed-through performer messages); ``channel``
        0-based; ``max_note`` seconds guard every note."""
        self._send = send
        self.channel = channel
        self.max_note = max_note
        self._heap: list = []
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
        heapq.heappush(self._heap, (start, 1, next(self._seq), "on", pitch, velocity, gen))
        heapq.heappush(self._heap, (end, 0, next(self._seq), "off", pitch, 0, gen))

    def start_now(self, pitch: int, velocity: int, now: float) -> None:
        """A note held until ``stop_now`` (harmony voices), still guarded by ``max_note``."""
        self.note(pitch, velocity, now, now + self.max_note)
        self.flush(now)

    def stop_now(self, pitch: int, now: float) -> None:
        if pitch in self.sounding:
            self._off(pitch, now, now)
        self._heap = [e for e in self._heap if not (e[4] == pitch)]
        heapq.heapify(self._heap)

    def cancel_pending(self) -> None:
        """Drop planned note-ons that have not left yet (and their offs)."""
        self._heap = [e for e in self._heap if e[3] == "off" and e[4] in self.sounding and self.sounding[e[4]] == e[6]]
        heapq.heapify(self._heap)

    # -- sending -----------------------------------------------------------------------------
    def next_due(self) -> float | None:
        return self._heap[0][0] if self._heap else None

    def flush(self, now: float) -> int:
        """Send everything due at or before ``now``; returns how many went out."""
        n = 0
        self.now = max(self.now, now)
        while self._heap and self._heap[0][0] <= now:
            due, _o, _s, kind, pitch, vel, gen = heapq.heappop(self._heap)
            if kind == "on":
                if pitch in self.sounding:
                    self._off(pitch, due, now)  # re-strike: end the old one first
                self._emit(mido.Message("note_on", channel=self.channel, note=pitch, velocity=max(1, min(127, vel))), due, now)
                self.sounding[pitch] = gen
                self.sent_on += 1
            elif self.sounding.get(pitch) == gen:
                self._off(pitch, due, now)
            n += 1
        return n

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
        elif msg.type in ("note_on", "note_off"):
            if (msg.channel, msg.note) not in self.thru_sounding:
                return  # a release of nothing we passed on
            self.thru_sounding.discard((msg.channel, msg.note))
        elif msg.type == "control_change" and msg.control == 64:
            if msg.value >= 64:
                self.thru_pedal.add(msg.channel)
            else:
                self.thru_pedal.discard(msg.channel)
        self._send(msg, None, now)  # due None: not one of improvd's own timed notes

    def close(self, now: float) -> None:
        self.release_all(now)
        for ch, note in sorted(self.thru_sounding):
            self._send(mido.Message("note_off", channel=ch, note=note, velocity=0), None, now)
        for ch in sorted(self.thru_pedal):
            self._send(mido.Message("control_change", channel=ch, control=64, value=0), None, now)
        for ch in sorted(self.thru_channels - {self.channel}):  # self.channel gets its CC123 below
            # all notes off where the performer played: a note-off a loaded MIDI system
            # dropped on the way still ends at the synth
            self._send(mido.Message("control_change", channel=ch, control=123, value=0), None, now)
        self.thru_sounding.clear()
        self.thru_pedal.clear()
        try:
            self._send(mido.Message("control_change", channel=self.channel, control=123, value=0), now, now)
        except Exception:
            pass

    def _off(self, pitch: int, due: float, now: float) -> None:
        self.sounding.pop(pitch, None)
        self._emit(mido.Message("note_off", channel=self.channel, note=pitch, velocity=0), due, now)
        self.sent_off += 1

    def _emit(self, msg, due: float, now: float) -> None:
        self.timing.add(now - due)
        self._send(msg, due, now)
