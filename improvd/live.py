"""``improvd run``: the engine on the wall clock between real ports.

One thread does everything that changes state (input, ticks, sending), so there are no locks
on the hot path; rtmidi's callback thread only timestamps and queues. The loop sleeps until
the next due message or tick and wakes early for input. Every exit path (return, exception,
SIGTERM, SIGINT) goes through ``finally`` which ends every sounding note.
"""

from __future__ import annotations

import logging
import gc
import os
import signal
import time
from pathlib import Path

import numpy as np

from improvd import ImprovdError, notify
from improvd.clock import Clock, ClockFollower
from improvd.config import Settings, load_settings
from improvd.engine import Engine
from improvd.midi.normalise import normalise
from improvd.midi.ports import InputPort, OutputPort, pick_api
from improvd.models import load_model
from improvd.replay import load_progression
from improvd.scheduler import Scheduler

log = logging.getLogger("improvd")


class Stop(Exception):
    pass


def _sleep_until(deadline: float, queue, daemon=None, wake=None) -> None:
    """Sleep until ``deadline`` (perf_counter), until input arrives (``wake`` is set by the
    MIDI thread) or a stop is asked for; the last 0.3 ms is spun, which no sleep can hit."""
    while True:
        now = time.perf_counter()
        left = deadline - now
        if left <= 0 or queue or (daemon is not None and daemon._stop):
            return
        if left > 0.0006:
            if wake is not None:
                wake.wait(min(left - 0.0003, 0.25))
                wake.clear()
            else:
                time.sleep(min(left - 0.0003, 0.002))


