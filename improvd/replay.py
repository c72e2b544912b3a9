"""Replay: a recorded performance drives the engine on a virtual clock; the answer is a file.

What passes here is what runs on stage: the engine, scheduler, rules and model are the
same objects ``improvd run`` uses, only the clock is counted instead of waited for.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import mido
import numpy as np

from improvd import ImprovdError
from improvd.chords import Progression
from improvd.clock import Clock
from improvd.config import Settings
from improvd.encoding import BAR_TICKS
from improvd.engine import Engine
from improvd.midi.files import Performance, read_midi, write_midi
from improvd.models import load_model
from improvd.scheduler import Scheduler


@dataclass
class ReplayResult:
    performer: list  # [(seconds, Message)]
    machine: list  # [(seconds, Message)]
    tempo: float
    engine: Engine


def select(perf: Performance, tracks=None, beats: tuple | None = None) -> Performance:
    """Keep some tracks and a window of beats (shifted to start at 0); drums never."""
    notes = [n for n in perf.notes if n.channel != 9 and (not tracks or n.track in tracks)]
    controls = [c for c in perf.controls if c[1] != 9 and (not tracks or c[4] in tracks)]
    if beats is not None:
        b0, b1 = beats
        t0, t1 = b0 * perf.beat_seconds, b1 * perf.beat_seconds
        notes = [n.__class__(n.pitch, n.velocity, n.start - t0, min(n.end, t1) - t0, n.channel, n.track)
                 for n in notes if t0 <= n.start < t1]
        controls = [(t - t0, *rest) for t, *rest in controls if t0 <= t < t1]
    return Performance(tuple(notes), perf.tempo, perf.beat_seconds, perf.path, perf.ticks_per_beat, tuple(controls))


def load_progression(settings: Settings) -> Progression | None:
    text = settings.chords
    if settings.chords_file:
        try:
            text = Path(settings.chords_file).read_text()
        except OSError as e:
            raise ImprovdError(f"chords file {settings.chords_file} cannot be read ({e.strerror}): check the path") from None
    return Progression.parse(text, BAR_TICKS) if text else None


def replay(perf: Performance, settings: Settings, model=None, tail_bars: int | None = None,
           keep_output: bool = True, on_progress=None) -> ReplayResult:
    """``keep_output=False`` counts messages instead of keeping them and ``on_progress(tick)``
    is called every 1000 ticks: both for the hour-long soak."""
    if not perf.notes:
        raise ImprovdError(f"MIDI file {perf.path or 'input'} has no notes to replay (drums are skipped): record a phrase first")
    model = model or load_model(settings.model)
    clock = Clock(settings.tempo, settings.swing)
    out: list = []
    counted = [0]

    def sink(msg, due, now):
        if keep_output:
            out.append((due, msg))
        else:
            counted[0] += 1

    sched = Scheduler(sink, settings.channel_out - 1,
                      max_note=settings.max_note_beats * clock.beat_seconds)
    click = Scheduler(sink, settings.metronome_channel - 1, max_note=1.0) if settings.metronome != "off" else None
    more = {m.card.name: m for m in (load_model(n) for n in settings.models)}
    engine = Engine(model, settings, sched, clock, load_progression(settings), np.random.default_rng(settings.seed),
                    more_models=more, click=click)
    performer = []
    for n in perf.notes:
        performer.append((n.start, mido.Message("note_on", note=n.pitch, velocity=max(1, n.velocity), channel=0)))
        performer.append((n.end, mido.Message("note_off", note=n.pitch, velocity=0, channel=0)))
    for t, ch, control, value, _track in perf.controls:
        performer.append((t, mido.Message("control_change", channel=0, control=control, value=value)))
    performer.sort(key=lambda x: (x[0], 0 if x[1].type == "note_off" else 1))
    last_input = max(t for t, m in performer if m.type != "control_change")
    extra = tail_bars if tail_bars is not None else (settings.max_bars + 2)
    horizon = last_input + settings.wait_ticks * clock.tick_seconds + extra * BAR_TICKS * clock.tick_seconds
    i, tick = 0, 0
    while True:
        t_tick = clock.time_of(tick)
        while i < len(performer) and performer[i][0] <= t_tick:
            t, msg = performer[i]
            # Input wins a tie, as live (input is drained before the flush): a barge-in at the
            # instant an answer note is due stops it instead of leaving an on/off pair at one time.
            engine.flush(math.nextafter(t, -math.inf))
            engine.on_message(msg, t)
            engine.on_input_now(t)
            i += 1
        engine.flush(t_tick)
        engine.on_tick(tick, t_tick)
        tick += 1
        if on_progress is not None and tick % 1000 == 0:
            on_progress(tick)
        done_input = i >= len(performer)
        if done_input and t_tick > last_input + clock.tick_seconds:
            if settings.mode == "call-response" and engine.state == "idle" and engine.answer_end and engine.answer_end <= tick and t_tick > last_input:
                break
            if settings.mode != "call-response" and t_tick >= last_input + BAR_TICKS * clock.tick_seconds:
                break
        if t_tick > horizon:
            break
    end = clock.time_of(tick)
    engine.flush(end)
    engine.close(end)
    return ReplayResult(performer, out, settings.tempo, engine)


PERFORMER_PROGRAM, IMPROVD_PROGRAM = 0, 11  # GM acoustic grand and vibraphone: two voices a listener tells apart


def write_result(res: ReplayResult, path: Path) -> None:
    mach = [(t, m) for t, m in res.machine if m.type in ("note_on", "note_off")]
    used = {m.channel for _, m in mach}
    # the performer keeps channel 1 unless improvd plays there; then it moves to the first free one
    pch = 0 if 0 not in used else next(c for c in range(16) if c not in used and c != 9)
    perf_msgs = [(-1.0, mido.Message("program_change", channel=pch, program=PERFORMER_PROGRAM))]
    perf_msgs += [(t, m.copy(channel=pch)) for t, m in res.performer]
    programs = [(-1.0, mido.Message("program_change", channel=c, program=IMPROVD_PROGRAM)) for c in sorted(used) if c != 9]
    write_midi(path, [("performer", perf_msgs), ("improvd", programs + mach)], res.tempo)


def replay_realtime(perf: Performance, settings: Settings) -> ReplayResult:
    """The file played on the wall clock into the live daemon through real ports, its output
    port recorded: the whole stage path (ports, threads, timing), for checking a set-up."""
    import dataclasses
    import os
    import threading
    import time

    import rtmidi

    from improvd.live import Daemon
    from improvd.midi.ports import pick_api

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
        performer = []
        for n in perf.notes:
            performer.append((n.start, mido.Message("note_on", note=n.pitch, velocity=max(1, n.velocity))))
            performer.append((n.end, mido.Message("note_off", note=n.pitch, velocity=0)))
        performer.sort(key=lambda x: (x[0], 0 if x[1].type == "note_off" else 1))
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
