"""``improvd bench``: the figures the issues set targets for, measured in one run.

- step cost (model + sampling + rules) p50/p99 per bundled model with onnxruntime, beside the
  same weights stepped by torch eager (when torch is installed): the ratio is the figure;
- output timing error (sent minus due) of the live daemon over a JACK loopback, and the arrival
  delay a client on the other end sees; the harmonize reaction (note-on in to harmony out, and
  key to synth), over ``--runs`` runs: each daemon in its own process, p50/p99/max and the
  count over target, and with ``--load N`` the same again beside N busy processes;
- resident memory and time-to-ready of ``improvd run`` as a separate process.

All on one core (the daemon pins onnxruntime to one thread), on whatever machine runs it.
"""

from __future__ import annotations

import bisect
import contextlib
import json
import os
import re
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np

from improvd.chords import Progression
from improvd.config import load_settings
from improvd.encoding import BAR_TICKS
from improvd.models import bundled_models, load_model
from improvd.rules import Candidate, RuleContext, apply_rules


def percentiles(xs) -> tuple[float, float]:
    a = np.asarray(xs, float) * 1e3
    return float(np.percentile(a, 50)), float(np.percentile(a, 99))


def step_cost(name: str, steps: int) -> dict:
    """Event steps of the runtime model through its own play() plus the rule chain."""
    from improvd.models.base import PlayContext

    m = load_model(name)
    s = load_settings(config=None, flags={"model": name}, environ={})
    prog = Progression.parse("Dm7 G7 | Cmaj7 % | Em7 A7 | Dm7 G7", BAR_TICKS)
    rng = np.random.default_rng(0)
    m.begin_answer(0)
    costs, tick = [], 0
    recent: list = []
    while len(costs) < steps and tick < steps * 200:
        t0 = time.perf_counter()
        notes = m.play(PlayContext(tick=tick, chord=prog.at(tick), rng=rng, temperature=float(m.card.sampling.get("temperature", 1.0)),
                                   top_p=float(m.card.sampling.get("top_p", 1.0)), held=frozenset({60, 64, 67}) if "harmonize" in m.modes else frozenset(),
                                   starting=tick == 0, chord_at=prog.at, onset=tick % 12 == 0))
        rc = RuleContext(prog.at(tick), tuple(recent[-8:]), 80.0, 0, rng, s.rules)
        for n in notes:
            c = apply_rules(Candidate(n.pitch, n.velocity, n.duration), rc, s.rules.order)
            if c:
                recent.append(c.pitch)
        dt = time.perf_counter() - t0
        if notes or dt > 2e-5:  # ticks where the model worked (most ticks of an event model are free)
            costs.append(dt)
        tick += 1
    out = {"model": name, "family": m.family, "steps": len(costs)}
    if costs:
        out["ort_p50"], out["ort_p99"] = percentiles(costs)
    base = torch_baseline(m, steps, prog, s)
    if base:
        out["torch_p50"], out["torch_p99"] = base
    return out


def torch_baseline(m, steps: int, prog, s):
    from improvd import ImprovdError
    from improvd.registry import offline

    try:
        import torch

        baseline = offline("baseline")(m.family)  # the same weights stepped by torch, where training has one
    except (ImportError, ImprovdError):
        return None
    if baseline is None:
        return None
    torch.set_num_threads(1)
    b = baseline(m.path)
    rng = np.random.default_rng(0)
    prev, tick, costs, recent = None, 0, [], []
    for _ in range(50):  # warm-up
        prev = b.bench_step(rng, prog.at(tick), tick, prev)
    for _ in range(steps):
        t0 = time.perf_counter()
        ev = b.bench_step(rng, prog.at(tick), tick, prev)
        rc = RuleContext(prog.at(tick), tuple(recent[-8:]), 80.0, 0, rng, s.rules)
        if ev.pitch >= 0:
            c = apply_rules(Candidate(ev.pitch, 90, ev.duration), rc, s.rules.order)
            if c:
                recent.append(c.pitch)
        costs.append(time.perf_counter() - t0)
        prev, tick = ev, tick + ev.duration
    return percentiles(costs)


def _daemon(prefix: str, **flags):
    """A live daemon on virtual JACK ports named after this process, or the reason there is none."""
    from improvd.live import Daemon
    from improvd.midi.ports import PortError

    name = f"{prefix}{os.getpid()}"
    try:
        s = load_settings(config=None, flags=dict(virtual=True, client_name=name, backend="jack", seed=1, **flags), environ={})
        return name, Daemon(s)
    except PortError as e:
        return name, {"error": str(e)}


