"""Performer controls: passthrough, metronome, model switching, mutate, loop, listen lengths,
tempo by CC and tap, the state LED, MIDI learn and rendering. Replay or real JACK ports."""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
import tomllib
import uuid
from pathlib import Path

import mido
import numpy as np
import pytest

from improvd.clock import Clock
from improvd.config import load_settings
from improvd.session import build
from improvd.midi.files import Note, Performance
from improvd.models import load_model
from improvd.replay import replay
from improvd.scheduler import Scheduler
from jackkit import Player, Recorder, assert_nothing_hanging_and_close, needs_jack

REPO = Path(__file__).resolve().parents[1]
BEAT = 0.5  # 120 BPM


def phrase(start_beat=0.0, pitches=(60, 62, 64, 65, 67, 65, 64, 62), length=0.5):
    return [Note(p, 90, (start_beat + i * length) * BEAT, (start_beat + (i + 0.9) * length) * BEAT) for i, p in enumerate(pitches)]


def perf(notes, controls=()):
    return Performance(tuple(notes), 120.0, BEAT, "test", 480, tuple(controls))


def settings(**flags):
    return load_settings(None, {"tempo": 120, "seed": 3, **flags}, environ={})


def ons(res, channel=None):
    return [(t, m.note) for t, m in res.machine if m.type == "note_on" and m.velocity > 0 and (channel is None or m.channel == channel)]


class Harness:
    """The engine on a virtual clock, driven message by message (what replay does)."""

    def __init__(self, **flags):
        self.s = settings(**flags)
        self.out = []
        session = build(self.s, lambda m, due, now: self.out.append((due, m)), rng=np.random.default_rng(5), max_note=4.0)
        self.clock, self.sched, self.eng = session.clock, session.sched, session.engine
        self.tick = 0

    def until(self, beat: float, msgs=()):
        """Run ticks up to ``beat``; ``msgs``: [(beat, Message)] delivered on the way."""
        pending = sorted(msgs, key=lambda x: x[0])
        while self.tick <= beat * 12:
            t = self.clock.time_of(self.tick)
            while pending and pending[0][0] * BEAT <= t:
                b, m = pending.pop(0)
                self.sched.flush(b * BEAT)
                self.eng.on_message(m, b * BEAT)
            self.sched.flush(t)
            self.eng.on_tick(self.tick, t)
            self.tick += 1

    def play_phrase(self, start_beat, pitches=(60, 62, 64, 65)):
        msgs = []
        for i, p in enumerate(pitches):
            msgs.append((start_beat + i * 0.5, mido.Message("note_on", note=p, velocity=90)))
            msgs.append((start_beat + i * 0.5 + 0.45, mido.Message("note_off", note=p, velocity=0)))
        return msgs

    def notes_on(self):
        return [(t, m.note) for t, m in self.out if m.type == "note_on" and m.velocity > 0]


def cc(control, value):
    return mido.Message("control_change", control=control, value=value)


# -- metronome -----------------------------------------------------------------------------------
def test_metronome_clicks_every_beat_on_its_channel_accenting_the_bar():
    res = replay(perf(phrase()), settings(metronome="on", bars=1))
    clicks = ons(res, channel=9)
    assert len(clicks) >= 12
    times = np.array([t for t, _ in clicks])
    assert np.allclose(np.diff(times), BEAT, atol=1e-6)
    for t, note in clicks:
        beat = round(t / BEAT)
        assert note == (76 if beat % 4 == 0 else 77)


def test_count_in_clicks_only_before_the_first_phrase():
    res = replay(perf(phrase(start_beat=4)), settings(metronome="count-in", count_in_bars=1))
    clicks = ons(res, channel=9)
    assert [round(t / BEAT) for t, _ in clicks] == [1, 2, 3]  # tick 0 is planned before the clock starts
    assert not ons(replay(perf(phrase(start_beat=4)), settings()), channel=9)


