"""Faults on stage, each followed by a check that the daemon plays on (or left cleanly) and that
a recorder on its output saw a note-off for every note-on: the JACK server dying and coming
back, the synth's port vanishing mid-note, SIGHUP with a broken config, SIGINT."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
import uuid

import pytest
import rtmidi

from jackkit import Player, Recorder, needs_jack, start_daemon, wait_for_port

pytestmark = [pytest.mark.jack, needs_jack]
PHRASE = [(60, 1), (64, 1), (67, 1), (72, 1)]


def uid(prefix):
    return f"{prefix}{uuid.uuid4().hex[:6]}"


def answered(rec, after: float, within: float = 3.0) -> bool:
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < within:
        if any(t > after for t, _ in rec.notes()[0]):
            return True
        time.sleep(0.05)
    return False


@pytest.fixture
def private_jack(monkeypatch):
    """A JACK server of our own, so killing it cannot disturb the other tests' server."""
    if not shutil.which("jackd"):
        pytest.skip("jackd is not installed")
    name = uid("imptest")
    monkeypatch.setenv("JACK_DEFAULT_SERVER", name)
    cmd = ["jackd", "-n", name, "--no-realtime", "-d", "dummy", "-r", "48000", "-p", "64"]
    procs = []

    def start():
        p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        procs.append(p)
        for _ in range(50):
            try:
                m = rtmidi.MidiOut(rtmidi.API_UNIX_JACK, uid("probe"))
                m.get_ports()
                m.delete()
                return p
            except Exception:
                time.sleep(0.1)
        raise RuntimeError("private JACK server did not start")

    def stop(p):
        p.terminate()
        p.wait(timeout=10)

    start()
    yield start, stop, procs
    for p in procs:
        if p.poll() is None:
            stop(p)


def test_jack_server_stops_and_comes_back(private_jack):
    start, stop, procs = private_jack
    name = uid("srv")
    d = start_daemon(["--virtual", "--name", name, "--wait", "500ms", "--tempo", "120", "--bars", "1", "--seed", "1"])
    try:
        wait_for_port(f"{name}-out:out")
        rec, kbd = Recorder(f"{name}-out:out", uid("r")), Player(uid("k"), virtual=False, target=f"{name}-in:in")
        end = kbd.phrase(PHRASE, 0.5)
        if not answered(rec, end):
            d.kill()
            raise AssertionError(f"no answer before the fault; the recorder heard {rec.events[:8]}; "
                                 f"the daemon said: {d.communicate()[1][-1500:]}")
        stop(procs[-1])
        time.sleep(2.0)
        assert d.poll() is None, "improvd died with the JACK server"
        start()
        time.sleep(2.5)  # the daemon checks about once a second
        wait_for_port(f"{name}-out:out")
        rec2, kbd2 = Recorder(f"{name}-out:out", uid("r")), Player(uid("k"), virtual=False, target=f"{name}-in:in")
        end = kbd2.phrase(PHRASE, 0.5)
        assert answered(rec2, end), "no answer after the JACK server came back"
        d.send_signal(signal.SIGTERM)
        out, err = d.communicate(timeout=10)
        assert d.returncode == 0, err
        assert "JACK server is gone" in err and "JACK server is back" in err
        time.sleep(0.2)
        assert rec2.hanging() == []
    finally:
        if d.poll() is None:
            d.kill()


@pytest.mark.parametrize("gap", [0.3, 2.5], ids=["quick", "slow"])
def test_jack_server_killed_and_restarted(private_jack, gap):
    """SIGKILL leaves the server's socket behind, so a restart is seen as a new server, not a
    gone one: improvd must close every client of the dead server before opening new ones
    (else its input vanished from the graph and SIGTERM segfaulted in libjack)."""
    start, _stop, procs = private_jack
    name = uid("kil")
    d = start_daemon(["--virtual", "--name", name, "--wait", "500ms", "--tempo", "240", "--bars", "1", "--seed", "1"])
    try:
        wait_for_port(f"{name}-out:out")
        procs[-1].kill()
        procs[-1].wait(timeout=10)
        time.sleep(gap)
        start()
        time.sleep(2.5)  # the daemon checks about once a second
        wait_for_port(f"{name}-in:in")
        wait_for_port(f"{name}-out:out")
        rec, kbd = Recorder(f"{name}-out:out", uid("r")), Player(uid("k"), virtual=False, target=f"{name}-in:in")
        end = kbd.phrase(PHRASE, 0.25)
        assert answered(rec, end), "deaf after the JACK server was killed and restarted"
        d.send_signal(signal.SIGTERM)
        _out, err = d.communicate(timeout=10)
        assert d.returncode == 0, err[-1500:]
        assert "JACK server is back" in err
        time.sleep(0.2)
        assert rec.hanging() == []
        rec.close()
        kbd.close()
    finally:
        if d.poll() is None:
            d.kill()


