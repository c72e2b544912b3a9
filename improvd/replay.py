"""Replay: a recorded performance drives the engine on a virtual clock; the answer is a file.

What passes here is what runs on stage: the engine, scheduler, rules and model are the
same objects ``improvd run`` uses, only the clock is counted instead of waited for.
"""

from __future__ import annotations

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
    if beats is not None:
        b0, b1 = beats
        t0, t1 = b0 * perf.beat_seconds, b1 * perf.beat_seconds
        notes = [n.__class__(n.pitch, n.velocity, n.start - t0, min(n.end, t1) - t0, n.channel, n.track)
                 for n in notes if t0 <= n.start < t1]
    return Performance(tuple(notes), perf.tempo, perf.beat_seconds, perf.path, perf.ticks_per_beat)


def load_progression(settings: Settings) -> Progression | None:
    text = settings.chords
    if settings.chords_file:
        try:
            text = Path(settings.chords_file).read_text()
        except OSError as e:
            raise ImprovdError(f"chords file {settings.chords_file} cannot be read ({e.strerror}): check the path") from None
    return Progression.parse(text, BAR_TICKS) if text else None


def replay(perf: Performance, settings: Settings, model=None, tail_bars: int | None = None) -> ReplayResult:
    if not perf.notes:
        raise ImprovdError(f"MIDI file {perf.path or 'input'} has no notes to replay (drums are skipped): record a phrase first")
    model = model or load_model(settings.model)
    clock = Clock(settings.tempo, settings.swing)
    out: list = []
    sched = Scheduler(lambda msg, due, now: out.append((due, msg)), settings.channel_out - 1,
                      max_note=settings.max_note_beats * clock.beat_seconds)
    engine = Engine(model, settings, sched, clock, load_progression(settings), np.random.default_rng(settings.seed))
    performer = []
    for n in perf.notes:
        performer.append((n.start, mido.Message("note_on", note=n.pitch, velocity=max(1, n.velocity), channel=0)))
        performer.append((n.end, mido.Message("note_off", note=n.pitch, velocity=0, channel=0)))
    performer.sort(key=lambda x: (x[0], 0 if x[1].type == "note_off" else 1))
    last_input = performer[-1][0]
    extra = tail_bars if tail_bars is not None else (settings.max_bars + 2)
    horizon = last_input + settings.wait_ticks * clock.tick_seconds + extra * BAR_TICKS * clock.tick_seconds
    i, tick = 0, 0
    while True:
        t_tick = clock.time_of(tick)
        while i < len(performer) and performer[i][0] < t_tick:
            t, msg = performer[i]
            sched.flush(t)
            engine.on_message(msg, t)
            engine.on_input_now(t)
            i += 1
        sched.flush(t_tick)
        engine.on_tick(tick, t_tick)
        tick += 1
        done_input = i >= len(performer)
        if done_input and t_tick > last_input + clock.tick_seconds:
            if settings.mode == "call-response" and engine.state == "idle" and engine.answer_end and engine.answer_end <= tick and t_tick > last_input:
                break
            if settings.mode != "call-response" and t_tick >= last_input + BAR_TICKS * clock.tick_seconds:
                break
        if t_tick > horizon:
            break
    end = clock.time_of(tick)
    sched.flush(end)
    engine.close(end)
    return ReplayResult(performer, out, settings.tempo, engine)


def write_result(res: ReplayResult, path: Path) -> None:
    perf_msgs = [(t, m) for t, m in res.performer]
    mach = [(t, m) for t, m in res.machine if m.type in ("note_on", "note_off")]
    write_midi(path, [("performer", perf_msgs), ("improvd", mach)], res.tempo)
