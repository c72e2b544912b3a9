"""``improvd bench``: the figures the issues set targets for, measured in one run.

- step cost (model + sampling + rules) p50/p99 per bundled model with onnxruntime, beside the
  same weights stepped by torch eager (when torch is installed): the ratio is the figure;
- output timing error (sent minus due) p50/p99 of the live daemon over a JACK loopback, and
  the arrival delay a client on the other end sees;
- resident memory and time-to-ready of ``improvd run`` as a separate process.

All on one core (the daemon pins onnxruntime to one thread), on whatever machine runs it.
"""

from __future__ import annotations

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
                                   starting=tick == 0, extra={"chord_at": prog.at, "onset": tick % 12 == 0}))
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
    if m.family != "jazz":
        return None
    try:
        import torch
        from training.jazz import TorchJazzBaseline
    except ImportError:
        return None
    torch.set_num_threads(1)
    b = TorchJazzBaseline(m.path)
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
    th = threading.Thread(target=d.run, kwargs={"duration": seconds})
    th.start()
    th.join()
    time.sleep(0.3)
    arrivals = _heard(rec)
    errs = [now - due for due, now, _ in d.sent_log]
    out = {"messages": len(errs)}
    if errs:
        out["sent_p50"], out["sent_p99"] = percentiles(errs)
    # arrival: pair each sent message with the first unclaimed identical message heard after it
    from collections import defaultdict, deque
    heard = defaultdict(deque)
    for t, data in arrivals:
        heard[tuple(data)].append(t)
    delays = []
    for due, now, data in d.sent_log:
        q = heard[tuple(data)]
        while q and q[0] < now:
            q.popleft()
        if q:
            delays.append(q.popleft() - due)
    if delays:
        out["arrive_p50"], out["arrive_p99"] = percentiles(delays)
    out["step_p50"], out["step_p99"] = d.engine.stats.step_percentiles()
    return out


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


def main(models: list[str], steps: int, jack: bool, seconds: float, rt_priority: int = 0) -> dict:
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
    if jack:
        jt = jack_timing(seconds, rt_priority=rt_priority)
        results["jack"] = jt
        if jt and "error" not in jt:
            con.print(f"JACK loopback, {seconds:g} s duet, rt priority {rt_priority or 'off'}, {jt['messages']} messages: sent-minus-due p50 {jt.get('sent_p50', float('nan')):.3f} ms "
                      f"p99 {jt.get('sent_p99', float('nan')):.3f} ms; arrival at the client p50 {jt.get('arrive_p50', float('nan')):.3f} ms "
                      f"p99 {jt.get('arrive_p99', float('nan')):.3f} ms; engine tick p99 {jt['step_p99']:.3f} ms")
            if any(p.stem == "rnnrbm" for p in bundled_models()) and (not models or "rnnrbm" in models):
                hr = harmonize_reaction(seconds, rt_priority=rt_priority)
                results["harmonize"] = hr
                if "p99" in hr:
                    con.print(f"harmonize (rnnrbm) over JACK: performer note-on at the input port to harmony note-on sent, "
                              f"{hr['answered']} of {hr['notes']} notes: p50 {hr['p50']:.3f} ms p99 {hr['p99']:.3f} ms max {hr['max']:.3f} ms")
            pf = process_figures()
            results["process"] = pf
            if "error" in pf:
                con.print(f"improvd run: {pf['error']}")
            else:
                con.print(f"improvd run: ready in {pf['ready_s']:.2f} s (process start to ready line), resident memory peak {pf['rss_own_mb']:.1f} MB "
                          f"of its own ({pf['rss_mb']:.1f} MB counting the JACK server's shared memory it maps)")
        else:
            con.print(f"JACK loopback skipped: {jt.get('error') if jt else 'no JACK'}")
    return results


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
sys.stdin.readline()
rec.delete()
print(json.dumps(heard))
"""


def _far_end(name: str) -> subprocess.Popen:
    """The synth stand-in, recording the daemon's output from its own process: a JACK callback
    waiting on this process's GIL would make JACK drop events, and the count blame the daemon."""
    rec = subprocess.Popen([sys.executable, "-c", _RECORD_SRC, name], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    time.sleep(0.5)
    return rec


def _heard(rec: subprocess.Popen) -> list:
    """[(perf_counter time, message bytes)] the stand-in heard, once it is told to stop."""
    out, _ = rec.communicate("stop\n", timeout=30)
    return [(t, tuple(m)) for t, m in json.loads(out or "[]")]


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
import random, sys, time, rtmidi
name, seconds = sys.argv[1], float(sys.argv[2])
src = rtmidi.MidiOut(rtmidi.API_UNIX_JACK, name + "-kbd")
src.open_port(next(i for i, p in enumerate(src.get_ports()) if p.startswith(name + "-in:")), "x")
rnd = random.Random(1)
t0 = time.perf_counter()
n = 0
while time.perf_counter() - t0 < seconds:
    p = rnd.choice([67, 69, 71, 72, 74, 76, 77, 79])  # a melody in C, one note at a time
    src.send_message([0x90, p, 90])
    time.sleep(rnd.choice([0.15, 0.25, 0.35]))
    src.send_message([0x80, p, 0])
    time.sleep(0.05)
    n += 1
print(n)
"""


def harmonize_reaction(seconds: float = 10.0, model: str = "rnnrbm", rt_priority: int = 0) -> dict:
    """From a performer's note-on reaching improvd's input port (the MIDI thread's timestamp)
    to the first harmony note-on leaving its output port, over JACK."""
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
    th = threading.Thread(target=d.run)
    th.start()
    time.sleep(0.5)
    played = subprocess.run([sys.executable, "-c", _CHORDS_SRC, name, str(seconds)], capture_output=True, text=True,
                            timeout=seconds + 30)
    time.sleep(0.3)
    d.request_stop()
    th.join()
    ons = sorted(now for _due, now, data in d.sent_log if data[0] & 0xF0 == 0x90 and data[2] > 0)
    reactions = []
    for i, a in enumerate(arrivals):
        nxt = arrivals[i + 1] if i + 1 < len(arrivals) else float("inf")
        first = next((t for t in ons if a <= t < nxt), None)
        if first is not None:
            reactions.append(first - a)
    out = {"notes": int(played.stdout.strip() or 0), "answered": len(reactions)}
    if reactions:
        out["p50"], out["p99"] = percentiles(reactions)
        out["max"] = max(reactions) * 1e3
    return out
