"""Replay: a recorded performance drives the engine on a virtual clock; the answer is a file.

What passes here is what runs on stage: the engine, scheduler, rules and model are the
same objects ``improvd run`` uses, only the clock is counted instead of waited for.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import mido

from improvd import ImprovdError
from improvd.config import Settings
from improvd.encoding import BAR_TICKS
from improvd.session import build
from improvd.engine import Engine
from improvd.midi.files import Performance, write_midi


@dataclass
class ReplayResult:
    performer: list  # [(seconds, Message)]
    machine: list  # [(seconds, Message)]
    tempo: float
    engine: Engine


# A replay on the virtual clock runs some 70-6000x real time by model and mode (the folk duet
# slowest); past these it is no phrase to answer but an album, or a crafted file.
MAX_REPLAY_BARS = 512
MAX_REPLAY_NOTES = 50_000


def track_summary(perf: Performance, limit: int = 8) -> str:
    """The tracks that hold notes (drums aside), busiest first, as --track takes them."""
    counts: dict[int, int] = {}
    for n in perf.notes:
        if n.channel != 9:
            counts[n.track] = counts.get(n.track, 0) + 1
    names = perf.track_names
    parts = [f"{t}{f' {names[t]!r}' if t < len(names) and names[t] else ''} ({c} note{'s' if c != 1 else ''})"
             for t, c in sorted(counts.items(), key=lambda tc: -tc[1])[:limit]]
    more = f" and {len(counts) - limit} more" if len(counts) > limit else ""
    return ", ".join(parts) + more if parts else "none"


def parse_beats(text: str) -> tuple[float, float]:
    """``START:END`` in beats of the file, 0 <= START < END, both finite."""
    try:
        start, end = (float(x) for x in str(text).split(":"))
    except ValueError:
        raise ImprovdError(f"--beats {text!r} is not a window: write START:END in beats, e.g. 476:548") from None
    if not (math.isfinite(start) and math.isfinite(end) and 0 <= start < end):
        raise ImprovdError(f"--beats {text!r} is not a window: START and END must be numbers with 0 <= START < END, e.g. 476:548")
    return start, end


def select(perf: Performance, tracks=None, beats: tuple | None = None) -> Performance:
    """Keep some tracks and a window of beats (shifted to start at 0); drums never."""
    if tracks:
        present = {n.track for n in perf.notes if n.channel != 9}
        missing = sorted(set(tracks) - present)
        if missing:
            raise ImprovdError(f"MIDI file {perf.path or 'input'} has no notes on track {missing[0]} (drums are skipped): "
                               f"pick --track among {track_summary(perf)}")
    notes = [n for n in perf.notes if n.channel != 9 and (not tracks or n.track in tracks)]
    controls = [c for c in perf.controls if c[1] != 9 and (not tracks or c[4] in tracks)]
    if beats is not None:
        b0, b1 = beats
        t0, t1 = b0 * perf.beat_seconds, b1 * perf.beat_seconds
        notes = [n.__class__(n.pitch, n.velocity, n.start - t0, min(n.end, t1) - t0, n.channel, n.track)
                 for n in notes if t0 <= n.start < t1]
        controls = [(t - t0, *rest) for t, *rest in controls if t0 <= t < t1]
    return Performance(tuple(notes), perf.tempo, perf.beat_seconds, perf.path, perf.ticks_per_beat, tuple(controls),
                       perf.track_names)


def check_replay_size(perf: Performance) -> None:
    """Refuse, with the window to pick, a performance the virtual clock would take minutes on."""
    bars = max((n.end for n in perf.notes), default=0.0) / perf.beat_seconds / 4
    if bars > MAX_REPLAY_BARS:
        raise ImprovdError(f"MIDI file {perf.path or 'input'} lasts {bars:.0f} bars, more than the {MAX_REPLAY_BARS} a replay takes: "
                           f"pick a window with --beats START:END (in beats)")
    if len(perf.notes) > MAX_REPLAY_NOTES:
        raise ImprovdError(f"MIDI file {perf.path or 'input'} holds {len(perf.notes)} notes, more than the {MAX_REPLAY_NOTES} a replay "
                           f"takes: pick a window with --beats START:END or a track with --track N")


def performer_events(perf: Performance, controls: frozenset | None = None) -> list:
    """The performance as timed messages on channel 1, in the order the engine must hear them;
    ``controls``: the controller numbers kept (None: all).

    At one instant a note that was sounding ends before a re-strike of its pitch starts, but a
    note of zero length starts before it ends: heard off-then-on, the engine would hold it for
    the rest of the replay.
    """
    ranked = []
    for n in perf.notes:
        ranked.append((n.start, 1, mido.Message("note_on", note=n.pitch, velocity=max(1, n.velocity), channel=0)))
        ranked.append((n.end, 0 if n.end > n.start else 2, mido.Message("note_off", note=n.pitch, velocity=0, channel=0)))
    for t, _channel, control, value, _track in perf.controls:
        if controls is not None and control not in controls:
            continue
        ranked.append((t, 1, mido.Message("control_change", channel=0, control=control, value=value)))
    ranked.sort(key=lambda x: (x[0], x[1]))
    return [(t, msg) for t, _rank, msg in ranked]


def replay(perf: Performance, settings: Settings, model=None, tail_bars: int | None = None,
           keep_output: bool = True, on_progress=None, controls: bool = False) -> ReplayResult:
    """``keep_output=False`` counts messages instead of keeping them and ``on_progress(tick)``
    is called every 1000 ticks: both for the hour-long soak.

    Of a recording's controllers only the sustain pedal reaches the engine, unless ``controls``:
    the rest are the performance (a guitarist's vibrato on the mod wheel), not requests to
    improvd; read as its temperature control they made the README's Metheny answer an ostinato."""
    if not perf.notes:
        raise ImprovdError(f"MIDI file {perf.path or 'input'} has no notes to replay (drums are skipped): record a phrase first")
    out: list = []
    counted = [0]

    def sink(msg, due, now):
        if keep_output:
            out.append((due, msg))
        else:
            counted[0] += 1

    session = build(settings, sink, model=model)
    engine, clock = session.engine, session.clock
    performer = performer_events(perf, None if controls else frozenset((settings.cc.sustain,)))
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
            answer_end = getattr(engine.mode, "answer_end", 0)  # call and response: the last answer played out
            if settings.mode == "call-response" and engine.state == "idle" and answer_end and answer_end <= tick and t_tick > last_input:
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
