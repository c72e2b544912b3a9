"""Ticks <-> seconds: tempo, swing, and following or sending MIDI clock (24 ppqn).

Inside the daemon time is an integer tick on a 12-per-beat grid; seconds exist only here,
where a tick meets a port or a file.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

from improvd.encoding import TICKS_PER_BEAT

PPQN = 24
HALF = TICKS_PER_BEAT // 2


def swing_offset(pos_in_beat: float, swing: float) -> float:
    """Where (in beats) a position of the straight grid falls under swing.

    The first half of each beat stretches to (1+swing)/2 of it and the second half shrinks
    to match: swing 1/3 is triplet swing (2:1), 0 is straight.
    """
    half = TICKS_PER_BEAT / 2
    if pos_in_beat <= half:
        return pos_in_beat / half * 0.5 * (1 + swing)
    return 0.5 * (1 + swing) + (pos_in_beat - half) / half * 0.5 * (1 - swing)


@dataclass
class Clock:
    tempo: float = 120.0
    swing: float = 0.0
    origin: float = 0.0  # seconds of tick ``origin_tick``
    origin_tick: int = 0
    history: list = field(default_factory=list)  # earlier (origin, origin_tick, tempo) segments

    @property
    def beat_seconds(self) -> float:
        return 60.0 / self.tempo

    @property
    def tick_seconds(self) -> float:
        return self.beat_seconds / TICKS_PER_BEAT

    def time_of(self, tick: float) -> float:
        if self.history and tick < self.origin_tick:
            return self._segment(tick=tick).time_of(tick)
        rel = tick - self.origin_tick
        beats, pos = divmod(rel, TICKS_PER_BEAT)
        if self.swing:
            frac = swing_offset(pos, self.swing)
        else:
            frac = pos / TICKS_PER_BEAT
        return self.origin + (beats + frac) * self.beat_seconds

    def straight_time(self, tick: float) -> float:
        """Seconds of a tick ignoring swing: MIDI clock out stays straight."""
        return self.origin + (tick - self.origin_tick) * self.tick_seconds

    def tick_at(self, t: float) -> int:
        """The nearest straight-grid tick to ``t`` (what a performer's note is heard as)."""
        if self.history and t < self.origin:
            return self._segment(t=t).tick_at(t)
        return self.origin_tick + int(round((t - self.origin) / self.tick_seconds))

    def set_tempo(self, bpm: float, at_tick: int) -> None:
        """Change tempo from ``at_tick`` on, keeping earlier ticks where they were: the old
        segment is kept, so a note heard before the change still maps to its own tick."""
        self._new_segment(at_tick, max(20.0, min(400.0, bpm)))

    def stretch(self, at_tick: int, to_tick: int, at_time: float) -> None:
        """From ``at_tick`` (which stays where it is) run the grid so that ``to_tick`` falls at
        ``at_time``: how a followed grid lands its next beat on the performer's. The segment's
        tempo may leave 20-400 BPM for a moment (a skipped bar's beats go by at once)."""
        span = max(at_time - self.time_of(at_tick), 1e-3)
        self._new_segment(at_tick, (to_tick - at_tick) / TICKS_PER_BEAT * 60.0 / span)

    def _new_segment(self, at_tick: int, bpm: float) -> None:
        t = self.time_of(at_tick)
        self.history.append((self.origin, self.origin_tick, self.tempo))
        del self.history[:-256]  # MIDI clock in and a followed grid re-tempo often; a phrase spans fewer
        self.origin, self.origin_tick, self.tempo = t, at_tick, bpm

    def _segment(self, tick: float | None = None, t: float | None = None) -> "Clock":
        """The clock in force at a tick or a time before the last tempo change."""
        if not self.history or (tick is not None and tick >= self.origin_tick) or (t is not None and t >= self.origin):
            return self
        for origin, origin_tick, tempo in reversed(self.history):
            if (tick is not None and tick >= origin_tick) or (t is not None and t >= origin):
                return Clock(tempo, self.swing, origin, origin_tick)
        origin, origin_tick, tempo = self.history[0]
        return Clock(tempo, self.swing, origin, origin_tick)


@dataclass
class ClockFollower:
    """Tempo and position from incoming MIDI clock: 24 pulses a beat, start/stop/continue, SPP.

    Tempo is the median of the last 24 pulse intervals: robust to one late USB packet.
    """

    window: int = 24
    running: bool = False
    pulses: int = 0
    _last: float | None = None
    _intervals: deque = field(default_factory=lambda: deque(maxlen=24))

    def message(self, kind: str, t: float, value: int | None = None) -> float | None:
        """Feed one real-time message; returns a new tempo (BPM) when there is one."""
        if kind == "start":
            self.running, self.pulses, self._last = True, 0, None
            self._intervals.clear()
        elif kind == "continue":
            self.running, self._last = True, None
        elif kind == "stop":
            self.running = False
        elif kind == "songpos" and value is not None:
            self.pulses = value * 6  # SPP counts 16ths: 6 pulses each
        elif kind == "clock":
            if self._last is not None:
                dt = t - self._last
                if 0.001 < dt < 0.25:
                    self._intervals.append(dt)
            self._last = t
            if self.running:
                self.pulses += 1
            if len(self._intervals) >= 6:
                s = sorted(self._intervals)
                return 60.0 / (s[len(s) // 2] * PPQN)
        return None

    @property
    def tick(self) -> int:
        return self.pulses * TICKS_PER_BEAT // PPQN
