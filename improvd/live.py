"""``improvd run``: the engine on the wall clock between real ports.

One thread does everything that changes state (input, ticks, sending), so there are no locks
on the hot path; rtmidi's own thread only queues (no Python runs there, see InputPort). The
loop sleeps until the next due message or tick, looking at the input every half millisecond. Every exit path (return, exception,
SIGTERM, SIGINT) goes through ``finally`` which ends every sounding note.
"""

from __future__ import annotations

import faulthandler
import gc
import itertools
import logging
import os
import signal
import sys
import time
from pathlib import Path

import mido
import numpy as np
import rtmidi

from improvd import ImprovdError, notify
from improvd.clock import Clock, ClockFollower
from improvd.config import Settings, load_chart, load_settings, used_channels
from improvd.encoding import BAR_TICKS, TICKS_PER_BEAT
from improvd.midi.normalise import normalise
from improvd.midi.ports import InputPort, JackServer, OutputPort, pick_api
from improvd.models import check_mode, load_model, runtime
from improvd.midi.files import Performance
from improvd.replay import ReplayResult, performer_events
from improvd.session import build, click_scheduler

log = logging.getLogger("improvd")


# What each signal does. Stop-signals end in silence through the loop's ``finally``; the ones
# whose default is to die abnormally (the watchdog's SIGABRT, SIGQUIT) exit 128 + signal after
# that, so systemd still sees a failure and restarts. SIGQUIT first dumps every thread's stack
# to the log (faulthandler) to diagnose a hang; SIGUSR1/SIGUSR2 log the figures and play on.
STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGALRM, signal.SIGABRT, signal.SIGQUIT)
FAILURE_SIGNALS = (signal.SIGABRT, signal.SIGQUIT)
STATS_SIGNALS = (signal.SIGUSR1, signal.SIGUSR2)

# Settings only read when the daemon starts: a reload that changes one is refused, not ignored.
START_ONLY = ("in_port", "out_port", "backend", "virtual", "client_name", "model", "models", "rt_priority",
              "clock_in", "clock_out", "seed", "log_level")


# Seconds between two looks at the input while the engine sleeps: every half millisecond while
# the performer plays, every two when nothing came for a while (idle CPU 9 % -> 3 % here).
POLL_PLAYING, POLL_IDLE, PLAYING_FOR = 0.0005, 0.002, 2.0


def _sleep_until(deadline: float, inp, daemon=None) -> None:
    """Sleep until ``deadline`` (perf_counter), until input arrives or a stop is asked for.
    The input is polled (see InputPort: no Python runs in JACK's thread); the last 0.3 ms
    before a deadline is spun, which no sleep can hit."""
    while True:
        if inp.poll() or inp.queue:
            return
        now = time.perf_counter()
        left = deadline - now
        if left <= 0 or (daemon is not None and daemon._stop):
            return
        if left > 0.0006:
            poll = POLL_PLAYING if now - inp.last_input < PLAYING_FOR else POLL_IDLE
            time.sleep(min(left - 0.0003, poll))