# -- listen lengths ------------------------------------------------------------------------------
def test_min_phrase_ignores_a_stray_note():
    stray = [Note(60, 90, 0.0, 0.2)]
    assert not ons(replay(perf(stray), settings(min_phrase="2beats")), channel=0)
    assert ons(replay(perf(stray), settings()), channel=0)


def test_max_listen_answers_over_a_performer_who_does_not_stop():
    long = phrase(pitches=tuple(60 + (i * 7) % 12 for i in range(64)))  # 32 beats of 8ths, no pause
    res = replay(perf(long), settings(max_listen="2bars", bars=1))
    first = ons(res, channel=0)[0][0]
    assert 8 * BEAT - 1e-6 <= first <= 8 * BEAT + BEAT / 12 + 1e-6
    assert first < long[-1].end, "the answer should come while the performer still plays"
    without = replay(perf(long), settings(bars=1))
    assert ons(without, channel=0)[0][0] > long[-1].end


# -- tempo ---------------------------------------------------------------------------------------
def test_tempo_cc_and_tap_tempo():
    h = Harness(tap_key=21)
    h.until(1, [(0.5, cc(h.s.cc.tempo, 40))])  # 40 + 2 * 40 = 120 BPM
    assert h.clock.tempo == pytest.approx(120)
    h.until(2, [(1.1, cc(h.s.cc.tempo, 70))])
    assert h.clock.tempo == pytest.approx(180)
    taps = [(3 + i * (100 / 180 * 1), mido.Message("note_on", note=21, velocity=100)) for i in range(3)]
    h.until(6, taps)  # three taps 1/3 s apart... at the harness's beat scale: 100 BPM expected
    assert h.clock.tempo == pytest.approx(60 / (100 / 180 * BEAT), rel=1e-3)
    assert h.eng.stats.notes_in == 0, "the tap key is not music"


# -- state LED, mutate, loop -----------------------------------------------------------------------
def test_state_cc_follows_idle_listening_answering():
    h = Harness(**{"bars": 1, "wait": "1beat"})
    h.s.cc.state = 30
    h.until(12, h.play_phrase(0))
    states = [m.value for _t, m in h.out if m.type == "control_change" and m.control == 30]
    assert states[:3] == [64, 127, 0]


def test_mutate_gives_a_new_answer_to_the_same_phrase():
    h = Harness(bars=1, wait="1beat")
    h.until(4, h.play_phrase(0))
    assert h.eng.state == "answering"
    h.until(7)
    first = [p for t, p in h.notes_on() if 3 <= t / BEAT < 7]
    n_before = len(h.out)
    h.until(12, [(7.0, cc(h.s.cc.mutate, 127))])
    second = [p for t, m in h.out[n_before:] if m.type == "note_on" and m.velocity > 0 for p in [m.note]]
    assert first and second and first != second
    assert h.eng.state == "idle"


def test_loop_repeats_the_last_answer_until_released():
    h = Harness(bars=1, wait="1beat")
    h.until(8, h.play_phrase(0))
    answer = [(round(t / BEAT * 12) - 36, p) for t, p in h.notes_on()]
    assert answer
    start = 9 * 12 + 1  # the loop starts on the tick after the control
    h.until(9 + 8.5, [(9.0, cc(h.s.cc.loop, 127))])
    looped = [(round(t / BEAT * 12) - start, p) for t, p in h.notes_on()[len(answer):]]
    first_pass = [x for x in looped if x[0] < 48]
    second_pass = [(r - 48, p) for r, p in looped if 48 <= r < 96]
    assert first_pass == answer and second_pass == answer
    h.until(20, [(17.6, cc(h.s.cc.loop, 0))])
    after = [t for t, p in h.notes_on() if t > 17.6 * BEAT + 1e-6]
    assert not after and not h.sched.sounding


