"""Call and response: listen while the performer plays; after ``wait`` of silence answer for
``bars``; a new note from the performer stops the answer at once (barge-in). Also the
controls that only make sense here: mutate (a new answer to the same phrase) and the loop
pedal (the last answer again and again)."""

from __future__ import annotations

import logging
import math

from improvd.encoding import BAR_TICKS
from improvd.modes.base import Mode, ModeName, State
from improvd.voice import Played

log = logging.getLogger("improvd")


class CallResponse(Mode):
    name = ModeName.CALL_RESPONSE

    def __init__(self, stage):
        super().__init__(stage)
        self.phrase_start: int | None = None
        self.answer_start = self.answer_end = 0
        self.forced = False  # answering after max_listen: the performer plays on, no barge-in
        self.answer_snapshot = None  # (model state before the last answer, its length)
        self.last_answer: list[Played] = []
        self.last_answer_length = 0
        self.looping = False
        self.loop_start = 0

    # -- the performer ------------------------------------------------------------------------
    def melody_on(self, tick: int, now: float) -> None:
        stage = self.stage
        if self.looping:
            return
        if stage.state == State.ANSWERING and self.forced:
            return  # improvd answers over the performer after max_listen: no barge-in
        if stage.state == State.ANSWERING:  # barge-in: stop at once, release what sounds
            stage.voice.release_all(now)
            stage.model.end_answer(tick)
        if stage.state != State.LISTENING:
            self.phrase_start = tick
        if stage.performer.onsets:  # the note just heard: the motif memory keeps the call
            stage.voice.hear(tick, stage.performer.onsets[-1][0])
        stage.set_state(State.LISTENING)

    # -- the grid -------------------------------------------------------------------------------
    def tick(self, nxt: int, now: float) -> None:
        stage = self.stage
        settings = stage.settings
        if self.looping:
            position = (nxt - self.loop_start) % self.last_answer_length
            stage.voice.replay(self.last_answer, position, self.last_answer_length, nxt)
            return
        performer = stage.performer
        stage.voice.hear_held(nxt, performer.melody_held())
        if stage.state == State.LISTENING and not performer.melody_held() and performer.last_release is not None:
            if self._waited(nxt):
                phrase = max(1, stage.clock.tick_at(performer.last_release) - (self.phrase_start or 0))
                if phrase < settings.min_phrase_ticks:
                    stage.set_state(State.IDLE)  # a stray note or two: no answer
                else:
                    self._begin(nxt, self._bars(phrase) * BAR_TICKS, forced=False)
        elif stage.state == State.LISTENING and settings.max_listen_ticks and self.phrase_start is not None \
                and nxt - self.phrase_start >= settings.max_listen_ticks:
            self._begin(nxt, self._bars(nxt - self.phrase_start) * BAR_TICKS, forced=True)
        if stage.state == State.ANSWERING:
            if nxt >= self.answer_end:
                stage.model.end_answer(nxt)
                self.forced = False
                stage.set_state(State.IDLE)
                self.activity_tick = nxt
                log.info("answered: model %s, %d bar(s), %d notes", stage.model.card.name,
                         (self.answer_end - self.answer_start) // BAR_TICKS, len(self.last_answer))
                return
            self.last_answer += stage.voice.play(stage.model, nxt, stage.chord_at, performer.melody_held(),
                                                 starting=nxt == self.answer_start, end=self.answer_end,
                                                 start_tick=self.answer_start)

    def _waited(self, nxt: int) -> bool:
        """The performer has been silent ``wait`` by ``nxt``. Following their time, the wait is
        counted in their beats (the grid's ticks follow them) and the answer starts on their
        next bar line after it, as a sideman comes in on the one."""
        stage = self.stage
        performer, wait = stage.performer, stage.settings.wait_ticks
        if performer.following:
            return nxt - stage.clock.tick_at(performer.last_release) >= wait and nxt % BAR_TICKS == 0
        return stage.clock.time_of(nxt) >= performer.last_release + wait * stage.clock.tick_seconds - 1e-9

    def _bars(self, phrase_ticks: int) -> int:
        settings = self.stage.settings
        return settings.bars or min(settings.max_bars, max(1, math.ceil(phrase_ticks / BAR_TICKS)))

    def _begin(self, nxt: int, length: int, forced: bool, snapshot: bool = True) -> None:
        stage = self.stage
        self.answer_start, self.answer_end = nxt, nxt + length
        stage.voice.guard.reset()
        stage.model.begin_answer(nxt)
        if snapshot:
            self.answer_snapshot = (stage.model.snapshot(), length)
        self.forced = forced
        self.last_answer, self.last_answer_length = [], length
        stage.set_state(State.ANSWERING)

    # -- controls -------------------------------------------------------------------------------
    def reset(self, now: float) -> None:
        super().reset(now)
        self.stage.set_state(State.IDLE)

    def panic(self, now: float) -> None:
        self.looping = False
        super().panic(now)
        stage = self.stage
        if stage.state == State.ANSWERING:
            stage.model.end_answer(stage.tick + 1)
            stage.set_state(State.IDLE)

    def mutate(self, now: float) -> None:
        """Back to the state the last answer started from, and answer again."""
        if self.answer_snapshot is None:
            return
        stage = self.stage
        snap, length = self.answer_snapshot
        stage.voice.release_all(now)
        if stage.state == State.ANSWERING:
            stage.model.end_answer(stage.tick + 1)
        self.looping = False
        stage.model.restore(snap)
        # tick+1 is being planned already: the next tick that can still start a note is tick+2
        self._begin(stage.tick + 2, length, forced=False, snapshot=False)

    def loop(self, on: bool, now: float) -> None:
        """Held: the last answer again and again (a looper pedal); released: silence."""
        if on == self.looping or (on and not self.last_answer):
            return
        stage = self.stage
        stage.voice.release_all(now)
        if on:
            if stage.state == State.ANSWERING:
                stage.model.end_answer(stage.tick + 1)
            self.looping, self.loop_start = True, stage.tick + 2
            stage.set_state(State.ANSWERING)
        else:
            self.looping = False
            stage.set_state(State.IDLE)