def jack_timing(seconds: float, model: str = "jazz", rt_priority: int = 0) -> dict | None:
    """The daemon in duet mode on virtual JACK ports, a client recording its output."""
    name, d = _daemon("bench", mode="duet", model=model, tempo=140, rt_priority=rt_priority)
    if isinstance(d, dict):
        return d
    d.sent_log = []
    rec = _far_end(name)
    threads, _running = _watch_scheduling(d)
    th = threading.Thread(target=d.run, kwargs={"duration": seconds})
    th.start()
    th.join()  # and nothing else while it plays: see _watch_scheduling
    time.sleep(0.3)
    arrivals = _heard(rec)
    errs = [now - due for due, now, _ in d.sent_log]
    out = {"messages": len(errs), "threads": threads, "sent_ms": [e * 1e3 for e in errs]}
    if errs:
        out["sent_p50"], out["sent_p99"] = percentiles(errs)
    delays, out["unheard"] = arrival_delays(d.sent_log, arrivals)
    out["arrive_ms"] = [x * 1e3 for x in delays]
    if delays:
        out["arrive_p50"], out["arrive_p99"] = percentiles(delays)
    out["step_p50"], out["step_p99"] = d.engine.stats.step_percentiles()
    return out


def arrival_delays(sent_log: list, heard: list) -> tuple[list[float], int]:
    """Heard minus due of each message sent: paired with the first identical message heard at or
    after its send and before the next identical one was sent, so that one message lost on the
    way pairs with nothing (and is counted) instead of with every later copy of itself."""
    from collections import defaultdict

    times = defaultdict(list)
    for t, data in heard:
        times[tuple(data)].append(t)
    for v in times.values():
        v.sort()
    sends = defaultdict(list)
    for due, now, data in sent_log:
        sends[tuple(data)].append((now, due))
    delays, unheard = [], 0
    for key, sl in sends.items():
        sl.sort()
        for i, (now, due) in enumerate(sl):
            t = _first_in(now, sl[i + 1][0] if i + 1 < len(sl) else float("inf"), times.get(key, []))
            if t is None:
                unheard += 1
            else:
                delays.append(t - due)
    return delays, unheard


def process_figures(seconds: float = 6.0) -> dict:
    """RSS and time-to-ready of `improvd run` as users start it (a separate process)."""
    name = f"rss{os.getpid()}"
    t0 = time.perf_counter()
    p = subprocess.Popen([sys.executable, "-m", "improvd", "run", "--backend", "jack", "--virtual", "--name", name,
                          "--mode", "duet", "--duration", str(seconds)], stderr=subprocess.PIPE, text=True)
    ready = None
    lines = []
    peak = peak_own = 0
    while True:
        line = p.stderr.readline()
        if not line:
            break
        lines.append(line)
        if ready is None and "ready in" in line:
            ready = time.perf_counter() - t0
            break
    while p.poll() is None:
        try:
            status = Path(f"/proc/{p.pid}/status").read_text()
            kb = {k: int(re.search(rf"{k}:\s+(\d+)", status).group(1)) for k in ("VmRSS", "RssAnon", "RssFile")}
            peak = max(peak, kb["VmRSS"])
            # RssShmem is the JACK server's shared segment, mapped into every JACK client
            peak_own = max(peak_own, kb["RssAnon"] + kb["RssFile"])
        except (OSError, AttributeError):
            pass
        time.sleep(0.2)
    rest = p.stderr.read()
    if p.returncode != 0:
        return {"error": (''.join(lines) + rest).strip().splitlines()[-1] if (lines or rest) else f"exit {p.returncode}"}
    return {"ready_s": ready, "rss_mb": peak / 1024, "rss_own_mb": peak_own / 1024}


TIMING_TARGET_MS = 1.0  # output timing, sent minus due, p99
HARMONY_TARGET_MS = 5.0  # harmonize reaction, note-on at the input port to harmony sent, p99


def summary(ms: list[float], target: float | None = None) -> dict:
    """p50, p99, max and (beside a target) how many were over it, of how many."""
    if not ms:
        return {"n": 0}
    a = np.asarray(ms, float)
    out = {"n": len(a), "p50": float(np.percentile(a, 50)), "p99": float(np.percentile(a, 99)), "max": float(a.max())}
    if target is not None:
        out["over"] = int((a > target).sum())
    return out


@contextlib.contextmanager
def busy_processes(n: int):
    """``n`` processes spinning at normal priority for as long as the block runs: the load a
    busy stage laptop (a DAW, a browser, an update) puts on the cores the daemon shares."""
    procs = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(n)]
    try:
        time.sleep(0.5 if n else 0)  # all spinning before anything is measured
        yield procs
    finally:
        for p in procs:
            p.kill()
        for p in procs:
            p.wait()