# -- model switching ------------------------------------------------------------------------------
def test_program_change_switches_model_at_the_next_bar_keeping_notes_whole():
    h = Harness(mode="duet", models=["deepjazz"])
    assert set(h.eng.models) == {"jazz", "deepjazz"}
    h.until(5.5, [(5.2, mido.Message("program_change", program=1))])
    assert h.eng.model.card.name == "jazz"  # not before the bar
    planned_offs = [(e[0], e[4]) for e in h.sched._heap if e[3] == "off"]
    h.until(8.2)
    assert h.eng.model.card.name == "deepjazz"
    offs = [(t, m.note) for t, m in h.out if m.type == "note_off"]
    for due, pitch in planned_offs:  # whatever sounded at the switch ended when it was meant to
        assert any(abs(t - due) < 1e-9 and p == pitch for t, p in offs) or due > 8.2 * BEAT
    h.until(16)
    assert [t for t, _ in h.notes_on() if t >= 8 * BEAT], "the new model plays"


def test_every_loaded_model_keeps_listening():
    h = Harness(models=["deepjazz"], bars=1, wait="1beat")
    before = h.eng.models["deepjazz"].snapshot()
    h.until(3, h.play_phrase(0))
    after = h.eng.models["deepjazz"].snapshot()
    assert not np.allclose(np.asarray(before[0]), np.asarray(after[0])), "the idle model's state did not move"


# -- passthrough and learn over real ports --------------------------------------------------------
def first_offs_only(events) -> list:
    """(channel, pitch) of each note-on and of the note-off that ends it, in order; the
    note-offs the daemon repeats for a note already ended (self-healing) are left out."""
    heard, sounding = [], set()
    for _t, d in events:
        if d[0] & 0xF0 not in (0x80, 0x90):
            continue
        key = (d[0] & 0x0F, d[1])
        if d[0] & 0xF0 == 0x90 and d[2] > 0:
            sounding.add(key)
            heard.append(key)
        elif key in sounding:
            sounding.discard(key)
            heard.append(key)
    return heard


@pytest.mark.jack
@needs_jack
@pytest.mark.parametrize("flags,expect", [([], "same"), (["--passthrough-channel", "3"], "ch3"), (["--no-passthrough"], "none")])
def test_passthrough(flags, expect):
    from jackkit import attach, daemon

    name = f"pt{uuid.uuid4().hex[:6]}"
    with daemon(["--virtual", "--name", name, "--wait", "4bars", *flags], ports=(f"{name}-out:out", f"{name}-in:in")):
        rec, kbd = attach(name)
        kbd.phrase([(60, 0.5), (64, 0.5)], 0.5)
        time.sleep(0.3)
        heard = first_offs_only(rec.events)
        if expect == "none":
            assert heard == []
        else:
            ch = 0 if expect == "same" else 2
            assert heard == [(ch, 60), (ch, 60), (ch, 64), (ch, 64)]
        kbd.send([0x90, 67, 80])  # held at exit: improvd ends it
        time.sleep(0.2)
    assert_nothing_hanging_and_close(rec, kbd)


