"""The protocol every mode keeps, and what a mode may use of the engine (``Stage``)."""

from __future__ import annotations

from enum import StrEnum
from typing import Protocol

from improvd.clock import Clock
from improvd.config import Settings
from improvd.encoding import BAR_TICKS
from improvd.models.base import StepModel
from improvd.performer import Performer
from improvd.voice import Voice


class ModeName(StrEnum):
    CALL_RESPONSE = "call-response"
    DUET = "duet"
    HARMONIZE = "harmonize"


class State(StrEnum):
    IDLE = "idle"
    LISTENING = "listening"
    ANSWERING = "answering"


class Stage(Protocol):
    """What the engine lends a mode: the parts, the current model, and the state it shows."""

    settings: Settings
    performer: Performer
    voice: Voice
    clock: Clock
    model: StepModel
    tick: int
    state: State

    def chord_at(self, tick: int): ...

    def set_state(self, state: State) -> None: ...


class Mode:
    """Default behaviour; a mode overrides what it does differently."""

    name: ModeName

    def __init__(self, stage: Stage):
        self.stage = stage
        self.activity_tick = 0  # the last melody onset or answer end; a long silence after it resets

    # -- lifecycle ------------------------------------------------------------------------------
    def enter(self, tick: int) -> None:
        """Becoming the mode (at start or by a switch)."""

    def leave(self, now: float) -> None:
        """Another mode takes over: what sounds has been released already."""
        stage = self.stage
        if stage.state == State.ANSWERING:
            stage.model.end_answer(stage.tick + 1)

    # -- the performer ------------------------------------------------------------------------
    def melody_on(self, tick: int, now: float) -> None:
        """A melody note-on at grid ``tick`` (``now`` seconds)."""

    def melody_changed(self) -> None:
        """A melody key went up, or the pedal let notes go."""

    def input_now(self, now: float) -> None:
        """Right after input, before the next tick."""

    # -- the grid -------------------------------------------------------------------------------
    def tick(self, nxt: int, now: float) -> None:
        """Plan what the machine plays at ``nxt``."""

    def after_tick(self, tick: int) -> None:
        """A long silence starts a new piece: fresh model state."""
        stage = self.stage
        if stage.state == State.IDLE and tick - self.activity_tick > stage.settings.reset_after_bars * BAR_TICKS \
                and tick % BAR_TICKS == 0 and self.activity_tick:
            stage.model.reset()
            self.activity_tick = 0

    # -- controls -------------------------------------------------------------------------------
    def reset(self, now: float) -> None:
        """CC reset: fresh model state."""
        self.stage.voice.release_all(now)
        self.stage.model.reset()

    def panic(self, now: float) -> None:
        self.stage.voice.silence(now)

    def mutate(self, now: float) -> None:
        """A new answer to the same phrase (call and response only)."""

    def loop(self, on: bool, now: float) -> None:
        """The looper pedal (call and response only)."""

    def switch_model(self, old: StepModel, new: StepModel, nxt: int) -> None:
        """The next bar belongs to ``new``: what sounds keeps sounding to its end."""
        if self.stage.state == State.ANSWERING:
            old.end_answer(nxt)
            new.begin_answer(nxt)

    def recover(self) -> None:
        """After a failed model step: fresh model state, back to listening from scratch."""
        self.stage.model.reset()
        self.stage.state = State.IDLE