_CHILD_SRC = "import json, sys; from improvd import bench; print(json.dumps(getattr(bench, sys.argv[1])(**json.loads(sys.argv[2]))))"


def in_own_process(fn: str, timeout: float, **kwargs) -> dict:
    """``bench.fn(**kwargs)`` in a fresh Python process, as a daemon starts on stage: nothing this
    process did (models stepped, torch loaded, pages touched) warms it or competes with it."""
    try:
        p = subprocess.run([sys.executable, "-c", _CHILD_SRC, fn, json.dumps(kwargs)], capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"error": f"{fn} did not finish in {timeout:.0f} s"}
    lines = p.stdout.strip().splitlines()
    if p.returncode != 0 or not lines:
        tail = (p.stderr.strip().splitlines() or [f"exit {p.returncode}"])[-1]
        return {"error": f"{fn}: {tail}"}
    return json.loads(lines[-1]) or {"error": f"{fn}: no JACK"}


def jack_server() -> str:
    return os.environ.get("JACK_DEFAULT_SERVER", "default")


def realtime_figures(seconds: float, rt_priority: int = 0, load: int = 0, runs: int = 1, harmonize: bool = True) -> dict:
    """Output timing (one duet of ``seconds``) and harmonize reaction (``runs`` runs of
    ``seconds``), each daemon in its own process; unloaded, then with ``load`` busy processes."""
    phases = {}
    for label, n in [("unloaded", 0)] + ([(f"{load} busy", load)] if load else []):
        with busy_processes(n):
            ph = {"busy": n, "timing": in_own_process("jack_timing", seconds + 60, seconds=seconds, rt_priority=rt_priority)}
            if "error" in ph["timing"]:
                return {"error": ph["timing"]["error"]}
            ph["harmonize"] = [in_own_process("harmonize_reaction", seconds + 60, seconds=seconds, rt_priority=rt_priority)
                               for _ in range(runs if harmonize else 0)]
        phases[label] = ph
    return phases


def _cells(sm: dict, target: float | None) -> list[str]:
    if not sm.get("n"):
        return ["n/a", ""]
    over = f"{sm['over']} of {sm['n']}" if target is not None else f"({sm['n']})"
    ms = lambda x: f"{x:.2f}" if x < 10 else f"{x:.1f}" if x < 100 else f"{x:.0f}"
    return [f"{ms(sm['p50'])}/{ms(sm['p99'])}/{ms(sm['max'])}", over]


def realtime_table(phases: dict, seconds: float, rt_priority: int):
    """One row per figure, the unloaded and loaded columns side by side, from the same run."""
    from rich import box
    from rich.table import Table

    t = Table(box=box.SIMPLE_HEAD, title=f"real-time figures, ms, over JACK server {jack_server()!r}; rt priority {rt_priority or 'off'}; "
                    f"each daemon in its own process, {seconds:g} s a run",
              caption="timing: the live duet's messages, sent minus due, and heard by a client at the far end minus due (lost: never heard); "
                      "harmonize: a performer's note-on stamped when the engine polls the input port to the harmony's first note-on sent, "
                      "and a keyboard process's send to the harmony heard at the far end; beside the runs: keys lost on the way in / "
                      "met by a harmony still sounding (held over) / left without harmony, none of them timed")
    t.add_column("figure", ratio=1)
    t.add_column("p99\ntarget", justify="right")
    for label in phases:
        t.add_column(f"{label}\np50/p99/max", justify="right", no_wrap=True)
        t.add_column("over\ntarget", justify="right", no_wrap=True)
    rows = [("timing, sent", f"<= {TIMING_TARGET_MS:g}", TIMING_TARGET_MS, lambda ph: ph["timing"].get("sent_ms", [])),
            ("timing, heard", "", None, lambda ph: ph["timing"].get("arrive_ms", [])),
            ("harmonize", f"<= {HARMONY_TARGET_MS:g}", HARMONY_TARGET_MS,
             lambda ph: [x for r in ph["harmonize"] for x in r.get("reaction_ms", [])]),
            ("key to ear (harmony)", "", None, lambda ph: [x for r in ph["harmonize"] for x in r.get("key_to_ear_ms", [])])]
    for title, target_text, target, get in rows:
        cells = []
        for ph in phases.values():
            cells += _cells(summary(get(ph), target), target)
            if title == "timing, heard" and ph["timing"].get("unheard"):
                cells[-1] += f", {ph['timing']['unheard']} lost"
        t.add_row(title, target_text, *cells)
    if any(ph["harmonize"] for ph in phases.values()):
        cells = []
        for ph in phases.values():
            runs = ph["harmonize"]
            ok = sum(1 for r in runs if r.get("reaction_ms") and summary(r["reaction_ms"])["p99"] <= HARMONY_TARGET_MS)
            n = {k: sum(r.get(k, 0) for r in runs) for k in ("lost", "held_over", "unanswered")}
            cells += [f"{ok} of {len(runs)} runs", f"{n['lost']}/{n['held_over']}/{n['unanswered']}"]
        t.add_row("runs within (harmony)", f"<= {HARMONY_TARGET_MS:g}", *cells)
    return t


