"""When each input message reached improvd, on ``time.perf_counter``'s clock, from the MIDI
backend's own time stamps.

Why not the time it was polled: the engine thread polls between model steps and short sleeps,
so a message stamped when polled is late by whatever the thread was doing, and on a busy
machine by a time slice too. Over JACK with two busy loops beside it, the daemon laid whole
answers 8-16 ms behind the keyboard's grid (tests/test_follow_jack.py, 3 runs in 12): the
tracker had been fed stamps that late. The backend stamps each message as it arrives (JACK:
its process cycle; ALSA: the sequencer queue), but python-rtmidi hands over only the delta from
the message before. Summed, the deltas give arrival times up to one unknown offset, and a poll
is never earlier than the arrival it reads, so the least of (poll time - summed deltas) is that
offset, found again every time a message is polled promptly.
"""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass
class ArrivalClock:
    confirm: float = 0.002  # a poll this close to the offset found still confirms it
    window: float = 10.0  # seconds without a confirming poll before the offset is found again (only a
    # flood that overran the backend's queue takes time from the sums: both clocks are CLOCK_MONOTONIC)
    _sum: float = 0.0
    _offset: float | None = None
    _confirmed: float = -math.inf
    _fresh: float = math.inf

    def reset(self) -> None:
        """A new backend object (a port reopened): its deltas start again from zero."""
        self._sum, self._offset, self._confirmed, self._fresh = 0.0, None, -math.inf, math.inf

    def stamp(self, delta: float, polled: float) -> float:
        """The arrival time of a message ``delta`` seconds after the one before, polled at
        ``polled``; never later than ``polled``."""
        self._sum += max(0.0, delta)
        offset = polled - self._sum
        if self._offset is None or offset <= self._offset + self.confirm:
            if self._offset is None or offset < self._offset:
                self._offset = offset
            self._confirmed, self._fresh = polled, math.inf
        else:
            self._fresh = min(self._fresh, offset)
            if polled - self._confirmed > self.window:
                # the sums and our clock have parted: messages the backend dropped from its full
                # queue still moved its last time on, so their time is missing from the sum.
                # The polls of the last window say where the offset is now.
                self._offset, self._confirmed, self._fresh = self._fresh, polled, math.inf
        return min(polled, self._sum + self._offset)