class Daemon:
    def __init__(self, settings: Settings, config_path=None, flags=None):
        self.s = settings
        self.config_path, self.flags = config_path, flags or {}
        t_start = time.perf_counter()
        self.model = load_model(settings.model)
        api = pick_api(settings.backend)
        self.inp = InputPort(api, settings.client_name, settings.in_port, settings.virtual or settings.in_port is None,
                             clock_in=settings.clock_in)
        try:
            self.out = OutputPort(api, settings.client_name, settings.out_port, settings.virtual or settings.out_port is None)
        except BaseException:
            self.inp.close()
            raise
        self.clock = Clock(settings.tempo, settings.swing, origin=time.perf_counter() + 0.05)
        self.sched = Scheduler(self._send, settings.channel_out - 1, max_note=settings.max_note_beats * self.clock.beat_seconds)
        click = Scheduler(self._send, settings.metronome_channel - 1, max_note=1.0) if settings.metronome != "off" else None
        more = {m.card.name: m for m in (load_model(n) for n in settings.models)}
        self.engine = Engine(self.model, settings, self.sched, self.clock, load_progression(settings),
                             np.random.default_rng(settings.seed), more_models=more, click=click)
        self.follower = ClockFollower()
        self.ready_seconds = time.perf_counter() - t_start
        self._stop = False
        self._reload = False
        self.sent_log = None  # tests and bench may set a list to record (due, now, bytes)
        self.coalesced = 0
        self._tokens, self._tokens_at = self.THRU_BURST, time.perf_counter()

    def _send(self, msg, due: float, now: float) -> None:
        data = msg.bytes()
        self.out.send(data)
        if self.sent_log is not None and due is not None:
            self.sent_log.append((due, time.perf_counter(), data))

    def _signal(self, signum, _frame) -> None:
        if signum == signal.SIGHUP:
            self._reload = True
        else:
            # only a flag: the loop wakes and leaves through its finally, never from the
            # middle of a send
            self._stop = True
            self.inp.wake.set()

    def reload(self) -> None:
        """SIGHUP: new settings from the file, same model state (a bad file keeps the old ones)."""
        try:
            new = load_settings(self.config_path, self.flags)
        except ImprovdError as e:
            log.error("reload refused, keeping the running settings: %s", e)
            return
        now = time.perf_counter()
        self.engine.s = new
        self.engine.temperature = new.temperature if new.temperature is not None else self.engine.temperature
        self.engine.progression = load_progression(new)
        if new.tempo != self.s.tempo:
            self.clock.set_tempo(new.tempo, self.engine.tick + 1)
        self.clock.swing = new.swing
        if new.mode != self.engine.mode:
            self.engine.set_mode(new.mode, now)
        self.s = new
        log.info("settings reloaded from %s", self.config_path or "defaults")

    def run(self, duration: float | None = None) -> int:
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            try:
                signal.signal(sig, self._signal)
            except ValueError:
                pass  # not the main thread (tests): the caller stops us with .request_stop()
        self._realtime()
        # All that start-up loaded lives as long as the daemon: move it out of the collector's
        # reach, so a full collection mid-song scans only what playing allocates (measured with
        # the rnnrbm model loaded: 5-11 ms per full collection before, under 0.1 ms after).
        gc.collect()
        gc.freeze()
        notify.ready()
        notify.status(f"listening on {self.inp.pattern or 'virtual in'}, model {self.model.card.name}")
        log.info("ready in %.2fs: model %s (%s), mode %s, %.0f BPM", self.ready_seconds, self.model.card.name,
                 self.model.family, self.engine.mode, self.clock.tempo)
        wd = notify.watchdog_interval()
        next_wd = time.perf_counter()
        next_check = time.perf_counter() + 1.0
        next_stats = time.perf_counter() + 10.0
        end = time.perf_counter() + duration if duration else None
        tick = max(0, self.clock.tick_at(time.perf_counter()))
        q = self.inp.queue
        pulse = tick * 2
        if self.s.clock_out:
            self.out.send([0xFA])  # start
        eng, sched, clock = self.engine, self.sched, self.clock
        try:
            while not self._stop:
                t_tick = clock.time_of(tick)
                nd = eng.next_due()
                deadline = t_tick if nd is None else min(t_tick, nd)
                if self.s.clock_out:
                    t_pulse = clock.straight_time(pulse / 2)
                    deadline = min(deadline, t_pulse)
                _sleep_until(deadline, q, self, self.inp.wake)
                now = time.perf_counter()
                eng.flush(now)  # what is due leaves first, whatever is queued behind it
                if q:
                    try:
                        self._drain(q)
                        now = time.perf_counter()
                        eng.on_input_now(now)
                    except Exception as e:  # a model step failed: stay on stage
                        self._model_failed(e, now)
                    eng.flush(now)
                if self.s.clock_out and now >= t_pulse:
                    self.out.send([0xF8])  # 24 per beat: two per 12-per-beat tick
                    pulse += 1
                if now >= t_tick:
                    try:
                        eng.on_tick(tick, t_tick)
                    except Exception as e:
                        self._model_failed(e, now)
                    tick += 1
                    behind = clock.tick_at(now) - tick
                    if behind > 2:  # suspended or starved: skip ahead instead of bursting
                        tick += behind
                if self._reload:
                    self._reload = False
                    self.reload()
                if now >= next_check:
                    next_check = now + 1.0
                    self._check_ports(now)
                if wd and now >= next_wd:
                    notify.watchdog_ping()
                    next_wd = now + wd
                if self.s.stats and now >= next_stats:
                    next_stats = now + 10.0
                    log.info(self.stats_line())
                if end is not None and now >= end:
                    break
        except Stop:
            pass
        finally:
            notify.stopping()
            now = time.perf_counter()
            if self.s.clock_out:
                self.out.send([0xFC])  # stop
            eng.close(now)
            # rtmidi hands messages to JACK in its next process cycle: closing the port at
            # once would drop the last note-offs just sent. 50 ms was not always enough on a
            # loaded 2-core CI box (a clock stop went missing once); exit can spare 200 ms.
            time.sleep(0.2)
            self.out.close()
            self.inp.close()
        return 0

    def _model_failed(self, exc: Exception, now: float) -> None:
        """An exception inside a step: log one line, silence, fresh state, keep listening.
        Ten within ten seconds means it will not recover: stop, and let systemd restart us."""
        import traceback

        where = traceback.extract_tb(exc.__traceback__)[-1]
        log.error("model step failed (%s: %s at %s:%d); notes released, state reset, still listening",
                  type(exc).__name__, str(exc)[:120], Path(where.filename).name, where.lineno)
        self.engine.close(now)
        try:
            self.engine.model.reset()
            self.engine.recover()
        except Exception:
            pass
        self._failures = [t for t in getattr(self, "_failures", []) if now - t < 10.0] + [now]
        if len(self._failures) >= 10:
            raise ImprovdError(f"model {self.model.card.name} failed 10 times in 10 s (last: {type(exc).__name__}: {str(exc)[:80]}): check the model with `improvd bench -m {self.model.card.name}`")

    def _realtime(self) -> None:
        """Run the engine thread (model steps included: onnxruntime uses this thread) at
        SCHED_FIFO, so a busy machine delays a note by microseconds, not a time slice."""
        prio = self.s.rt_priority
        if not prio:
            return
        try:
            os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(prio))
            log.info("engine thread at SCHED_FIFO priority %d", prio)
        except (PermissionError, OSError) as e:
            log.warning("realtime priority %d refused (%s): playing at normal priority; allow it with LimitRTPRIO or rtprio in limits.conf", prio, e.strerror)

    def request_stop(self) -> None:
        self._stop = True
        self.inp.wake.set()

    DRAIN = 48  # input messages per loop turn (about 1 ms of work): a flood must not starve the clock

    def _drain(self, q) -> None:
        eng = self.engine
        for _ in range(min(len(q), self.DRAIN)):
            data, t = q.popleft()
            msg = normalise(data)
            if msg is None:
                eng.stats.ignored += 1
                continue
            if msg.type in ("clock", "start", "stop", "continue", "songpos"):
                if self.s.clock_in:
                    bpm = self.follower.message(msg.type, t, getattr(msg, "pos", None))
                    if bpm and abs(bpm - self.clock.tempo) > 0.5:
                        self.clock.set_tempo(bpm, eng.tick + 1)
                continue
            eng.on_message(msg, t)
            if self.s.passthrough and msg.type in self._THRU and (msg.type != "control_change" or msg.control == 64):
                if msg.type == "note_on" and not self._thru_budget(t):
                    self.coalesced += 1  # a flood: no synth needs 10,000 notes a second
                    continue
                ch = self.s.passthrough_channel - 1 if self.s.passthrough_channel else None
                eng.sched.thru(msg, time.perf_counter(), ch)

    THRU_RATE, THRU_BURST = 500.0, 256.0  # note-ons passed through: per second, and at once

    def _thru_budget(self, t: float) -> bool:
        self._tokens = min(self.THRU_BURST, self._tokens + (t - self._tokens_at) * self.THRU_RATE)
        self._tokens_at = t
        if self._tokens >= 1.0:
            self._tokens -= 1.0
            return True
        return False

    _THRU = frozenset(("note_on", "note_off", "pitchwheel", "aftertouch", "polytouch", "control_change"))

    def _check_ports(self, now: float) -> None:
        if self.inp.check() == "lost":
            # The performer's held keys went with the keyboard: let them go.
            for p in list(self.engine.pressed):
                import mido
                self.engine.on_message(mido.Message("note_off", note=p), now)
        self.out.check()

    def stats_line(self) -> str:
        st = self.engine.stats
        p50, p99 = st.step_percentiles()
        errs = self.sched.timing.errors[-5000:]
        e99 = float(np.percentile(errs, 99)) * 1e3 if errs else float("nan")
        return (f"notes in {st.notes_in} out {st.notes_out} | step p50 {p50:.3f} ms p99 {p99:.3f} ms | "
                f"timing p99 {e99:.3f} ms late {self.sched.timing.late} | dropped {self.inp.dropped} ignored {st.ignored} coalesced {self.coalesced}")
