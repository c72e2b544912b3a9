"""A monophonic line of (pitch or rest, duration, onset, chord) events from grid steps.

The performer plays freely; event models (jazz, deepjazz, folk) see the line as events whose
duration runs from one onset to the next, as in the Weimar Jazz Database. An event is only
complete when the next one starts, so the tracker hands events over one step late: that is
the teacher forcing the daemon does while the performer plays.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from improvd.chords import Chord
from improvd.encoding import fold_to_range

REST = -1


@dataclass(frozen=True)
class Event:
    pitch: int  # MIDI pitch, or REST (-1)
    duration: int  # ticks from this onset to the next
    onset: int  # absolute tick of the onset
    chord: Chord | None


@dataclass
class EventTracker:
    """Turns per-step onsets and releases into completed events (highest new pitch wins)."""

    max_duration: int = 96
    _pitch: int | None = None
    _onset: int = 0
    _released_at: int | None = None
    _chord: Chord | None = None
    _rest_chord: Chord | None = None

    def reset(self) -> None:
        self._pitch, self._onset, self._released_at = None, 0, None

    def step(self, tick: int, onsets, releases, chord: Chord | None) -> list[Event]:
        """Feed one grid step; returns the events it completed, oldest first."""
        done: list[Event] = []
        if self._pitch is not None and self._pitch in releases and self._released_at is None:
            self._released_at = tick
            self._rest_chord = chord
        if onsets:
            pitch = max(p for p, _v in onsets)
            if self._pitch is not None:
                done.extend(self._close(tick))
            self._pitch, self._onset, self._released_at, self._chord = pitch, tick, None, chord
        return done

    def start_rest(self, tick: int, chord: Chord | None) -> None:
        """Silence from ``tick`` on is part of the line (after an answer ends)."""
        self._pitch, self._onset, self._released_at, self._chord = REST, tick, None, chord

    def flush_rest(self, tick: int) -> list[Event]:
        """Close the current note and the silence after it up to ``tick`` (an answer starts)."""
        if self._pitch is None:
            return []
        done = self._close(tick)
        self._pitch = None
        return done

    def _close(self, tick: int) -> list[Event]:
        out = []
        end = self._released_at if self._released_at is not None else tick
        dur = max(1, end - self._onset)
        out.append(Event(self._pitch, min(dur, self.max_duration), self._onset, self._chord))
        gap = tick - end
        if gap > 0 and self._released_at is not None and self._pitch != REST:
            out.append(Event(REST, min(gap, self.max_duration), end, self._rest_chord or self._chord))
        return out


def transpose(events: list[Event], semitones: int, lo: int, hi: int) -> list[Event]:
    """Shift pitches and chords; pitches outside [lo, hi] fold back by octaves."""
    out = []
    for e in events:
        p = e.pitch
        if p != REST:
            p = fold_to_range(p + semitones, lo, hi)
        out.append(replace(e, pitch=p, chord=e.chord.transpose(semitones) if e.chord else None))
    return out


def melody_events(perf, chord_at=None) -> list[Event]:
    """The top line of a performance as grid events (skyline: the highest sounding note wins).

    Used to train on a user's MIDI files and on the Metheny solo: a solo instrument's track
    is monophonic already; for piano the skyline is the usual melody heuristic. ``perf`` is a
    midi.files.Performance.
    """
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
