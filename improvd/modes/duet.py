"""Duet: a second voice alongside the performer, all the time."""

from __future__ import annotations

from improvd.modes.base import Mode, ModeName, State


class Duet(Mode):
    name = ModeName.DUET

    def enter(self, tick: int) -> None:
        self.stage.set_state(State.ANSWERING)
        self.stage.model.begin_answer(tick)

    def tick(self, nxt: int, now: float) -> None:
        stage = self.stage
        stage.voice.play(stage.model, nxt, stage.chord_at, stage.performer.melody_held())

    def reset(self, now: float) -> None:
        super().reset(now)
        self.stage.model.begin_answer(self.stage.tick + 1)

    def recover(self) -> None:
        super().recover()
        self.enter(self.stage.tick + 1)