def test_synth_port_vanishes_mid_note_and_returns():
    """improvd plays into a named synth port; the synth disappears mid-answer and comes back:
    improvd keeps running and the returning synth is told to end what it heard start."""
    name, synth = uid("out"), uid("syn")
    s1 = rtmidi.MidiIn(rtmidi.API_UNIX_JACK, synth)
    heard1 = []
    s1.set_callback(lambda ev, _d: heard1.append(ev[0]))
    s1.open_virtual_port("in")
    d = start_daemon(["--name", name, "--out", synth, "--mode", "duet", "--tempo", "200", "--seed", "4",
                      "--no-passthrough"])
    try:
        wait_for_port(f"{name}-out:out")
        deadline = time.time() + 10
        sounding: set = set()
        while time.time() < deadline and not sounding:
            sounding = set()
            for m in list(heard1):
                if m[0] & 0xF0 == 0x90 and m[2] > 0:
                    sounding.add(m[1])
                elif m[0] & 0xF0 == 0x80:
                    sounding.discard(m[1])
            if not sounding:
                time.sleep(0.002)
        assert sounding, "the synth heard no note start"
        s1.delete()  # unplugged mid-note
        time.sleep(2.0)
        assert d.poll() is None
        s2 = rtmidi.MidiIn(rtmidi.API_UNIX_JACK, synth)
        heard2 = []
        s2.set_callback(lambda ev, _d: heard2.append(ev[0]))
        s2.open_virtual_port("in")
        time.sleep(2.5)
        ends = {m[1] for m in heard2 if m[0] & 0xF0 == 0x80} | ({"all"} if any(m[0] & 0xF0 == 0xB0 and m[1] == 123 for m in heard2) else set())
        assert "all" in ends, f"no all-notes-off on return; the synth heard {[list(m) for m in heard2][:60]}"
        d.send_signal(signal.SIGTERM)
        _out, err = d.communicate(timeout=10)
        assert d.returncode == 0, err
        assert "is gone" in err and "is back" in err
        time.sleep(0.2)
        s2.delete()
    finally:
        if d.poll() is None:
            d.kill()


def test_sighup_with_a_broken_config_keeps_the_running_settings(tmp_path):
    cfg = tmp_path / "improvd.toml"
    cfg.write_text("tempo = 120.0\nwait = \"500ms\"\nbars = 1\n")
    name = uid("hup")
    d = start_daemon(["--virtual", "--name", name, "--config", str(cfg), "--seed", "2"])
    try:
        wait_for_port(f"{name}-out:out")
        rec, kbd = Recorder(f"{name}-out:out", uid("r")), Player(uid("k"), virtual=False, target=f"{name}-in:in")
        cfg.write_text("tempo = \"fast\"\n[[broken\n")
        d.send_signal(signal.SIGHUP)
        time.sleep(0.5)
        assert d.poll() is None
        end = kbd.phrase(PHRASE, 0.5)
        assert answered(rec, end), "no answer after a refused reload"
        cfg.write_text("tempo = 90.0\nwait = \"500ms\"\nbars = 1\n")
        d.send_signal(signal.SIGHUP)
        time.sleep(0.5)
        d.send_signal(signal.SIGINT)
        _out, err = d.communicate(timeout=10)
        assert d.returncode == 0, err
        refused = [ln for ln in err.splitlines() if "reload refused" in ln]
        assert len(refused) == 1 and "improvd.toml" in refused[0]
        assert any("settings reloaded" in ln for ln in err.splitlines())
        time.sleep(0.2)
        assert rec.hanging() == []
    finally:
        if d.poll() is None:
            d.kill()