class Daemon:
    def __init__(self, settings: Settings, config_path=None, flags=None):
        self.settings = settings
        self.config_path, self.flags = config_path, flags or {}
        t_start = time.perf_counter()
        self.model = load_model(settings.model)
        self.takes = None
        if settings.record:  # before the ports: a folder that cannot be written stops the start
            from improvd.takes import Takes

            silence = settings.reset_after_bars * BAR_TICKS / TICKS_PER_BEAT * 60.0 / settings.tempo  # a new piece
            self.takes = Takes(settings.record, settings.tempo, silence=silence)
        api = pick_api(settings.backend)
        self.inp = InputPort(api, settings.client_name, settings.in_port, settings.virtual or settings.in_port is None,
                             clock_in=settings.clock_in)
        try:
            self.out = OutputPort(api, settings.client_name, settings.out_port, settings.virtual or settings.out_port is None)
        except BaseException:
            self.inp.close()
            raise
        self.jack = JackServer([self.inp, self.out]) if api == rtmidi.API_UNIX_JACK else None
        self.leave_ports = False  # True where the process ends right after run(): the CLI
        # Whatever an earlier improvd left sounding (killed, crashed, unplugged) ends now.
        self.out.clear_channels = used_channels(settings)
        self.out.clear()
        self.clock = Clock(settings.tempo, settings.swing, origin=time.perf_counter() + 0.05)
        try:
            session = build(settings, self._send, clock=self.clock, model=self.model, heal=True)
        except BaseException:
            self.out.close()
            self.inp.close()
            raise
        self.engine, self.sched = session.engine, session.sched
        self.follower = ClockFollower()

        self.ready_seconds = time.perf_counter() - t_start
        self._stop = False
        self._stop_signal: int | None = None
        self._reload = False
        self._log_stats = False
        self._cleared_twice = False
        self.sent_log = None  # tests and bench may set a list to record (due, now, bytes)
        self.coalesced = 0
        self._tokens, self._tokens_at = self.THRU_BURST, time.perf_counter()

    def _send(self, msg, due: float, now: float) -> None:
        data = msg.bytes()
        self.out.send(data)
        if self.takes is not None and due is not None:  # improvd's own, not the performer's passed on
            self.takes.machine(data, now)
        if self.sent_log is not None and due is not None:
            self.sent_log.append((due, time.perf_counter(), data))

    def _signal(self, signum, _frame) -> None:
        # only flags: the loop wakes and acts, never from the middle of a send
        if signum == signal.SIGHUP:
            self._reload = True
        elif signum in STATS_SIGNALS:
            self._log_stats = True
        else:
            self._stop = True
            self._stop_signal = self._stop_signal or signum
        self.inp.wake.set()

    def reload(self) -> None:
        """SIGHUP: new settings from the file, same model state. The new settings are built and
        checked whole before any is applied: a file that fails anywhere (a bad value, a chord
        chart that does not parse, a mode the model cannot play, a key only read at start)
        is refused with one line and the running settings stay."""
        try:
            new = load_settings(self.config_path, self.flags)
            changed = [k for k in START_ONLY if getattr(new, k) != getattr(self.settings, k)]
            if changed:
                raise ImprovdError(f"{', '.join(changed)} changed, which only apply at start: restart improvd "
                                   f"(systemctl restart improvd) or put {'it' if len(changed) == 1 else 'them'} back")
            check_mode(self.engine.model, new.mode)
            progression = load_chart(new)
        except ImprovdError as e:
            log.error("reload refused, keeping the running settings: %s", e)
            return
        except Exception as e:  # anything unforeseen in a file must not take the stage down
            log.error("reload refused, keeping the running settings: %s: %s", type(e).__name__, str(e)[:160])
            return
        now = time.perf_counter()
        eng = self.engine
        eng.reconfigure(new, progression)
        if not new.follows_performer:
            eng.performer.stop_following("the reloaded settings")
            if new.tempo != self.settings.tempo or self.settings.follows_performer:
                self.clock.set_tempo(new.tempo, eng.tick + 1)
        elif not eng.performer.following:
            eng.performer.start_following(new.tempo)
        self.clock.swing = new.swing
        if new.channel_out != self.settings.channel_out:
            self.sched.release_all(now)  # what sounds on the old channel ends there
            self.sched.channel = new.channel_out - 1
        self.sched.max_note = new.max_note_beats * self.clock.beat_seconds
        if (new.metronome, new.metronome_channel) != (self.settings.metronome, self.settings.metronome_channel):
            if eng.click is not None:
                eng.click.close(now)
            eng.click = click_scheduler(new, self._send, heal=True)
        if new.mode != eng.mode.name:
            eng.set_mode(new.mode, now)
        self.out.clear_channels = sorted(set(self.out.clear_channels) | set(used_channels(new)))
        self.settings = new
        log.info("settings reloaded from %s", self.config_path or "defaults")

    def _catch_signals(self) -> None:
        for sig in (*STOP_SIGNALS, *STATS_SIGNALS, signal.SIGHUP):
            try:
                signal.signal(sig, self._signal)
            except ValueError:
                return  # not the main thread (tests): the caller stops us with .request_stop()
        # Installed after the handlers above, faulthandler writes every thread's stack to the
        # log from C (so even a hung loop shows where it hangs) and then passes the signal on
        # to them: a crash (SIGSEGV...) or SIGABRT leaves its stacks in the journal, and SIGQUIT
        # dumps them on demand before the daemon stops in silence.
        faulthandler.enable(file=sys.stderr, all_threads=True)
        faulthandler.register(signal.SIGQUIT, file=sys.stderr, all_threads=True, chain=True)

    def run(self, duration: float | None = None) -> int:
        """Play until stopped; returns the exit status (128 + signal for SIGABRT and SIGQUIT).
        On a terminal a live panel shows what the daemon does; elsewhere, log lines."""
        from improvd.logs import under_journald
        from improvd.view import LiveView

        if LiveView.wanted() and not under_journald():
            with LiveView(self.snapshot):
                return self._play(duration)
        return self._play(duration)

    def _play(self, duration: float | None) -> int:
        self._catch_signals()
        self._realtime()
        # All that start-up loaded lives as long as the daemon: move it out of the collector's
        # reach, so a full collection mid-song scans only what playing allocates (measured with
        # the rnnrbm model loaded: 5-11 ms per full collection before, under 0.1 ms after).
        gc.collect()
        gc.freeze()
        notify.ready()
        notify.status(f"listening on {self.inp.pattern or 'virtual in'}, model {self.model.card.name}")
        log.info("ready in %.2fs: model %s (%s), mode %s, %s; %s; in %s, out %s over %s", self.ready_seconds,
                 self.model.card.name, self.model.family, self.engine.mode.name,
                 f"following the performer's time from {self.clock.tempo:.0f} BPM" if self.engine.performer.following
                 else f"{self.clock.tempo:.0f} BPM", runtime.describe(),
                 self.inp.describe(), self.out.describe(), "JACK" if self.jack is not None else "ALSA")
        wd = notify.watchdog_interval()
        next_wd = time.perf_counter()
        next_check = time.perf_counter() + 1.0
        next_stats = time.perf_counter() + 10.0
        end = time.perf_counter() + duration if duration else None
        tick = max(0, self.clock.tick_at(time.perf_counter()))
        q = self.inp.queue
        pulse = tick * 2
        if self.settings.clock_out:
            self.out.send([0xFA])  # start
        eng, clock = self.engine, self.clock
        try:
            while not self._stop:
                t_tick = clock.time_of(tick)
                nd = eng.next_due()
                deadline = t_tick if nd is None else min(t_tick, nd)
                if self.settings.clock_out:
                    t_pulse = clock.straight_time(pulse / 2)
                    deadline = min(deadline, t_pulse)
                _sleep_until(deadline, self.inp, self)
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
                if self.settings.clock_out and now >= t_pulse:
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
                if self._log_stats:
                    self._log_stats = False
                    log.info(self.stats_line())
                if now >= next_check:
                    next_check = now + 1.0
                    self._check_ports(now)
                    if self.takes is not None:
                        self._follow_take(now)
                if wd and now >= next_wd:
                    notify.watchdog_ping()
                    next_wd = now + wd
                if self.settings.stats and now >= next_stats:
                    next_stats = now + 10.0
                    log.info(self.stats_line())
                if end is not None and now >= end:
                    break
        finally:
            notify.stopping()
            now = time.perf_counter()
            if self.settings.clock_out:
                self.out.send([0xFC])  # stop
            eng.close(now)
            # A second, paced all-clear: the exit burst is where a loaded MIDI system loses or
            # mangles messages (once seen: one note-off arriving five times, others not at all).
            time.sleep(0.02)
            self.out.clear()
            # rtmidi hands messages to JACK in its next process cycle: closing the port at
            # once would drop the last note-offs just sent. 50 ms was not always enough on a
            # loaded 2-core CI box (a clock stop went missing once); exit can spare 200 ms.
            time.sleep(0.2)
            if self.leave_ports:  # the process ends now and its clients with it (OutputPort.leave)
                self.out.leave()
                self.inp.leave()
            else:
                self.out.close()
                self.inp.close()
            if self.takes is not None:
                self.takes.close(time.perf_counter())
            log.info("stopped%s: every note ended", f" by {signal.Signals(self._stop_signal).name}" if self._stop_signal else "")
        if self._stop_signal in FAILURE_SIGNALS:
            return 128 + self._stop_signal
        return 0

    def snapshot(self):
        """What the live panel shows now; cheap (the last 500 figures), as rich's redraw
        thread asks for it twice a second while the engine plays."""
        from improvd.view import Snapshot

        eng = self.engine
        steps = np.fromiter(itertools.islice(reversed(eng.stats.step_costs), 500), float)
        errors = self.sched.timing.errors[-500:]
        chord = eng.chord_at(max(eng.tick, 0))
        heard = eng.performer.heard if eng.performer.following else None
        return Snapshot(state=str(eng.state), tempo=heard.bpm if heard is not None else self.clock.tempo,
                        confidence=heard.confidence if heard is not None else None, chord=chord.name if chord is not None else "",
                        model=eng.model.card.name, mode=str(eng.mode.name), notes_in=eng.stats.notes_in,
                        notes_out=eng.stats.notes_out,
                        step_p99_ms=float(np.percentile(steps, 99)) * 1e3 if len(steps) else float("nan"),
                        timing_p99_ms=float(np.percentile(errors, 99)) * 1e3 if errors else float("nan"),
                        late=self.sched.timing.late, dropped=self.inp.dropped)

    def _follow_take(self, now: float) -> None:
        """The take notes the tempo and the chord as they are now, and ends after a silence."""
        chord = self.engine.chord_at(max(self.engine.tick, 0))
        self.takes.tempo(self.clock.tempo, now)
        self.takes.chord(chord.name if chord is not None else None, now)
        self.takes.poll(now)

    def _model_failed(self, exc: Exception, now: float) -> None:
        """An exception inside a step: log one line, silence, fresh state, keep listening.
        Ten within ten seconds means it will not recover: stop, and let systemd restart us."""
        import traceback

        where = traceback.extract_tb(exc.__traceback__)[-1]
        log.error("model step failed (%s: %s at %s:%d); notes released, state reset, still listening",
                  type(exc).__name__, str(exc)[:120], Path(where.filename).name, where.lineno)
        self.engine.close(now)
        try:
            self.engine.recover()
        except Exception:
            pass
        self._failures = [t for t in getattr(self, "_failures", []) if now - t < 10.0] + [now]
        if len(self._failures) >= 10:
            raise ImprovdError(f"model {self.model.card.name} failed 10 times in 10 s (last: {type(exc).__name__}: {str(exc)[:80]}): check the model with `improvd bench -m {self.model.card.name}`")

    def _realtime(self) -> None:
        """Run the engine thread (model steps included: onnxruntime uses this thread) at
        SCHED_FIFO, so a busy machine delays a note by microseconds, not a time slice."""
        prio = self.settings.rt_priority
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
                if self.settings.clock_in:
                    bpm = self.follower.message(msg.type, t, getattr(msg, "pos", None))
                    if bpm and abs(bpm - self.clock.tempo) > 0.5:
                        self.clock.set_tempo(bpm, eng.tick + 1)
                continue
            eng.on_message(msg, t)
            if self.takes is not None and msg.type in self._THRU:
                self.takes.performer(msg, t)
            if self.settings.passthrough and msg.type in self._THRU and (msg.type != "control_change" or msg.control == 64):
                if msg.type == "note_on" and not self._thru_budget(t):
                    self.coalesced += 1  # a flood: no synth needs 10,000 notes a second
                    continue
                ch = self.settings.passthrough_channel - 1 if self.settings.passthrough_channel else None
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
        if not self._cleared_twice:
            # The start-up clear went out the moment the port was connected; a JACK graph still
            # settling (a client killed just before us, say) can lose it. Once more, a second in.
            self._cleared_twice = True
            self.out.clear()
        server = self.jack.check() if self.jack is not None else None
        if server == "back":
            self.out.reconnected()
        if server is not None or self.inp.check() == "lost":
            # The performer's held keys went with the keyboard: let them go, in the engine and
            # at the synth (what passthrough started there would otherwise sound until the
            # keyboard came back).
            self.engine.let_go(now)
            self.sched.release_thru(now)
        self.out.check()

    def stats_line(self) -> str:
        st = self.engine.stats
        p50, p99 = st.step_percentiles()
        errs = self.sched.timing.errors[-5000:]
        e99 = float(np.percentile(errs, 99)) * 1e3 if errs else float("nan")
        heard = self.engine.performer.heard if self.engine.performer.following else None
        tempo = (f"followed {heard.bpm:.1f} BPM (confidence {heard.confidence:.2f}{', unsure' if not heard.locked else ''})"
                 if heard is not None else f"{self.clock.tempo:.1f} BPM")
        return (f"{tempo} | notes in {st.notes_in} out {st.notes_out} | step p50 {p50:.3f} ms p99 {p99:.3f} ms | "
                f"timing p99 {e99:.3f} ms late {self.sched.timing.late} | dropped {self.inp.dropped} ignored {st.ignored} coalesced {self.coalesced}")


