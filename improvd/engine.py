"""The step loop and the modes. The same engine runs live (wall clock, ports) and in replay
(virtual clock, files): callers feed it messages and ticks with their times; it plans notes on
the scheduler. Nothing here knows which clock is real.

Call and response: listen while the performer plays; after ``wait`` of silence answer for
``bars``; a new note from the performer stops the answer at once (barge-in). Duet: play all the
time. Harmonize: on each performer note-on and each frame while notes are held, sound the
model's harmony around the held pitches.
"""

from __future__ import annotations

import logging
import math
import time
from collections import deque
from dataclasses import dataclass, field

import mido
import numpy as np

from improvd.chords import Progression, detect_chord
from improvd.clock import Clock
from improvd.config import MODES, Settings
from improvd.encoding import BAR_TICKS, TICKS_PER_BEAT
from improvd.models.base import PlayContext, Step, StepModel
from improvd.rules import Candidate, RuleContext, apply_rules
from improvd.scheduler import Scheduler

log = logging.getLogger("improvd")

IDLE, LISTENING, ANSWERING = "idle", "listening", "answering"


@dataclass
class Stats:
    notes_in: int = 0
    notes_out: int = 0
    ignored: int = 0
    step_costs: deque = field(default_factory=lambda: deque(maxlen=20000))

    def step_percentiles(self) -> tuple[float, float]:
        if not self.step_costs:
            return (math.nan, math.nan)
        a = np.fromiter(self.step_costs, float) * 1e3
        return float(np.percentile(a, 50)), float(np.percentile(a, 99))


