"""Harmonize (RNN-RBM) through the daemon's engine: replay and real JACK ports; and MIDI clock
in and out over JACK."""

from __future__ import annotations

import threading
import time
import uuid
from pathlib import Path

import pytest

from improvd.config import load_settings
from improvd.midi.files import read_midi
from improvd.replay import replay
from jackkit import Player, Recorder, assert_nothing_hanging_and_close, attach, daemon, needs_jack

DATA = Path(__file__).resolve().parent / "data"


def intervals(events):
    """(start, end, pitch) of the machine's notes in a replay result."""
    out, open_ = [], {}
    for t, m in sorted(events, key=lambda x: (x[0], 0 if x[1].type == "note_off" else 1)):
        if m.type == "note_on" and m.velocity > 0:
            open_[m.note] = t
        elif m.type in ("note_on", "note_off") and m.note in open_:
            out.append((open_.pop(m.note), t, m.note))
    assert not open_, f"notes left hanging: {sorted(open_)}"
    return out


def sounding(perf_notes, t):
    return [n.pitch for n in perf_notes if n.start <= t < n.end]


@pytest.mark.parametrize("phrase", ["bebop.mid", "ballad.mid"])
def test_harmony_sits_under_the_melody_while_it_sounds(phrase):
    perf = read_midi(DATA / phrase)
    s = load_settings(None, {"model": "rnnrbm", "mode": "harmonize", "seed": 1, "tempo": round(perf.tempo, 3),
                             "voices": 3}, environ={})
    res = replay(perf, s)
    notes = intervals([(t, m) for t, m in res.machine if m.type in ("note_on", "note_off")])
    assert notes, "no harmony at all"
    pedal = [c for c in perf.controls if c[2] == 64]
    for start, end, pitch in notes:
        mid = start + 1e-4
        melody = sounding(perf.notes, mid)
        if pedal:  # a pedalled phrase: the harmony may ring with it, but never above the melody
            continue
        assert melody, f"harmony note {pitch} at {start:.3f}s while the performer plays nothing"
        assert pitch < max(melody) and pitch >= max(melody) - 24
    # at most `voices` harmony notes at once
    events = sorted([(s_, 1) for s_, _e, _p in notes] + [(e, -1) for _s, e, _p in notes], key=lambda x: (x[0], x[1]))
    now = peak = 0
    for _t, d in events:
        now += d
        peak = max(peak, now)
    assert peak <= 3


def test_common_tones_are_held_not_struck_again():
    """When the performer's notes change, a harmony pitch the new frame keeps goes on sounding:
    no harmony note ends at the very instant the same pitch starts again."""
    perf = read_midi(DATA / "ballad.mid")
    s = load_settings(None, {"model": "rnnrbm", "mode": "harmonize", "seed": 1, "tempo": round(perf.tempo, 3),
                             "voices": 3}, environ={})
    res = replay(perf, s)
    notes = intervals([(t, m) for t, m in res.machine if m.type in ("note_on", "note_off")])
    starts = {(round(st, 6), p) for st, _e, p in notes}
    restruck = [(round(e, 6), p) for _s, e, p in notes if (round(e, 6), p) in starts]
    assert not restruck, f"harmony pitches struck again where they could have been held: {restruck[:5]}"
    # and the test can see it: some harmony note outlasts a change of the performer's notes
    changes = sorted({round(n.start, 6) for n in perf.notes})
    assert any(any(st < c < e - 1e-6 for c in changes) for st, e, _p in notes), "no harmony note spans a melody change"


def test_harmony_reacts_on_the_note_on_not_on_the_next_tick():
    perf = read_midi(DATA / "bebop.mid")
    s = load_settings(None, {"model": "rnnrbm", "mode": "harmonize", "seed": 2, "tempo": round(perf.tempo, 3)}, environ={})
    res = replay(perf, s)
    onsets = sorted({round(n.start, 6) for n in perf.notes})
    harmony_starts = sorted({round(t, 6) for t, m in res.machine if m.type == "note_on" and m.velocity > 0})
    at_onset = [t for t in harmony_starts if t in onsets]
    assert len(at_onset) >= len(harmony_starts) // 2, "harmony should start with the performer's notes"


@pytest.mark.jack
@needs_jack
def test_harmonize_live_over_jack_ends_every_note():
    name = f"hz{uuid.uuid4().hex[:6]}"
    with daemon(["--virtual", "--name", name, "--model", "rnnrbm", "--mode", "harmonize", "--no-passthrough"],
                ports=(f"{name}-out:out", f"{name}-in:in")):
        rec, kbd = attach(name)
        kbd.send([0x90, 72, 90])
        t_on = time.perf_counter()
        time.sleep(0.4)
        on, _ = rec.notes()
        assert on and on[0][0] - t_on < 0.05, "no harmony within 50 ms of the note-on"
        assert all(pitch < 72 for _t, pitch in on)
        kbd.send([0x80, 72, 0])
        time.sleep(0.3)
        assert rec.hanging() == [], "the harmony outlived the performer's note"
        kbd.send([0x90, 76, 90])
        time.sleep(0.3)
    assert_nothing_hanging_and_close(rec, kbd)


@pytest.mark.jack
@needs_jack
def test_clock_in_sets_the_tempo_and_clock_out_sends_24_ppqn():
    from improvd.live import Daemon

    name = f"clk{uuid.uuid4().hex[:6]}"
    d = Daemon(load_settings(flags=dict(virtual=True, client_name=name, backend="jack", clock_in=True, clock_out=True,
                                        tempo=120), environ={}))
    rec = Recorder(f"{name}-out:out", name=f"{name}r")
    th = threading.Thread(target=d.run, kwargs={"duration": 4.5})
    th.start()
    time.sleep(0.3)
    kbd = Player(f"{name}k", virtual=False, target=f"{name}-in:in")
    try:
        kbd.send([0xFA])  # start
        pulse = 60.0 / 100 / 24  # a drum machine at 100 BPM
        t0 = time.perf_counter()
        for i in range(24 * 5):
            while time.perf_counter() < t0 + i * pulse:
                time.sleep(0.0005)
            kbd.send([0xF8])
        assert d.clock.tempo == pytest.approx(100, abs=2)
    finally:
        th.join()
        kbd.close()
    time.sleep(0.2)
    pulses = [t for t, data in rec.events if data == [0xF8]]
    transport = [data for _t, data in rec.events if data[0] in (0xFA, 0xFC)]
    assert transport[0] == [0xFA] and transport[-1] == [0xFC] and transport.count([0xFC]) == 1
    # improvd's own clock out: 24 a beat at the tempo it followed
    late = [t for t in pulses if t > t0 + 2.0]
    rate = (len(late) - 1) / (late[-1] - late[0])
    assert rate == pytest.approx(100 / 60 * 24, rel=0.05)
    rec.close()
