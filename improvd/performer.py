"""The performer as improvd hears them: keys, the sustain pedal, the split, tap tempo, and
their time (tempo, beat and bar lines, followed from their note-ons).

It turns input into one ``Step`` per grid tick (what the models listen to) and keeps what the
modes ask about the performer (what is held, when they last went silent). It knows no model
and no scheduler, so it can be tested with nothing but messages and a clock.

Following the performer's time: every note-on (melody and chord notes, not the tap key) goes
to a TempoTracker; once a beat the grid's clock is steered so that its next beat lands on the
performer's next beat, and while improvd is not answering, so that its bar lines land on
theirs. Inside the daemon time stays ticks: a "one bar" wait or an answer "on the next bar
line" then counts the performer's bars without knowing it.
"""

from __future__ import annotations

import logging
from collections import deque
from enum import Enum, auto

import numpy as np

from improvd.chords import Chord, detect_chord
from improvd.clock import Clock
from improvd.config import Settings
from improvd.encoding import BAR_TICKS, TICKS_PER_BEAT
from improvd.models.base import Step
from improvd.tempo import Estimate, TempoTracker, TrackerSettings

log = logging.getLogger("improvd")

BEATS_PER_BAR = BAR_TICKS // TICKS_PER_BEAT


def swing_of(pairs) -> float | None:
    """The swing (clock.swing: 0 straight, 1/3 a triplet feel) of a player's eighth pairs, each
    the place in its beat (0..1) of the second note of a beat played as two: the median of
    enough of them, so a stray note does not swing the grid."""
    if len(pairs) < 6:
        return None
    return min(0.5, max(0.0, 2.0 * float(np.median(pairs)) - 1.0))


def next_beat(e: Estimate, now: float) -> tuple[float, int]:
    """The performer's beat nearest one beat after ``now`` (seconds) and its place in their bar
    (0 = beat one): where the grid's next beat should land."""
    period = e.beat_period
    k = round((now + period - e.next_beat_time) / period)
    target = e.next_beat_time + k * period
    return target, round((target - e.next_downbeat_time) / period) % BEATS_PER_BAR


class Heard(Enum):
    """What a note-on turned out to be."""

    TAP = auto()  # the tap-tempo key
    CHORD = auto()  # below the split: part of the performer's live chord
    MELODY = auto()  # a note of the phrase


