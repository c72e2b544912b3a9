"""The performer as improvd hears them: keys, the sustain pedal, the split, tap tempo.

It turns input into one ``Step`` per grid tick (what the models listen to) and keeps what the
modes ask about the performer (what is held, when they last went silent). It knows no model
and no scheduler, so it can be tested with nothing but messages and a clock.
"""

from __future__ import annotations

import logging
from collections import deque
from enum import Enum, auto

import numpy as np

from improvd.chords import Chord, detect_chord
from improvd.clock import Clock
from improvd.config import Settings
from improvd.models.base import Step

log = logging.getLogger("improvd")


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

    # -- what the modes ask ---------------------------------------------------------------------
    @property
    def held(self) -> frozenset:
        return frozenset(self.pressed | self.sustained)

    def melody_held(self) -> frozenset:
        split = self.settings.split
        if split is None:
            return self.held
        return frozenset(p for p in self.held if p >= split)

    def onset_tick(self, now: float, tick: int) -> int:
        """The grid tick a note heard at ``now`` belongs to, never one already planned."""
        return max(tick + 1, self.clock.tick_at(now))

    # -- input ----------------------------------------------------------------------------------
    def note_on(self, pitch: int, velocity: int, now: float, tick: int) -> Heard:
        if self.settings.tap_key is not None and pitch == self.settings.tap_key:
            return Heard.TAP
        self.last_input_tick = max(tick, self.clock.tick_at(now))
        below_split = self.settings.split is not None and pitch < self.settings.split
        self.pressed.add(pitch)
        self.sustained.discard(pitch)
        if below_split:
            self.detected = detect_chord([p for p in self.held if p < self.settings.split]) or self.detected
            return Heard.CHORD
        self.velocities.append(velocity)
        self.onsets.append((pitch, velocity))
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