class Engine:
    def __init__(self, model: StepModel, settings: Settings, scheduler: Scheduler, clock: Clock,
                 progression: Progression | None = None, rng: np.random.Generator | None = None,
                 more_models: dict | None = None, click: Scheduler | None = None):
        self.model = model
        # every loaded model listens all the time, so a switch finds its state warm
        self.models = {model.card.name: model, **(more_models or {})}
        for m in self.models.values():
            m.configure(settings)
        self.click = click
        self.pending_model: str | None = None
        self.looping = False
        self.loop_start = 0
        self.last_answer: list = []  # (tick from answer start, pitch, velocity, duration ticks)
        self.last_answer_len = 0
        self.answer_snapshot = None
        self.forced = False  # answering after max_listen: the performer plays on, no barge-in
        self.taps: list = []
        self.s = settings
        self.sched = scheduler
        self.clock = clock
        self.progression = progression
        self.rng = rng if rng is not None else np.random.default_rng(settings.seed)
        self.stats = Stats()
        sampling = model.card.sampling or {}
        self.temperature = settings.temperature if settings.temperature is not None else float(sampling.get("temperature", 1.0))
        self.top_p = settings.top_p if settings.top_p is not None else float(sampling.get("top_p", 1.0))
        self.mode = settings.mode
        if self.mode not in model.modes:
            from improvd import ImprovdError
            raise ImprovdError(f"model {model.card.name} ({model.family}) cannot play --mode {self.mode}: use one of {', '.join(model.modes)}")
        self.state = IDLE
        self.tick = -1
        # performer
        self.pressed: set[int] = set()  # keys physically down
        self.sustained: set[int] = set()  # released keys still held by the pedal
        self.sustain = False
        self.velocities: deque = deque(maxlen=16)
        self._onsets: list = []
        self._releases: list = []
        self.phrase_start: int | None = None
        self.last_release: float | None = None  # seconds, when the performer last went silent
        self.last_activity_tick = 0
        self.detected = None
        # machine
        self.answer_start = self.answer_end = 0
        self.recent: deque = deque(maxlen=8)
        self.harmony: set[int] = set()
        self._dirty_harmony = False
        self.listeners = []  # callables(state) for LEDs and tests
        if self.mode == "duet":
            self._set_state(ANSWERING)
            self.model.begin_answer(0)

    # -- helpers -------------------------------------------------------------------------------
    @property
    def held(self) -> frozenset:
        return frozenset(self.pressed | self.sustained)

    def chord_at(self, tick: int):
        if self.progression is not None:
            return self.progression.at(tick)
        return self.detected

    def _set_state(self, state: str) -> None:
        if state != self.state:
            self.state = state
            if self.s.cc.state:
                value = {IDLE: 0, LISTENING: 64, ANSWERING: 127}[state]
                self.sched.send_now(mido.Message("control_change", channel=self.sched.channel, control=self.s.cc.state, value=value),
                                    self.clock.time_of(max(self.tick, 0)))
            for f in self.listeners:
                f(state)

    def _melody_held(self) -> frozenset:
        if self.s.split is None:
            return self.held
        return frozenset(p for p in self.held if p >= self.s.split)

    # -- input -----------------------------------------------------------------------------------
    def on_message(self, msg: mido.Message, now: float) -> None:
        """One normalised message from the performer at ``now`` seconds."""
        if self.s.channel_in is not None and hasattr(msg, "channel") and msg.channel != self.s.channel_in - 1:
            return
        t = msg.type
        if t == "note_on" and msg.velocity > 0:
            self._note_on(msg.note, msg.velocity, now)
        elif t in ("note_off", "note_on"):
            self._note_off(msg.note, now)
        elif t == "control_change":
            self._control(msg.control, msg.value, now)
        elif t == "program_change":
            self._pick_model(msg.program % len(self.models))
        else:
            self.stats.ignored += 1

    def _note_on(self, pitch: int, velocity: int, now: float) -> None:
        if self.s.tap_key is not None and pitch == self.s.tap_key:
            self._tap(now)
            return
        self.stats.notes_in += 1
        split = self.s.split is not None and pitch < self.s.split
        self.pressed.add(pitch)
        self.sustained.discard(pitch)
        if split:
            self.detected = detect_chord([p for p in self.held if p < self.s.split]) or self.detected
            return
        self.velocities.append(velocity)
        tick = max(self.tick + 1, self.clock.tick_at(now))
        self._onsets.append((pitch, velocity))
        self.last_activity_tick = tick
        if self.mode == "call-response" and not self.looping:
            if self.state == ANSWERING and self.forced:
                return  # improvd answers over the performer after max_listen: no barge-in
            if self.state == ANSWERING:  # barge-in: stop at once, release what sounds
                self.sched.release_all(now)
                self.model.end_answer(tick)
            if self.state != LISTENING:
                self.phrase_start = tick
            self._set_state(LISTENING)
        elif self.mode == "harmonize":
            self._dirty_harmony = True

    def _note_off(self, pitch: int, now: float) -> None:
        if self.s.tap_key is not None and pitch == self.s.tap_key:
            return
        if pitch not in self.pressed:
            return
        self.pressed.discard(pitch)
        if self.sustain:
            self.sustained.add(pitch)
        else:
            self._releases.append(pitch)
        if self.s.split is not None and pitch < self.s.split:
            return
        if not self._melody_held():
            self.last_release = now
        if self.mode == "harmonize":
            self._dirty_harmony = True

    def _control(self, cc: int, value: int, now: float) -> None:
        c = self.s.cc
        if cc == c.sustain:
            self.sustain = value >= 64
            if not self.sustain and self.sustained:
                self._releases.extend(self.sustained)
                self.sustained.clear()
                if not self._melody_held():
                    self.last_release = now
                if self.mode == "harmonize":
                    self._dirty_harmony = True
        elif cc == c.temperature:
            self.temperature = 0.1 + 1.9 * value / 127  # the mod wheel: 0.1 (safe) .. 2.0 (wild)
        elif cc == c.panic and value > 0:
            self.panic(now)
        elif cc == c.reset and value > 0:
            self.sched.release_all(now)
            self.model.reset()
            self._set_state(IDLE if self.mode == "call-response" else self.state)
            if self.mode == "duet":
                self.model.begin_answer(self.tick + 1)
            log.info("model state reset by CC%d", cc)
        elif cc == c.mode and value > 0:
            choices = [m for m in MODES if m in self.model.modes]
            self.set_mode(choices[value * len(choices) // 128], now)
        elif cc == c.mutate and value > 0:
            self.mutate(now)
        elif cc == c.loop:
            self.set_loop(value >= 64, now)
        elif cc == c.tempo:
            self.set_tempo(40 + 2 * value)
        elif cc == c.model:
            self._pick_model(value * len(self.models) // 128)
        else:
            self.stats.ignored += 1

    # -- performer controls ------------------------------------------------------------------------
    def set_tempo(self, bpm: float) -> None:
        self.clock.set_tempo(bpm, self.tick + 1)
        log.info("tempo %.1f BPM", self.clock.tempo)

    def _tap(self, now: float) -> None:
        """Three taps of the tap key set the tempo (the median of the last intervals)."""
        if self.taps and now - self.taps[-1] > 2.0:
            self.taps.clear()
        self.taps.append(now)
        self.taps = self.taps[-4:]
        if len(self.taps) >= 3:
            self.set_tempo(60.0 / float(np.median(np.diff(self.taps))))

    def _pick_model(self, index: int) -> None:
        name = list(self.models)[index]
        if name == self.model.card.name:
            return
        if self.mode not in self.models[name].modes:
            log.warning("model %s cannot play %s: staying with %s", name, self.mode, self.model.card.name)
            return
        self.pending_model = name  # takes effect at the next bar

    def _switch_model(self, nxt: int) -> None:
        new = self.models[self.pending_model]
        self.pending_model = None
        if self.state == ANSWERING:
            # what sounds keeps sounding to its end; the new model takes the next notes
            self.model.end_answer(nxt)
            new.begin_answer(nxt)
        self.model = new
        sampling = new.card.sampling or {}
        if self.s.temperature is None:
            self.temperature = float(sampling.get("temperature", 1.0))
        if self.s.top_p is None:
            self.top_p = float(sampling.get("top_p", 1.0))
        log.info("model %s (%s)", new.card.name, new.family)

    def mutate(self, now: float) -> None:
        """A new answer to the same phrase: back to the state the last answer started from."""
        if self.answer_snapshot is None or self.mode != "call-response":
            return
        snap, length = self.answer_snapshot
        self.sched.release_all(now)
        if self.state == ANSWERING:
            self.model.end_answer(self.tick + 1)
        self.looping = False
        self.model.restore(snap)
        # tick+1 is being planned already: the next tick that can still start a note is tick+2
        self._begin(self.tick + 2, length, forced=False, snapshot=False)

    def set_loop(self, on: bool, now: float) -> None:
        """Held: the last answer again and again (a looper pedal); released: silence."""
        if on == self.looping or (on and not self.last_answer):
            return
        self.sched.release_all(now)
        if on:
            if self.state == ANSWERING:
                self.model.end_answer(self.tick + 1)
            self.looping, self.loop_start = True, self.tick + 2
            self._set_state(ANSWERING)
        else:
            self.looping = False
            self._set_state(IDLE)

    def panic(self, now: float) -> None:
        self.looping = False
        self.sched.close(now)
        self.harmony.clear()
        if self.state == ANSWERING and self.mode == "call-response":
            self.model.end_answer(self.tick + 1)
            self._set_state(IDLE)

    def set_mode(self, mode: str, now: float) -> None:
        if mode == self.mode:
            return
        self.sched.release_all(now)
        self.harmony.clear()
        if self.state == ANSWERING:
            self.model.end_answer(self.tick + 1)
        self.mode = mode
        self._set_state(IDLE)
        if mode == "duet":
            self._set_state(ANSWERING)
            self.model.begin_answer(self.tick + 1)
        log.info("mode %s", mode)

    # -- the grid --------------------------------------------------------------------------------
    def on_tick(self, tick: int, now: float) -> None:
        """The performer's step for ``tick`` goes in; what the machine plays at tick+1 is planned."""
        t0 = time.perf_counter()
        self.tick = tick
        step = Step(tick, tuple(self._onsets), tuple(self._releases), self.held, self.chord_at(tick))
        self._onsets.clear()
        self._releases.clear()
        for m in self.models.values():
            m.listen(step)
        nxt = tick + 1
        if self.pending_model and nxt % BAR_TICKS == 0:
            self._switch_model(nxt)
        if self.click is not None and nxt % TICKS_PER_BEAT == 0 and (
                self.s.metronome == "on" or (self.s.metronome == "count-in" and nxt < self.s.count_in_bars * BAR_TICKS)):
            at = self.clock.time_of(nxt)
            accent = nxt % BAR_TICKS == 0
            self.click.note(76 if accent else 77, 110 if accent else 80, at, at + 0.05)
        if self.mode == "call-response":
            self._call_response(nxt, now)
        elif self.mode == "duet":
            self._play(nxt)
        elif self.mode == "harmonize":
            if self._dirty_harmony or (self.held and nxt % self._frame_ticks() == 0):
                self._harmonize(nxt, now)
        if self.state == IDLE and tick - self.last_activity_tick > self.s.reset_after_bars * BAR_TICKS and tick % BAR_TICKS == 0 and self.last_activity_tick:
            self.model.reset()  # a long silence: the next phrase starts a new piece
            self.last_activity_tick = 0
        self.stats.step_costs.append(time.perf_counter() - t0)

    def on_input_now(self, now: float) -> None:
        """Called right after input in harmonize mode: react now, not at the next tick."""
        if self.mode == "harmonize" and self._dirty_harmony:
            self._harmonize(max(self.tick + 1, 0), now)

    def _frame_ticks(self) -> int:
        return int((self.model.card.grid or {}).get("frame_ticks", TICKS_PER_BEAT))

    def _call_response(self, nxt: int, now: float) -> None:
        if self.looping:
            self._loop_step(nxt)
            return
        if self.state == LISTENING and not self._melody_held() and self.last_release is not None:
            if self.clock.time_of(nxt) >= self.last_release + self.s.wait_ticks * self.clock.tick_seconds - 1e-9:
                phrase = max(1, self.clock.tick_at(self.last_release) - (self.phrase_start or 0))
                if phrase < self.s.min_phrase_ticks:
                    self._set_state(IDLE)  # a stray note or two: no answer
                else:
                    bars = self.s.bars or min(self.s.max_bars, max(1, math.ceil(phrase / BAR_TICKS)))
                    self._begin(nxt, bars * BAR_TICKS, forced=False)
        elif self.state == LISTENING and self.s.max_listen_ticks and self.phrase_start is not None \
                and nxt - self.phrase_start >= self.s.max_listen_ticks:
            bars = self.s.bars or min(self.s.max_bars, max(1, math.ceil((nxt - self.phrase_start) / BAR_TICKS)))
            self._begin(nxt, bars * BAR_TICKS, forced=True)
        if self.state == ANSWERING:
            if nxt >= self.answer_end:
                self.model.end_answer(nxt)
                self.forced = False
                self._set_state(IDLE)
                self.last_activity_tick = nxt
                return
            self._play(nxt, starting=nxt == self.answer_start, end=self.answer_end, record=True)

    def _begin(self, nxt: int, length: int, forced: bool, snapshot: bool = True) -> None:
        self.answer_start, self.answer_end = nxt, nxt + length
        self.model.begin_answer(nxt)
        if snapshot:
            self.answer_snapshot = (self.model.snapshot(), length)
        self.forced = forced
        self.last_answer, self.last_answer_len = [], length
        self._set_state(ANSWERING)

    def _loop_step(self, nxt: int) -> None:
        pos = (nxt - self.loop_start) % self.last_answer_len
        start = self.clock.time_of(nxt)
        for rel, pitch, vel, dur in self.last_answer:
            if rel == pos:
                end = min(nxt + dur, nxt + self.last_answer_len - pos)
                self.sched.note(pitch, vel, start, max(start + 0.005, self.clock.time_of(end) - 0.002))
                self.stats.notes_out += 1

    def _context(self, tick: int, starting: bool = False, onset: bool = False) -> PlayContext:
        r = self.s.rules
        held = self._melody_held()
        lo, hi = r.range_low, r.range_high
        if self.mode == "harmonize" and held:
            # chords under the melody: the voices stay below its top note, within two octaves
            top = max(held)
            lo, hi = max(lo, top - 24), min(hi, top - 1)
            if lo > hi:
                lo, hi = max(0, top - 24), top - 1
        return PlayContext(tick=tick, chord=self.chord_at(tick), rng=self.rng, temperature=self.temperature,
                           top_p=self.top_p, starting=starting, held=held, max_voices=self.s.voices,
                           pitch_range=(lo, hi), extra={"chord_at": self.chord_at, "onset": onset})

    def _rule_ctx(self, tick: int) -> RuleContext:
        pv = float(np.mean(self.velocities)) if self.velocities else None
        return RuleContext(self.chord_at(tick), tuple(self.recent), pv, len(self.sched.sounding), self.rng, self.s.rules)

    def _play(self, tick: int, starting: bool = False, end: int | None = None, record: bool = False) -> None:
        notes = self.model.play(self._context(tick, starting))
        if not notes:
            return
        rc = self._rule_ctx(tick)
        start = self.clock.time_of(tick)
        for n in notes:
            c = apply_rules(Candidate(n.pitch, n.velocity, n.duration), rc, self.s.rules.order)
            if c is None:
                continue
            last = tick + min(c.duration, self.s.max_note_ticks)
            if end is not None:
                last = min(last, end)
            at = start + c.delay_ms / 1000
            # a hair short of the next onset, so a repeated pitch re-strikes audibly
            off = max(at + 0.005, self.clock.time_of(last) - 0.002)
            self.sched.note(c.pitch, c.velocity, at, off)
            if record:
                self.last_answer.append((tick - self.answer_start, c.pitch, c.velocity, last - tick))
            self.recent.append(c.pitch)
            self.stats.notes_out += 1

    def _harmonize(self, tick: int, now: float) -> None:
        self._dirty_harmony = False
        held = self._melody_held()
        if not held:
            for p in list(self.harmony):
                self.sched.stop_now(p, now)
            self.harmony.clear()
            return
        t0 = time.perf_counter()
        notes = self.model.play(self._context(tick, onset=True))
        rc = self._rule_ctx(tick)
        want: dict[int, int] = {}
        order = [r for r in self.s.rules.order if r not in ("polyphony", "max_leap", "max_repeats")]
        for n in notes[: self.s.voices]:
            c = apply_rules(Candidate(n.pitch, n.velocity, n.duration), rc, order)
            if c is not None and c.pitch not in held:
                want[c.pitch] = c.velocity
        for p in list(self.harmony):
            if p not in want:
                self.sched.stop_now(p, now)
                self.harmony.discard(p)
        for p, v in want.items():
            if p not in self.harmony:
                self.sched.start_now(p, v, now)
                self.harmony.add(p)
                self.stats.notes_out += 1
        self.stats.step_costs.append(time.perf_counter() - t0)

    def recover(self) -> None:
        """After a failed step: back to listening from scratch (duet starts playing again)."""
        self._onsets.clear()
        self._releases.clear()
        self._dirty_harmony = False
        self.state = IDLE
        if self.mode == "duet":
            self._set_state(ANSWERING)
            self.model.begin_answer(self.tick + 1)

    @property
    def schedulers(self) -> list:
        return [self.sched] + ([self.click] if self.click is not None else [])

    def flush(self, now: float) -> None:
        for sc in self.schedulers:
            sc.flush(now)

    def next_due(self):
        dues = [d for d in (sc.next_due() for sc in self.schedulers) if d is not None]
        return min(dues) if dues else None

    def close(self, now: float) -> None:
        """Every exit path ends here: nothing left sounding."""
        if self.click is not None:
            self.click.close(now)
        self.sched.close(now)
        self.harmony.clear()