def realtime_notes(phases: dict) -> list[str]:
    """What the table's columns ran under: per-run harmonize p99s, errors, threads' scheduling."""
    lines = []
    for label, ph in phases.items():
        p99s = [f"{summary(r['reaction_ms'])['p99']:.2f}" if r.get("reaction_ms") else r.get("error", "none")
                for r in ph["harmonize"]]
        if p99s:
            lines.append(f"{label}: harmonize p99 per run, ms: {' '.join(p99s)}")
        th = ph["timing"].get("threads") or {}
        if th:
            others = ", ".join(f"{n} {w}" for w, n in sorted(th.get("others", {}).items()))
            lines.append(f"{label}: engine thread {th.get('engine')}; other threads of the daemon: {others}")
    first = next(iter(phases.values()), {}).get("timing", {}).get("threads")
    if first and not any(w.startswith("FIFO") for w in first.get("others", {})):
        lines.append(f"JACK server {jack_server()!r} left its clients' threads at normal priority (not started with -R): "
                     "with busy processes, JACK's own delays and losses are in the figures")
    return lines


def main(models: list[str], steps: int, jack: bool, seconds: float, rt_priority: int = 0, load: int = 0, runs: int = 1) -> dict:
    from rich.console import Console
    from rich.table import Table

    con = Console()
    names = models or [p.stem for p in bundled_models()]
    t = Table(title=f"step cost, ms (model + sampling + rules), {steps} steps, one thread")
    for col in ("model", "family", "ORT p50", "ORT p99", "torch eager p50", "torch eager p99", "speed-up p99"):
        t.add_column(col, justify="right" if col not in ("model", "family") else "left")
    results = {"steps": []}
    for n in names:
        try:
            r = step_cost(n, steps)
        except Exception as e:  # one broken artifact must not hide the others' figures
            t.add_row(n, "?", f"error: {str(e)[:60]}", "", "", "", "")
            continue
        results["steps"].append(r)
        f = lambda k: f"{r[k]:.3f}" if k in r else "n/a"
        ratio = f"{r['torch_p99'] / r['ort_p99']:.1f}x" if "torch_p99" in r and r.get("ort_p99") else "n/a"
        t.add_row(n, r["family"], f("ort_p50"), f("ort_p99"), f("torch_p50"), f("torch_p99"), ratio)
    con.print(t)
    results["tempo"] = tempo_cost(con)
    if not models or "jazz" in models:
        results["fragments"] = fragment_cost(con)
    if jack:
        harmonize = any(p.stem == "rnnrbm" for p in bundled_models()) and (not models or "rnnrbm" in models)
        phases = realtime_figures(seconds, rt_priority, load, runs, harmonize)
        if "error" in phases:
            con.print(f"JACK loopback skipped: {phases['error']}")
            return results
        con.print(realtime_table(phases, seconds, rt_priority))
        for line in realtime_notes(phases):
            con.print(line, highlight=False)
        results["phases"] = phases
        first = next(iter(phases.values()))
        results["jack"] = first["timing"]
        if first["harmonize"]:
            results["harmonize"] = first["harmonize"][0]
        pf = process_figures()
        results["process"] = pf
        if "error" in pf:
            con.print(f"improvd run: {pf['error']}")
        else:
            con.print(f"improvd run: ready in {pf['ready_s']:.2f} s (process start to ready line), resident memory peak {pf['rss_own_mb']:.1f} MB "
                      f"of its own ({pf['rss_mb']:.1f} MB counting the JACK server's shared memory it maps)")
    return results