@pytest.mark.jack
@needs_jack
def test_midi_learn_writes_the_cc_table(tmp_path):
    cfg = tmp_path / "improvd.toml"
    cfg.write_text('tempo = 100.0  # keep me\n\n[cc]\ntemperature = 1  # mod wheel\n\n[rules]\nmax_leap = 9\n')
    name = f"lrn{uuid.uuid4().hex[:6]}"
    kbd = Player(name)  # a controller with its own virtual port
    p = subprocess.Popen([sys.executable, "-m", "improvd", "learn", "--backend", "jack", "--in", name,
                          "--config", str(cfg), "--timeout", "3", "--control", "temperature", "--control", "mutate",
                          "--control", "loop"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        time.sleep(1.2)
        kbd.send([0xB0, 74, 10])  # a filter knob for temperature
        kbd.send([0xB0, 74, 20])
        time.sleep(1.0)
        kbd.send([0xB0, 80, 127])  # a pad for mutate; loop is left alone
        out, err = p.communicate(timeout=20)
    finally:
        kbd.close()
    assert p.returncode == 0, err
    data = tomllib.loads(cfg.read_text())
    assert data["cc"]["temperature"] == 74 and data["cc"]["mutate"] == 80 and "loop" not in data["cc"]
    assert data["tempo"] == 100.0 and data["rules"]["max_leap"] == 9
    assert "# keep me" in cfg.read_text() and "# mod wheel" in cfg.read_text()


# -- render --------------------------------------------------------------------------------------
def test_render_writes_audio_or_says_what_to_install(tmp_path):
    out = tmp_path / "a.wav"
    r = subprocess.run([sys.executable, "-m", "improvd", "render", str(REPO / "examples" / "blues_calls.mid"), "-o", str(out)],
                       capture_output=True, text=True, timeout=120)
    if shutil.which("fluidsynth") and any(Path(p).exists() for p in ("/usr/share/sounds/sf2/FluidR3_GM.sf2", "/usr/share/sounds/sf2/default-GM.sf2")):
        assert r.returncode == 0, r.stderr
        import wave
        with wave.open(str(out)) as w:
            frames = np.frombuffer(w.readframes(w.getnframes()), np.int16)
            assert w.getnframes() / w.getframerate() > 10
        assert np.abs(frames).max() > 1000, "rendered silence"
    else:
        assert r.returncode == 2 and "apt-get install" in r.stderr and not out.exists()


def test_render_refuses_a_file_that_is_no_soundfont(tmp_path):
    """FluidSynth only warns about a bad soundfont and renders with its default one: render
    --soundfont notasoundfont reported success with the wrong instrument sounds."""
    from improvd import ImprovdError
    from improvd.render import find_soundfont, is_soundfont

    fake = tmp_path / "notasoundfont.sf2"
    fake.write_text("hello")
    riff_wave = tmp_path / "a.sf2"
    riff_wave.write_bytes(b"RIFF\x04\x00\x00\x00WAVE")
    for bad in (fake, riff_wave, tmp_path):
        with pytest.raises(ImprovdError, match="not a SoundFont") as e:
            find_soundfont(str(bad))
        assert "\n" not in str(e.value)
    real = tmp_path / "tiny.sf2"
    real.write_bytes(b"RIFF\x04\x00\x00\x00sfbk")
    assert is_soundfont(real) and find_soundfont(str(real)) == real


def test_the_mod_wheel_at_rest_is_the_usual_temperature_and_full_is_wild():
    from improvd.controls import WILD, temperature_of

    assert temperature_of(0, 1.0) == 1.0 and temperature_of(0, 0.8) == 0.8
    assert abs(temperature_of(127, 0.8) - WILD) < 1e-9
    assert 0.8 < temperature_of(64, 0.8) < WILD
    assert temperature_of(100, 0.3) >= 0.3  # never colder than the rest position


def test_the_loop_guard_trips_on_a_loop_and_not_on_a_line():
    from improvd.voice import LoopGuard

    guard = LoopGuard()
    for pitch in [60, 62, 64, 65, 67, 69, 71, 72, 71, 69, 67, 65, 64, 62, 60, 59]:
        guard.note(pitch)
    assert guard.trips == 0 and not guard.ban
    for pitch in [77, 77, 77, 78] * 3:
        guard.note(pitch)
    assert guard.trips >= 1 and 77 in guard.ban


def test_the_echo_controller_sets_how_much_answers_develop_the_call():
    from improvd.config import load_settings
    from improvd.session import build

    s = load_settings(None, {"model": "jazz", "seed": 1, "tempo": "120"}, environ={})
    session = build(s, lambda *a: None)
    assert session.engine.voice.echo == 0.85
    session.engine.on_message(mido.Message("control_change", control=s.cc.echo, value=0), 0.0)
    assert session.engine.voice.echo == 0.0
    session.engine.on_message(mido.Message("control_change", control=s.cc.echo, value=127), 0.1)
    assert session.engine.voice.echo == 1.0
