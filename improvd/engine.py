"""The conductor. The same engine runs live (wall clock, ports) and in replay (virtual clock,
files): callers feed it the performer's messages and the grid's ticks with their times. It
routes them to the parts that own their state (performer.py, controls.py, the mode, voice.py)
and keeps the two things that belong to no one part: which model plays, and the state a
controller LED shows. Nothing here knows which clock is real.
"""

from __future__ import annotations

import logging
import time

import mido

from improvd.chords import Progression
from improvd.clock import Clock
from improvd.config import Settings
from improvd.controls import Action, control_table, pick_of, read_control, temperature_of, tempo_of
from improvd.encoding import BAR_TICKS, TICKS_PER_BEAT
from improvd.models import check_mode
from improvd.models.base import StepModel
from improvd.modes import Mode, ModeName, State, make_mode
from improvd.performer import Heard, Performer
from improvd.scheduler import Scheduler
from improvd.voice import Voice

log = logging.getLogger("improvd")

LED = {State.IDLE: 0, State.LISTENING: 64, State.ANSWERING: 127}


class Engine:
    def __init__(self, models: dict[str, StepModel], first: str, settings: Settings, performer: Performer,
                 voice: Voice, clock: Clock, progression: Progression | None = None, click: Scheduler | None = None):
        """``models`` by name, every one listening all the time so a switch finds it warm;
        ``first`` plays. Built by session.build()."""
        self.models = models
        self.model = models[first]
        self.settings = settings
        self.performer = performer
        self.voice = voice
        self.clock = clock
        self.progression = progression
        self.click = click
        self.stats = voice.stats
        self.controls = control_table(settings.cc)
        self.pending_model: str | None = None
        self.state = State.IDLE
        self.tick = -1
        self.listeners = []  # callables(state) for LEDs and tests
        check_mode(self.model, settings.mode)
        self._modes: dict[ModeName, Mode] = {}
        self.mode = self._mode(settings.mode)
        self.mode.enter(0)

    # -- what the parts ask ----------------------------------------------------------------------
    @property
    def sched(self) -> Scheduler:
        return self.voice.sched

    def chord_at(self, tick: int):
        if self.progression is not None:
            return self.progression.at(tick)
        return self.performer.detected

    def set_state(self, state: State) -> None:
        if state == self.state:
            return
        self.state = state
        if self.settings.cc.state:
            self.sched.send_now(mido.Message("control_change", channel=self.sched.channel, control=self.settings.cc.state,
                                             value=LED[state]), self.clock.time_of(max(self.tick, 0)))
        for listener in self.listeners:
            listener(state)

    def _mode(self, name: str) -> Mode:
        """Each mode keeps its own memory (the last answer, say) across switches."""
        key = ModeName(name)
        if key not in self._modes:
            self._modes[key] = make_mode(key, self)
        return self._modes[key]

    # -- input ------------------------------------------------------------------------------------
    def on_message(self, msg: mido.Message, now: float) -> None:
        """One normalised message from the performer at ``now`` seconds."""
        channel_in = self.settings.channel_in
        if channel_in is not None and hasattr(msg, "channel") and msg.channel != channel_in - 1:
            return
        kind = msg.type
        if kind == "note_on" and msg.velocity > 0:
            self._note_on(msg.note, msg.velocity, now)
        elif kind in ("note_off", "note_on"):
            if self.performer.note_off(msg.note, now, self.tick):
                self.mode.melody_changed()
        elif kind == "control_change":
            self._control(msg.control, msg.value, now)
        elif kind == "program_change":
            self._pick_model(msg.program % len(self.models))
        else:
            self.stats.ignored += 1

    def _note_on(self, pitch: int, velocity: int, now: float) -> None:
        heard = self.performer.note_on(pitch, velocity, now, self.tick)
        if heard == Heard.TAP:
            bpm = self.performer.tap(now)
            if bpm is not None:
                self.set_tempo(bpm, "the tap key")
            return
        self.stats.notes_in += 1
        if heard == Heard.MELODY:
            tick = self.performer.onset_tick(now, self.tick)
            self.mode.activity_tick = tick
            self.mode.melody_on(tick, now)

    def _control(self, number: int, value: int, now: float) -> None:
        control = read_control(self.controls, number, value)
        if control is None:
            self.stats.ignored += 1
            return
        action = control.action
        if action == Action.SUSTAIN:
            if self.performer.pedal(value >= 64, now, self.tick):
                self.mode.melody_changed()
        elif action == Action.TEMPERATURE:
            self.voice.set_temperature(temperature_of(value, self.voice.base_temperature))
        elif action == Action.PANIC:
            self.mode.panic(now)
        elif action == Action.RESET:
            self.mode.reset(now)
            log.info("model state reset by CC%d", number)
        elif action == Action.MODE:
            choices = [m for m in ModeName if m in self.model.modes]
            self.set_mode(choices[pick_of(value, len(choices))], now)
        elif action == Action.MUTATE:
            self.mode.mutate(now)
        elif action == Action.LOOP:
            self.mode.loop(value >= 64, now)
        elif action == Action.TEMPO:
            self.set_tempo(tempo_of(value), f"CC{number}")
        elif action == Action.MODEL:
            self._pick_model(pick_of(value, len(self.models)))
        elif action == Action.ECHO:
            self.voice.set_echo(value / 127)

    def on_input_now(self, now: float) -> None:
        """Right after input: a mode that reacts at once (harmonize) does so here."""
        self.mode.input_now(now)

    # -- what the performer (or a reload) changes ----------------------------------------------------
    def set_tempo(self, bpm: float, why: str) -> None:
        """A tempo the performer sets (tap, CC) wins over following their playing."""
        self.performer.stop_following(why)
        self.clock.set_tempo(bpm, self.tick + 1)
        log.info("tempo %.1f BPM", self.clock.tempo)

    def set_mode(self, name: str, now: float) -> None:
        if name == self.mode.name:
            return
        self.voice.release_all(now)
        self.voice.harmony.clear()
        self.mode.leave(now)
        self.mode = self._mode(name)
        self.set_state(State.IDLE)
        self.mode.enter(self.tick + 1)
        log.info("mode %s", name)

    def _pick_model(self, index: int) -> None:
        name = list(self.models)[index]
        if name == self.model.card.name:
            return
        if self.mode.name not in self.models[name].modes:
            log.warning("model %s cannot play %s: staying with %s", name, self.mode.name, self.model.card.name)
            return
        self.pending_model = name  # takes effect at the next bar

    def _switch_model(self, nxt: int) -> None:
        new = self.models[self.pending_model]
        self.pending_model = None
        self.mode.switch_model(self.model, new, nxt)
        self.model = new
        self.voice.use_model(new.card)
        log.info("model %s (%s)", new.card.name, new.family)

    def reconfigure(self, settings: Settings, progression: Progression | None) -> None:
        """A reload: every part reads the new settings."""
        self.settings = settings
        self.performer.settings = settings
        self.controls = control_table(settings.cc)
        self.progression = progression
        for model in self.models.values():
            model.configure(settings)
        self.voice.configure(settings, self.model.card)

    # -- the grid --------------------------------------------------------------------------------
    def _let_go_of_stale_keys(self, tick: int) -> None:
        """A key (or the pedal) held ``max_hold`` with nothing else played: its release was
        most likely lost on the way in, and waiting for it would keep improvd silent for the
        rest of the song. Take it as released, once, and say so; a real long note with other
        playing around it is never touched."""
        performer = self.performer
        if not performer.stale(tick):
            return
        now = self.clock.time_of(tick)
        log.warning("performer %s held %s with nothing else played: taken as released (a lost note-off?)",
                    f"key(s) {sorted(performer.pressed)}" if performer.pressed else "sustain pedal", self.settings.max_hold)
        keys, pedal = performer.release_all_keys(now, self.tick)
        for pitch in keys:
            self.sched.release_thru_note(None, pitch, now)
        if pedal:
            self.sched.release_thru(now)
        if keys or pedal:
            self.mode.melody_changed()
        performer.last_input_tick = tick

    def on_tick(self, tick: int, now: float) -> None:
        """The performer's step for ``tick`` goes in; what the machine plays at tick+1 is planned."""
        t0 = time.perf_counter()
        self._let_go_of_stale_keys(tick)
        self.tick = tick
        heard = self.performer.follow(tick, may_move_bar=self.state != State.ANSWERING)
        if heard is not None and heard.locked:  # the note guard is in beats: the performer's
            self.sched.max_note = self.settings.max_note_beats * 60.0 / heard.bpm
        step = self.performer.step(tick, self.chord_at(tick))
        for model in self.models.values():
            model.listen(step)
        nxt = tick + 1
        if self.pending_model and nxt % BAR_TICKS == 0:
            self._switch_model(nxt)
        self._click(nxt)
        self.mode.tick(nxt, now)
        self.mode.after_tick(tick)
        self.stats.step_costs.append(time.perf_counter() - t0)

    def _click(self, nxt: int) -> None:
        settings = self.settings
        if self.click is None or nxt % TICKS_PER_BEAT or not (
                settings.metronome == "on" or (settings.metronome == "count-in" and nxt < settings.count_in_bars * BAR_TICKS)):
            return
        at = self.clock.time_of(nxt)
        accent = nxt % BAR_TICKS == 0
        self.click.note(76 if accent else 77, 110 if accent else 80, at, at + 0.05)

    def let_go(self, now: float) -> None:
        """The keyboard went away: the keys it held, and its pedal, are up."""
        keys, pedal = self.performer.release_all_keys(now, self.tick)
        if keys or pedal:
            self.mode.melody_changed()

    def recover(self) -> None:
        """After a failed step: fresh model state, back to listening (duet plays again)."""
        self.performer.forget_step()
        self.mode.recover()

    # -- sending ---------------------------------------------------------------------------------
    @property
    def schedulers(self) -> list:
        return [self.sched] + ([self.click] if self.click is not None else [])

    def flush(self, now: float) -> None:
        for scheduler in self.schedulers:
            scheduler.flush(now)

    def next_due(self):
        dues = [d for d in (scheduler.next_due() for scheduler in self.schedulers) if d is not None]
        return min(dues) if dues else None

    def close(self, now: float) -> None:
        """Every exit path ends here: nothing left sounding."""
        if self.click is not None:
            self.click.close(now)
        self.voice.silence(now)
