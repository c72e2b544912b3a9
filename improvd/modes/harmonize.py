"""Harmonize: chords under the melody as it is played, on each note and each model frame."""

from __future__ import annotations

import time

from improvd.encoding import TICKS_PER_BEAT
from improvd.modes.base import Mode, ModeName


class Harmonize(Mode):
    name = ModeName.HARMONIZE

    def __init__(self, stage):
        super().__init__(stage)
        self.dirty = False  # the melody changed since the harmony was chosen

    def melody_on(self, tick: int, now: float) -> None:
        self.dirty = True

    def melody_changed(self) -> None:
        self.dirty = True

    def input_now(self, now: float) -> None:
        """React now, not at the next tick: the harmony of a note starts with it."""
        if self.dirty:
            self._harmonize(max(self.stage.tick + 1, 0), now)

    def tick(self, nxt: int, now: float) -> None:
        if self.dirty or (self.stage.performer.held and nxt % self._frame_ticks() == 0):
            self._harmonize(nxt, now)

    def _frame_ticks(self) -> int:
        return int((self.stage.model.card.grid or {}).get("frame_ticks", TICKS_PER_BEAT))

    def _harmonize(self, tick: int, now: float) -> None:
        self.dirty = False
        stage = self.stage
        held = stage.performer.melody_held()
        if not held:
            stage.voice.stop_harmony(now)
            return
        t0 = time.perf_counter()
        stage.voice.harmonize(stage.model, tick, now, stage.chord_at, held)
        stage.voice.stats.step_costs.append(time.perf_counter() - t0)

    def recover(self) -> None:
        super().recover()
        self.dirty = False