def replay_realtime(perf: Performance, settings: Settings) -> ReplayResult:
    """The file played on the wall clock into the live daemon through real ports, its output
    port recorded: the whole stage path (ports, threads, timing), for checking a set-up."""
    import dataclasses
    import threading

    if not perf.notes:
        raise ImprovdError(f"MIDI file {perf.path or 'input'} has no notes to replay: record a phrase first")
    name = f"{settings.client_name}-replay{os.getpid()}"
    s = dataclasses.replace(settings, virtual=True, client_name=name, in_port=None, out_port=None)
    daemon = Daemon(s)
    api = pick_api(s.backend)
    player = rtmidi.MidiOut(api, f"{name}-player")
    recorder = rtmidi.MidiIn(api, f"{name}-recorder")
    heard: list = []
    recorder.set_callback(lambda ev, _d: heard.append((time.perf_counter(), ev[0])))
    try:
        for rt, suffix in ((player, "-in:"), (recorder, "-out:")):
            idx = next(i for i, p in enumerate(rt.get_ports()) if p.startswith(name + suffix))
            rt.open_port(idx, "replay")
        thread = threading.Thread(target=daemon.run, daemon=True)
        thread.start()
        performer = [(t, m) for t, m in performer_events(perf) if m.type != "control_change"]
        t0 = time.perf_counter() + 0.2
        for t, msg in performer:
            while time.perf_counter() < t0 + t:
                time.sleep(min(0.001, max(0.0, t0 + t - time.perf_counter())))
            player.send_message(msg.bytes())
        clock = daemon.clock
        limit = time.perf_counter() + (s.wait_ticks + (s.max_bars + 1) * BAR_TICKS) * clock.tick_seconds
        time.sleep(s.wait_ticks * clock.tick_seconds + 0.1)
        while time.perf_counter() < limit and (daemon.engine.state == "answering" and s.mode == "call-response"):
            time.sleep(0.05)
        if s.mode != "call-response":
            time.sleep(BAR_TICKS * clock.tick_seconds)
        daemon.request_stop()
        thread.join(timeout=5)
        time.sleep(0.1)
    finally:
        player.delete()
        recorder.delete()
    machine = []
    for t, data in heard:
        try:
            machine.append((t - t0, mido.Message.from_bytes(data)))
        except ValueError:
            pass
    return ReplayResult(performer, machine, s.tempo, daemon.engine)