def fragment_cost(con, runs: int = 200, model: str = "jazz") -> dict:
    """The work on the tick an answer starts, where its first note is planned: the model scores
    the candidate developments of the call (improvd.voice.Echo) together, beside the baseline of
    scoring them one line at a time in the same run (what stop 15 did: 16-19 ms on that tick)."""
    from improvd.chords import parse_chord
    from improvd.models.base import PlayContext, Step
    from improvd.motifs import Note
    from improvd.voice import Echo

    m = load_model(model)
    chord = parse_chord("C7")
    for tick in range(0, BAR_TICKS, 6):
        m.listen(Step(tick, onsets=((60 + tick % 7, 90),), releases=(), chord=chord))
    m.begin_answer(BAR_TICKS)
    ctx = PlayContext(BAR_TICKS, chord, np.random.default_rng(0), chord_at=lambda t: chord)
    rng = np.random.default_rng(0)
    lines = []
    for k in range(Echo.CANDIDATES):
        t, notes = BAR_TICKS + 6 * (k % 3), []
        for _ in range(Echo.SCORED_NOTES):
            length = int(rng.choice([3, 6, 12]))
            notes.append(Note(t, int(rng.integers(55, 80)), length))
            t += length + int(rng.choice([0, 0, 6]))
        lines.append(tuple(notes))
    out = {}
    batched = getattr(m, "_batched", False)
    for label, flag in (("together", batched), ("one at a time", False)):
        if hasattr(m, "_batched"):
            m._batched = flag
        costs = []
        for _ in range(runs):
            t0 = time.perf_counter()
            m.likelihoods(ctx, lines)
            costs.append(time.perf_counter() - t0)
        out[label] = percentiles(costs)
    if hasattr(m, "_batched"):
        m._batched = batched
    (a50, a99), (b50, b99) = out["together"], out["one at a time"]
    con.print(f"answer start, {len(lines)} candidate fragments of {Echo.SCORED_NOTES} notes scored by {model} ({runs} runs): together "
              f"p50 {a50:.2f} ms p99 {a99:.2f} ms; one at a time p50 {b50:.2f} ms p99 {b99:.2f} ms; {b99 / a99:.1f}x at p99"
              + ("" if batched else " (this graph has a fixed batch of 1: re-export it to score together)"), highlight=False)
    return {"together_ms": out["together"], "alone_ms": out["one at a time"], "batched": batched}


def tempo_cost(con, notes: int = 20000) -> dict:
    """The tempo tracker's cost per performer note-on (issue 14's target: p99 <= 50 us), on a
    swung line over chords, beside a baseline measured in the same run: the same loop calling
    a function that does nothing, so the figure is the tracker's and not the timer's."""
    from improvd.tempo import bench_update

    r = bench_update(notes)
    base = _empty_call_us(notes)
    r["baseline_p99_us"] = base
    con.print(f"tempo tracker (tempo_net = {'true' if r['net'] else 'false'}) per note-on ({notes} notes): p50 {r['p50_us']:.1f} us, p90 {r['p90_us']:.1f} us, "
              f"p99 {r['p99_us']:.1f} us, max {r['max_us']:.1f} us (target p99 <= 50 us; an empty call p99 {base:.2f} us)",
              highlight=False)
    if "tick_p99_us" in r:  # the filter's work, deferred from the note-on to the grid's estimate
        con.print(f"tempo tracker deferred work: estimate per call p50 {r['tick_p50_us']:.1f} us p99 {r['tick_p99_us']:.1f} us "
                  f"(the engine asks once a beat; the net's steps are here); all of it averaged per note {r['total_per_note_us']:.1f} us",
                  highlight=False)
    other = bench_update(notes, net=not r["net"])
    r["toggled"] = other
    con.print(f"with tempo_net = {'true' if other['net'] else 'false'}: per note-on p99 {other['p99_us']:.1f} us; "
              f"estimate p50 {other['tick_p50_us']:.1f} us p99 {other['tick_p99_us']:.1f} us; all of it averaged per note "
              f"{other['total_per_note_us']:.1f} us", highlight=False)
    return r


def _empty_call_us(n: int) -> float:
    def nothing(t, pitch, velocity):
        return None

    costs = np.empty(n)
    for i in range(n):
        t0 = time.perf_counter_ns()
        nothing(i * 0.1, 60, 64)
        costs[i] = (time.perf_counter_ns() - t0) / 1e3
    return float(np.percentile(costs, 99))


def _rss_kb() -> int:
    return int(re.search(r"VmRSS:\s+(\d+)", Path("/proc/self/status").read_text()).group(1))