class Performer:
    def __init__(self, settings: Settings, clock: Clock):
        self.settings = settings
        self.clock = clock
        self.pressed: set[int] = set()  # keys physically down
        self.sustained: set[int] = set()  # released keys still held by the pedal
        self.sustain = False
        self.velocities: deque = deque(maxlen=16)  # of melody notes, for the velocity rule
        self.onsets: list = []  # (pitch, velocity) since the last step
        self.releases: list = []  # pitches since the last step
        self.last_release: float | None = None  # seconds, when the melody last went silent
        self.last_input_tick = 0  # the last key or pedal movement, for keys held implausibly long
        self.detected: Chord | None = None  # the live chord below the split
        self.taps: list = []
        self.time: TempoTracker | None = None  # the performer's time, while improvd follows it
        self.heard: Estimate | None = None  # the tracker's last view, for the panel and the logs
        self._shift_seen = 0  # a bar shift the tracker asks for, seen on consecutive beats
        self._logged_bpm = 0.0
        self._beat_onsets: list[float] = []  # melody onset times since the grid's last beat
        self._pairs: deque = deque(maxlen=16)  # where the second of two eighths fell in its beat
        self.follow_swing = settings.swing == 0.0  # an explicit swing is kept
        if settings.follows_performer:
            self.time = self._tracker(settings.tempo)  # no log: start-up says it

    # -- what the modes ask ---------------------------------------------------------------------
    @property
    def held(self) -> frozenset:
        return frozenset(self.pressed | self.sustained)

    def melody_held(self) -> frozenset:
        split = self.settings.split
        if split is None:
            return self.held
        return frozenset(p for p in self.held if p >= split)

    @property
    def following(self) -> bool:
        return self.time is not None

    def onset_tick(self, now: float, tick: int) -> int:
        """The grid tick a note heard at ``now`` belongs to, never one already planned."""
        return max(tick + 1, self.clock.tick_at(now))

    # -- input ----------------------------------------------------------------------------------
    def note_on(self, pitch: int, velocity: int, now: float, tick: int) -> Heard:
        if self.settings.tap_key is not None and pitch == self.settings.tap_key:
            return Heard.TAP
        if self.time is not None:
            self.time.onset(now, pitch, velocity)
        self.last_input_tick = max(tick, self.clock.tick_at(now))
        below_split = self.settings.split is not None and pitch < self.settings.split
        self.pressed.add(pitch)
        self.sustained.discard(pitch)
        if below_split:
            self.detected = detect_chord([p for p in self.held if p < self.settings.split]) or self.detected
            return Heard.CHORD
        self.velocities.append(velocity)
        self.onsets.append((pitch, velocity))
        if self.time is not None:
            self._beat_onsets.append(now)
        return Heard.MELODY

    def note_off(self, pitch: int, now: float, tick: int) -> bool:
        """True when the melody changed (a melody key went up)."""
        if self.settings.tap_key is not None and pitch == self.settings.tap_key:
            return False
        if pitch not in self.pressed:
            return False
        self.last_input_tick = max(tick, self.clock.tick_at(now))
        self.pressed.discard(pitch)
        if self.sustain:
            self.sustained.add(pitch)
        else:
            self.releases.append(pitch)
        if self.settings.split is not None and pitch < self.settings.split:
            return False
        if not self.melody_held():
            self.last_release = now
        return True

    def pedal(self, down: bool, now: float, tick: int) -> bool:
        """True when lifting it released notes."""
        self.last_input_tick = max(tick, self.clock.tick_at(now))
        self.sustain = down
        if self.sustain or not self.sustained:
            return False
        self.releases.extend(self.sustained)
        self.sustained.clear()
        if not self.melody_held():
            self.last_release = now
        return True

    def tap(self, now: float) -> float | None:
        """Three taps of the tap key give a tempo (the median of the last intervals)."""
        if self.taps and now - self.taps[-1] > 2.0:
            self.taps.clear()
        self.taps.append(now)
        self.taps = self.taps[-4:]
        if len(self.taps) >= 3:
            return 60.0 / float(np.median(np.diff(self.taps)))
        return None

    def _tracker(self, fallback_bpm: float) -> TempoTracker:
        return TempoTracker(fallback_bpm=fallback_bpm, meter=BEATS_PER_BAR, settings=TrackerSettings(net=self.settings.tempo_net))

    def start_following(self, fallback_bpm: float) -> None:
        self.time = self._tracker(fallback_bpm)
        self.heard = None
        log.info("following the performer's time (from %.1f BPM)", fallback_bpm)

    def stop_following(self, why: str) -> None:
        """A tempo given by the performer (tap, CC) or a clock wins over following."""
        if self.time is not None:
            log.info("tempo fixed by %s: no longer following the performer's time", why)
        self.time = None

    def follow(self, tick: int, may_move_bar: bool) -> Estimate | None:
        """At each beat of the grid (``tick`` a multiple of a beat), steer the clock so that the
        next beat lands on the performer's next beat; when ``may_move_bar`` (nothing is being
        answered), also so that improvd's bar line lands on their beat one. A bar shift plays
        the beats between at once (while listening nothing sounds there), and only once the
        tracker has asked for it on two beats running. Unsure, the clock keeps its tempo."""
        if self.time is None or tick % TICKS_PER_BEAT:
            return None
        clock = self.clock
        now = clock.time_of(tick)
        e = self.time.estimate(now)
        was, self.heard = self.heard, e
        if not e.locked:
            if was is not None and was.locked:
                log.info("lost the performer's beat: holding %.1f BPM", clock.tempo)
            return e
        self._hear_swing(tick, now)
        target, beat_in_bar = next_beat(e, now)
        shift = (beat_in_bar - (tick // TICKS_PER_BEAT + 1)) % BEATS_PER_BAR
        self._shift_seen = self._shift_seen + 1 if shift and may_move_bar else 0
        beats = 1 + (shift if self._shift_seen >= 2 else 0)
        if beats > 1:
            self._shift_seen = 0
            log.info("on the performer's bar: %d beat(s) of the grid skipped", shift)
        clock.stretch(tick, tick + beats * TICKS_PER_BEAT, target)
        clock.set_tempo(60.0 / e.beat_period, tick + beats * TICKS_PER_BEAT)
        if was is None or not was.locked or abs(e.bpm - self._logged_bpm) > 0.04 * self._logged_bpm:
            self._logged_bpm = e.bpm
            log.info("following the performer at %.1f BPM (confidence %.2f)", e.bpm, e.confidence)
        return e

    def _hear_swing(self, tick: int, now: float) -> None:
        """The beat just gone by, if the player split it in two: where the second note fell.
        Swing is followed from the pairs (unless a swing was set)."""
        start = self.clock.time_of(tick - TICKS_PER_BEAT)
        span = now - start
        onsets = [t for t in self._beat_onsets if start - 0.1 * span <= t < now - 0.1 * span]
        self._beat_onsets = [t for t in self._beat_onsets if t >= now - 0.1 * span]
        if len(onsets) == 2 and abs(onsets[0] - start) < 0.1 * span:
            place = (onsets[1] - start) / span
            if 0.4 <= place <= 0.8:
                self._pairs.append(place)
        swing = swing_of(self._pairs) if self.follow_swing else None
        if swing is not None and abs(swing - self.clock.swing) > 0.03:
            self.clock.swing = round(swing, 2)
            log.info("following the performer's swing: %.2f", self.clock.swing)

    def stale(self, tick: int) -> bool:
        """A key (or the pedal) held ``max_hold`` with nothing else played."""
        return bool(self.pressed or self.sustain) and tick - self.last_input_tick >= self.settings.max_hold_ticks

    def release_all_keys(self, now: float, tick: int) -> tuple[list, bool]:
        """Every key and the pedal up, as if the performer had let go: (keys, pedal was down)."""
        keys = sorted(self.pressed)
        for pitch in keys:
            self.note_off(pitch, now, tick)
        pedal = self.sustain
        if pedal:
            self.pedal(False, now, tick)
        return keys, pedal

    # -- the grid -------------------------------------------------------------------------------
    def step(self, tick: int, chord: Chord | None) -> Step:
        """What the performer did since the last step; the models listen to it."""
        step = Step(tick, tuple(self.onsets), tuple(self.releases), self.held, chord)
        self.onsets.clear()
        self.releases.clear()
        return step

    def forget_step(self) -> None:
        """After a failed model step: what was heard for it goes with it."""
        self.onsets.clear()
        self.releases.clear()