def soak(minutes: float = 60.0, model: str = "jazz") -> dict:
    """``minutes`` of performance (the example blues calls, looped through five keys) replayed
    at full speed through the engine: memory growth after warm-up, late notes, hanging notes."""
    import gc

    from improvd.midi.files import Note, Performance, read_midi
    from improvd.replay import replay

    ex = Path(__file__).resolve().parents[1] / "examples"
    base = read_midi(ex / "blues_calls.mid")
    cycle = 48 * base.beat_seconds  # two calls and their answers: 12 bars
    n_cycles = max(1, int(minutes * 60 / cycle))
    notes = []
    for k in range(n_cycles):
        shift = (k % 5) - 2
        for n in base.notes:
            notes.append(Note(n.pitch + shift, n.velocity, n.start + k * cycle, n.end + k * cycle))
    perf = Performance(tuple(notes), base.tempo, base.beat_seconds, "soak")
    s = load_settings(config=None, flags={"model": model, "seed": 1, "tempo": base.tempo,
                                          "chords_file": str(ex / "blues_calls.chords")}, environ={})
    samples = []
    total_ticks = int(n_cycles * 48 * 12)
    t0 = time.perf_counter()

    def progress(tick):
        if tick % 10000 == 0:
            gc.collect()
            samples.append((tick, _rss_kb()))
    res = replay(perf, s, tail_bars=2, keep_output=False, on_progress=progress)
    wall = time.perf_counter() - t0
    warm = [kb for tick, kb in samples if tick >= total_ticks * 0.1] or [_rss_kb()]
    sc = res.engine.sched
    return {"music_minutes": n_cycles * cycle / 60, "wall_seconds": wall, "speed": n_cycles * cycle / wall,
            "notes_in": res.engine.stats.notes_in, "notes_out": res.engine.stats.notes_out,
            "rss_start_mb": warm[0] / 1024, "rss_end_mb": warm[-1] / 1024, "rss_growth_mb": (warm[-1] - warm[0]) / 1024,
            "late_planned": sc.late_planned, "hanging": len(sc.sounding), "on": sc.sent_on, "off": sc.sent_off}


_FLOOD_SRC = r"""
import random, sys, time, rtmidi
name, seconds, rate = sys.argv[1], float(sys.argv[2]), int(sys.argv[3])
src = rtmidi.MidiOut(rtmidi.API_UNIX_JACK, name + "-src")
src.open_port(next(i for i, p in enumerate(src.get_ports()) if p.startswith(name + "-in:")), "x")
rnd, sent, burst = random.Random(0), 0, max(1, rate // 1000)
held = []
t0 = time.perf_counter()
while time.perf_counter() - t0 < seconds:
    for _ in range(burst):
        if sent % 500 == 0:
            src.send_message([0xF0, 0x7E, 0x7F] + [rnd.randrange(128) for _ in range(60)] + [0xF7])
        elif sent % 97 == 0:
            src.send_message([rnd.randrange(256) for _ in range(rnd.randrange(1, 4))])
        elif sent % 2 == 0 or not held:
            p = rnd.randrange(21, 109)
            held.append(p)
            src.send_message([0x90, p, rnd.randrange(1, 128)])
        else:
            src.send_message([0x80, held.pop(rnd.randrange(len(held))), 0])
        sent += 1
    target = t0 + sent / rate
    while time.perf_counter() < target:
        time.sleep(0.0002)
for p in range(128):  # every key lifted, on every channel garbage may have touched
    for ch in range(16):
        src.send_message([0x80 | ch, p, 0])
time.sleep(0.2)
print(sent)
"""


_RECORD_SRC = r"""
import json, sys, time, rtmidi
name = sys.argv[1]
heard = []
rec = rtmidi.MidiIn(rtmidi.API_UNIX_JACK, name + "-rec")
# perf_counter is CLOCK_MONOTONIC: the same clock in every process of this machine
rec.set_callback(lambda ev, _d: heard.append([time.perf_counter(), ev[0]]))
rec.open_port(next(i for i, p in enumerate(rec.get_ports()) if p.startswith(name + "-out:")), "x")
print("ready", flush=True)
sys.stdin.readline()
rec.delete()
print(json.dumps(heard))
"""


def _far_end(name: str) -> subprocess.Popen:
    """The synth stand-in, recording the daemon's output from its own process: a JACK callback
    waiting on this process's GIL would make JACK drop events, and the count blame the daemon."""
    rec = subprocess.Popen([sys.executable, "-c", _RECORD_SRC, name], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    # connected before anything is sent: a fixed half second was not always enough with busy
    # processes running, and each message sent before it was missed then paired with a later one
    rec.stdout.readline()
    time.sleep(0.05)
    return rec


def _heard(rec: subprocess.Popen) -> list:
    """[(perf_counter time, message bytes)] the stand-in heard, once it is told to stop."""
    out, _ = rec.communicate("stop\n", timeout=30)
    lines = out.strip().splitlines()
    return [(t, tuple(m)) for t, m in json.loads(lines[-1] if lines else "[]")]


def flood(seconds: float = 10.0, rate: int = 10000, model: str = "jazz", rt_priority: int = 0) -> dict:
    """A flood on the input (note events at ``rate`` per second, sysex bursts, random bytes)
    while the daemon plays a duet: its output timing, what it dropped, its memory, and
    whether any note was left hanging at the far end."""
    name, d = _daemon("flood", mode="duet", model=model, tempo=140, rt_priority=rt_priority)
    if isinstance(d, dict):
        return d
    d.sent_log = []
    rec = _far_end(name)
    th = threading.Thread(target=d.run)
    th.start()
    time.sleep(1.0)
    rss0 = _rss_kb()
    # the flood comes from another process, as a keyboard's would: no share of our GIL
    t0 = time.perf_counter()
    tick0 = d.engine.tick
    src_proc = subprocess.run([sys.executable, "-c", _FLOOD_SRC, name, str(seconds), str(rate)],
                              capture_output=True, text=True, timeout=seconds + 30)
    sent = int(src_proc.stdout.strip() or 0)
    flood_end = time.perf_counter()
    ticks = d.engine.tick - tick0
    expected_ticks = (flood_end - t0) / d.clock.tick_seconds
    rss1 = _rss_kb()
    time.sleep(1.0)
    d.request_stop()
    th.join()
    time.sleep(0.3)
    heard = [m for _t, m in _heard(rec)]
    during = [now - due for due, now, _ in d.sent_log if t0 <= due <= flood_end]
    on = sum(1 for m in heard if m[0] & 0xF0 == 0x90 and m[2] > 0)
    sounding: dict = {}
    for m in heard:
        key = (m[0] & 0x0F, m[1]) if len(m) > 1 else None
        if m[0] & 0xF0 == 0x90 and m[2] > 0:
            sounding[key] = sounding.get(key, 0) + 1
        elif (m[0] & 0xF0 == 0x80 or (m[0] & 0xF0 == 0x90 and m[2] == 0)) and sounding.get(key):
            sounding[key] -= 1
        elif m[0] & 0xF0 == 0xB0 and m[1] == 123:  # all notes off, as a synth obeys it
            for k in [k for k in sounding if k[0] == m[0] & 0x0F]:
                sounding[k] = 0
    out = {"sent_events": sent, "ticks": ticks, "expected_ticks": expected_ticks, "rate_achieved": sent / (flood_end - t0), "dropped": d.inp.dropped,
           "ignored": d.engine.stats.ignored, "coalesced": d.coalesced, "notes_in": d.engine.stats.notes_in, "out_messages_during": len(during),
           "rss_growth_mb": (rss1 - rss0) / 1024, "note_ons_heard": on,
           "hanging": sorted(p for p, n in sounding.items() if n > 0)}
    if during:
        out["sent_p50"], out["sent_p99"] = percentiles(during)
    return out


_CHORDS_SRC = r"""
import json, os, random, sys, time, rtmidi
name, seconds = sys.argv[1], float(sys.argv[2])
try:  # a keyboard is hardware: busy processes must not delay its sends (nor part its stamps from them)
    os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(1))
except (OSError, AttributeError):
    pass
src = rtmidi.MidiOut(rtmidi.API_UNIX_JACK, name + "-kbd")
src.open_port(next(i for i, p in enumerate(src.get_ports()) if p.startswith(name + "-in:")), "x")
print("ready", flush=True)
sys.stdin.readline()
rnd = random.Random(1)
t0 = time.perf_counter()
sent = []
while time.perf_counter() - t0 < seconds:
    p = rnd.choice([67, 69, 71, 72, 74, 76, 77, 79])  # a melody in C, one note at a time
    sent.append(time.perf_counter())
    src.send_message([0x90, p, 90])
    time.sleep(rnd.choice([0.15, 0.25, 0.35]))
    src.send_message([0x80, p, 0])
    time.sleep(0.05)
print(json.dumps(sent))
"""


def _first_in(t0: float, t1: float, events: list[float]) -> float | None:
    """The first of the sorted ``events`` in [t0, t1)."""
    i = bisect.bisect_left(events, t0)
    return events[i] if i < len(events) and events[i] < t1 else None


def _sounding_at(sent_log: list, t: float) -> bool:
    """Whether any note improvd sent was still sounding (on, not yet off) just before ``t``."""
    on: set = set()
    for _due, now, data in sent_log:
        if now >= t:
            break
        if data[0] & 0xF0 == 0x90 and data[2] > 0:
            on.add((data[0] & 0x0F, data[1]))
        elif data[0] & 0xF0 == 0x80 or data[0] & 0xF0 == 0x90:
            on.discard((data[0] & 0x0F, data[1]))
        elif data[0] & 0xF0 == 0xB0 and data[1] == 123:
            on = {k for k in on if k[0] != data[0] & 0x0F}
    return bool(on)


def harmony_reactions(keys: list[float], arrivals: list[float], sent_log: list, heard: list[float]) -> dict:
    """Each key the keyboard played (its send time), matched with its note-on's stamp at the
    input port (the first in [send, next send)): the first harmony note-on sent after the stamp
    and before the next key's, and the first one heard at the far end. A key whose note-on never
    arrived is 'lost'; one that came while a harmony still sounded (a lost note-off before it, or
    legato) needs no new note-on and is 'held over'; one with no harmony before the next key is
    'unanswered'. None of the three is a reaction time, and each is counted."""
    arrivals, heard = sorted(arrivals), sorted(heard)
    ons = sorted(now for _due, now, data in sent_log if data[0] & 0xF0 == 0x90 and data[2] > 0)
    out = {"reaction_ms": [], "key_to_ear_ms": [], "lost": 0, "held_over": 0, "unanswered": 0}
    for i, k in enumerate(keys):
        nxt = keys[i + 1] if i + 1 < len(keys) else float("inf")
        a = _first_in(k, nxt, arrivals)
        if a is None:
            out["lost"] += 1
            continue
        if _sounding_at(sent_log, a):
            out["held_over"] += 1
            continue
        sent = _first_in(a, nxt, ons)
        if sent is None:
            out["unanswered"] += 1
            continue
        out["reaction_ms"].append((sent - a) * 1e3)
        ear = _first_in(k, nxt, heard)
        if ear is not None:
            out["key_to_ear_ms"].append((ear - k) * 1e3)
    return out


def harmonize_reaction(seconds: float = 10.0, model: str = "rnnrbm", rt_priority: int = 0) -> dict:
    """From a performer's note-on reaching improvd (its stamp when the engine polls the input port)
    to the first harmony note-on leaving its output port, over JACK; and, as a player would
    hear it, from the keyboard's send to the first harmony note-on heard by a synth stand-in."""
    name, d = _daemon("harm", mode="harmonize", model=model, tempo=100, rt_priority=rt_priority, passthrough=False)
    if isinstance(d, dict):
        return d
    d.sent_log = []
    arrivals = []
    drain = d._drain

    def spy(q):  # the input port's own arrival stamps of the note-ons about to be handled
        arrivals.extend(t for data, t in list(q)[: d.DRAIN] if data and data[0] & 0xF0 == 0x90 and data[2] > 0)
        drain(q)
    d._drain = spy
    rec = _far_end(name)
    kbd = subprocess.Popen([sys.executable, "-c", _CHORDS_SRC, name, str(seconds)], stdin=subprocess.PIPE,
                           stdout=subprocess.PIPE, text=True)
    kbd.stdout.readline()  # connected
    threads, running = _watch_scheduling(d)
    th = threading.Thread(target=d.run)
    th.start()
    running.wait(30)  # a new thread can wait a second for a core beside busy processes
    time.sleep(0.5)
    played, _ = kbd.communicate("go\n", timeout=seconds + 30)
    time.sleep(0.3)
    d.request_stop()
    th.join()
    keys = json.loads(played or "[]")
    heard = [t for t, m in _heard(rec) if m[0] & 0xF0 == 0x90 and m[2] > 0]
    out = harmony_reactions(keys, arrivals, d.sent_log, heard)
    out.update(notes=len(keys), answered=len(out["reaction_ms"]), threads=threads)
    if out["reaction_ms"]:
        out["p50"], out["p99"] = percentiles(np.asarray(out["reaction_ms"]) / 1e3)
        out["max"] = max(out["reaction_ms"])
    return out


_POLICIES = {0: "OTHER", 1: "FIFO", 2: "RR", 3: "BATCH", 5: "IDLE", 6: "DEADLINE"}


def _policy(tid) -> str:
    fields = Path(f"/proc/self/task/{tid}/stat").read_text().rsplit(")", 1)[1].split()
    prio, policy = int(fields[37]), _POLICIES.get(int(fields[38]), fields[38])
    return f"{policy} {prio}" if prio else policy


def thread_scheduling(exclude=()) -> dict:
    """How many of this process's threads run under each scheduling policy (JACK's among them)."""
    counts: dict = {}
    for tid in os.listdir("/proc/self/task"):
        if int(tid) in exclude:
            continue
        try:
            what = _policy(tid)
        except OSError:
            continue
        counts[what] = counts.get(what, 0) + 1
    return counts


def _watch_scheduling(d) -> tuple[dict, threading.Event]:
    """The daemon's threads' scheduling: the others' now (its ports are open, so JACK's threads
    are there), the engine's from the engine thread itself once it has set it. Nothing is read
    from this thread while the daemon plays: with the engine at SCHED_FIFO, a Python thread
    here at normal priority that a busy process preempts while it holds the GIL keeps the engine
    waiting (measured: output timing p99 21 ms with two busy processes). The event is set once
    the daemon's loop is about to start."""
    out, running = {"others": thread_scheduling(exclude={threading.get_native_id()})}, threading.Event()
    realtime = d._realtime

    def realtime_then_look():
        realtime()
        out["engine"] = _policy(threading.get_native_id())
        running.set()
    d._realtime = realtime_then_look
    return out, running
