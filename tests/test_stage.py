"""Stage faults, each checked where the performer hears it: at a synth stand-in on the far end
of a real JACK port. Abnormal exits, a synth path that loses messages, a performer note-off
lost on the way in, a keyboard unplugged with a key down, reloads with a wrong config."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid

import pytest

from jackkit import Player, Recorder, needs_jack, start_daemon, wait_for_port

pytestmark = [pytest.mark.jack, needs_jack]


def uid(prefix: str) -> str:
    return f"{prefix}{uuid.uuid4().hex[:6]}"


def wait_until(cond, timeout: float, step: float = 0.01) -> bool:
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < timeout:
        if cond():
            return True
        time.sleep(step)
    return False


def sounding_now(synth: Recorder) -> list:
    return [n for n in synth.sounded() if n[3] >= time.perf_counter() - 1e-3 and n[3] == n[3]]


def port_exists(name: str) -> bool:
    out = subprocess.run(["jack_lsp"], capture_output=True, text=True, timeout=10).stdout
    return name in out.splitlines()


def hanging(synth: Recorder) -> list:
    """Keys the synth still sounds after everything has had time to arrive."""
    time.sleep(0.3)
    return synth.hanging()


def stop(d: subprocess.Popen, sig=signal.SIGTERM, timeout: float = 10.0) -> tuple[int, str]:
    if d.poll() is None:
        d.send_signal(sig)
    try:
        _out, err = d.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        d.kill()
        _out, err = d.communicate()
        raise AssertionError(f"improvd did not exit within {timeout} s of {signal.Signals(sig).name}: {err[-1500:]}")
    return d.returncode, err


def duet_into(synth_name: str, name: str, *extra: str, env=None) -> subprocess.Popen:
    """A daemon playing all the time into the synth port ``synth_name:in``."""
    d = start_daemon(["--name", name, "--out", f"{synth_name}:in", "--mode", "duet", "--tempo", "200",
                      "--seed", "3", *extra], env=env)
    wait_for_port(f"{name}-out:out")
    return d


def playing(synth: Recorder) -> bool:
    """True once some note has started and not ended at the synth.

    "Now" is taken once, before the notes are paired: pairing thousands of messages (a panic's
    2,048 note-offs are among them on a restart) can take over a millisecond on a loaded box,
    and a sounding note's end (the time pairing began) then looked older than a later "now"."""
    def sounding() -> bool:
        now = time.perf_counter()
        return any(end >= now for *_k, _s, end in synth.sounded(until=now))
    return wait_until(sounding, 10)


def silent_why(d: subprocess.Popen, synth: Recorder) -> str:
    """What to show when a daemon that should be playing is not heard: whether it lives, what the
    synth got, and the daemon's own last words (it is stopped to read them)."""
    alive = d.poll() is None
    rc, err = stop(d)
    return (f"the synth heard {len(synth.events)} messages; the daemon was {'alive' if alive else f'gone (rc {rc})'}; "
            f"its stderr ends: {err[-1500:]}")


# -- 1. abnormal exits -------------------------------------------------------------------------

@pytest.mark.parametrize("sig, code", [(signal.SIGTERM, 0), (signal.SIGINT, 0), (signal.SIGALRM, 0),
                                       (signal.SIGABRT, 128 + signal.SIGABRT), (signal.SIGQUIT, 128 + signal.SIGQUIT)])
def test_a_signal_mid_note_ends_in_silence(sig, code):
    synth = Recorder(None, uid("syn"))
    d = duet_into(synth.name, uid("sig"))
    try:
        assert playing(synth), "the synth heard nothing start"
        rc, err = stop(d, sig)
        assert rc == code, err[-800:]
        assert hanging(synth) == [], f"still sounding after {signal.Signals(sig).name}"
        if sig == signal.SIGQUIT:  # every thread's stack, to diagnose a hang
            assert "Current thread" in err or "Thread 0x" in err, err[-800:]
    finally:
        synth.close()
        if d.poll() is None:
            d.kill()


def test_sigusr1_logs_the_figures_and_plays_on():
    synth = Recorder(None, uid("syn"))
    d = duet_into(synth.name, uid("usr"))
    try:
        assert playing(synth)
        d.send_signal(signal.SIGUSR1)
        time.sleep(0.5)
        assert d.poll() is None, "SIGUSR1 killed the daemon"
        n = len(synth.events)
        time.sleep(0.5)
        assert len(synth.events) > n, "stopped playing after SIGUSR1"
        rc, err = stop(d)
        assert rc == 0 and "notes in" in err
        assert hanging(synth) == []
    finally:
        synth.close()
        if d.poll() is None:
            d.kill()


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGSEGV])
def test_a_killed_daemon_is_silenced_by_panic_and_by_the_next_start(sig):
    """Nothing inside a process survives SIGKILL: `improvd panic` (the unit's ExecStopPost)
    silences the synth, and so does the next improvd to start on it."""
    synth = Recorder(None, uid("syn"))
    try:
        for after in ("panic", "restart"):
            name = uid("kil")
            d = duet_into(synth.name, name)
            assert playing(synth), silent_why(d, synth)
            d.send_signal(sig)
            d.communicate(timeout=10)
            assert wait_until(lambda: not port_exists(f"{name}-out:out"), 10)
            if after == "panic":
                r = subprocess.run([sys.executable, "-m", "improvd", "panic", "--backend", "jack", "--out",
                                    f"{synth.name}:in"], capture_output=True, text=True, timeout=30)
                assert r.returncode == 0, r.stderr
            else:
                d2 = start_daemon(["--name", uid("new"), "--out", f"{synth.name}:in", "--mode", "call-response"])
                try:
                    assert wait_until(lambda: hanging(synth) == [], 10), "a fresh start did not clear the synth"
                finally:
                    stop(d2)
            assert hanging(synth) == [], f"still sounding after {after}"
    finally:
        synth.close()


def test_panic_with_no_port_is_one_line():
    r = subprocess.run([sys.executable, "-m", "improvd", "panic", "--backend", "jack"], capture_output=True,
                       text=True, timeout=30, env={**os.environ, "IMPROVD_OUT_PORT": ""})
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1, r.stderr


# -- 2. a synth path that loses messages ---------------------------------------------------------

MAX_NOTE_BEATS, TEMPO = 2, 200  # the guard: 0.6 s


@pytest.mark.parametrize("flood", [False, True], ids=["soak", "flood"])
def test_a_lossy_synth_hears_no_note_longer_than_the_guard(flood):
    """10 % of what reaches the synth is lost, note-offs included. Self-healing (repeated
    note-offs, silent channels cleared) must keep every note within max_note + 1 s there."""
    synth = Recorder(None, uid("syn"), drop=0.1, seed=11)
    name = uid("lossy")
    d = duet_into(synth.name, name, "--tempo", str(TEMPO), env={"IMPROVD_MAX_NOTE_BEATS": str(MAX_NOTE_BEATS)})
    kbd = Player(uid("k"), virtual=False, target=f"{name}-in:in")
    try:
        t_end = time.perf_counter() + 12
        i = 0
        while time.perf_counter() < t_end:
            if flood:  # 1,000 short performer notes a second, passed through to the same synth
                kbd.send([0x90, 48 + i % 24, 70])
                kbd.send([0x80, 48 + i % 24, 0])
                i += 1
                time.sleep(0.001)
            else:
                time.sleep(0.05)
        rc, err = stop(d)
        assert rc == 0, err[-800:]
        time.sleep(0.5)
        guard = MAX_NOTE_BEATS * 60 / TEMPO + 1.0
        longest = max(end - start for _c, _p, start, end in synth.sounded())
        assert len(synth.dropped) > 20, "the synth lost too little for this to test anything"
        assert longest <= guard, f"a note sounded {longest:.2f} s at the synth (guard {guard:.2f} s)"
        assert synth.hanging() == []
    finally:
        kbd.close()
        synth.close()
        if d.poll() is None:
            d.kill()


# -- 3. a performer note-off lost on the way in ----------------------------------------------------

def answer_notes(synth: Recorder, after: float) -> list:
    on, _off = synth.notes(channel=0)
    return [p for t, p in on if t > after]


def test_a_lost_performer_note_off_does_not_silence_improvd():
    synth = Recorder(None, uid("syn"))
    name = uid("held")
    d = start_daemon(["--name", name, "--out", f"{synth.name}:in", "--tempo", "240", "--wait", "500ms",
                      "--bars", "1", "--seed", "5", "--passthrough-channel", "4"], env={"IMPROVD_MAX_HOLD": "1bar"})
    try:
        wait_for_port(f"{name}-in:in")
        kbd = Player(uid("k"), virtual=False, target=f"{name}-in:in")
        time.sleep(0.3)
        t0 = time.perf_counter()
        kbd.send([0x90, 60, 90])  # ... and its note-off never arrives
        assert wait_until(lambda: answer_notes(synth, t0), 6), "no answer: improvd still waits for the key"
        assert (3, 60) not in synth.hanging(), "the passed-through key was left sounding"
        rc, err = stop(d)
        assert rc == 0
        assert sum("taken as released" in ln for ln in err.splitlines()) == 1, err[-800:]
        assert hanging(synth) == []
        kbd.close()
    finally:
        synth.close()
        if d.poll() is None:
            d.kill()


def test_a_real_long_note_with_playing_around_it_still_holds_the_answer():
    synth = Recorder(None, uid("syn"))
    name = uid("long")
    d = start_daemon(["--name", name, "--out", f"{synth.name}:in", "--tempo", "240", "--wait", "500ms",
                      "--bars", "1", "--seed", "5", "--no-passthrough"], env={"IMPROVD_MAX_HOLD": "1bar"})
    try:
        wait_for_port(f"{name}-in:in")
        kbd = Player(uid("k"), virtual=False, target=f"{name}-in:in")
        time.sleep(0.3)
        t0 = time.perf_counter()
        kbd.send([0x90, 48, 90])  # a pedal point held 3 bars (3 s) under a moving line
        for pitch in (64, 67, 72, 67, 64, 67, 72, 76, 72, 67, 64, 60):
            kbd.send([0x90, pitch, 80])
            time.sleep(0.2)
            kbd.send([0x80, pitch, 0])
            time.sleep(0.05)
        assert answer_notes(synth, t0) == [], "improvd answered over a held key"
        t_release = time.perf_counter()
        kbd.send([0x80, 48, 0])
        assert wait_until(lambda: answer_notes(synth, t_release), 4), "no answer after the release"
        rc, err = stop(d)
        assert rc == 0 and "taken as released" not in err
        kbd.close()
    finally:
        synth.close()
        if d.poll() is None:
            d.kill()


# -- 4. the keyboard unplugged with a key down ------------------------------------------------------

def test_unplugging_the_keyboard_releases_its_keys_at_the_synth():
    synth = Recorder(None, uid("syn"))
    kbd_name, name = uid("kbd"), uid("unp")
    kbd = Player(kbd_name)  # a port improvd opens by name, like a USB keyboard
    d = start_daemon(["--name", name, "--in", kbd_name, "--out", f"{synth.name}:in", "--wait", "8bars"])
    try:
        wait_for_port(f"{name}-in:in")
        time.sleep(0.5)
        kbd.send([0x90, 62, 100])
        assert wait_until(lambda: (0, 62) in synth.hanging(), 3), "the key did not pass through"
        kbd.close()  # unplugged, key still down
        assert wait_until(lambda: (0, 62) not in synth.hanging(), 4), "the key sounds on after the keyboard left"
        assert d.poll() is None
        rc, _err = stop(d)
        assert rc == 0
        assert hanging(synth) == []
    finally:
        synth.close()
        if d.poll() is None:
            d.kill()


# -- 6. reloads -----------------------------------------------------------------------------------

def test_reloads_refuse_a_wrong_config_whole_and_apply_a_good_one(tmp_path):
    cfg = tmp_path / "improvd.toml"
    good = 'tempo = 240.0\nwait = "500ms"\nbars = 1\nseed = 2\n'
    cfg.write_text(good)
    binary = tmp_path / "chart.bin"
    binary.write_bytes(bytes(range(256)) * 4)
    synth = Recorder(None, uid("syn"))
    name = uid("rel")
    d = start_daemon(["--name", name, "--out", f"{synth.name}:in", "--config", str(cfg), "--no-passthrough"])
    try:
        wait_for_port(f"{name}-in:in")
        kbd = Player(uid("k"), virtual=False, target=f"{name}-in:in")
        wrong = [good + 'chords = "Dm7 foo | G7"\n', good + f'chords_file = "{tmp_path / "missing.chords"}"\n',
                 good + f'chords_file = "{binary}"\n', good + 'max_note_beats = -1\n', good + 'mode = "harmonize"\n',
                 good.replace("seed = 2", "seed = 3")]
        for text in wrong:
            cfg.write_text(text)
            d.send_signal(signal.SIGHUP)
            time.sleep(0.4)
            assert d.poll() is None, f"the daemon died on a reload of {text!r}"
        t0 = time.perf_counter()
        kbd.phrase([(60, 0.5), (64, 0.5)], 0.25)
        assert wait_until(lambda: answer_notes(synth, t0), 4), "no answer after the refused reloads"
        cfg.write_text(good + "channel_out = 5\n")  # applied, not just reported
        d.send_signal(signal.SIGHUP)
        time.sleep(0.4)
        t1 = time.perf_counter()
        kbd.phrase([(60, 0.5), (64, 0.5)], 0.25)
        assert wait_until(lambda: any(t > t1 for t, _p in synth.notes(channel=4)[0]), 4), "channel_out was not applied"
        rc, err = stop(d)
        assert rc == 0
        refused = [ln for ln in err.splitlines() if "reload refused" in ln]
        assert len(refused) == len(wrong), err[-2000:]
        assert all("Traceback" not in ln for ln in err.splitlines())
        assert hanging(synth) == []
        kbd.close()
    finally:
        synth.close()
        if d.poll() is None:
            d.kill()


# -- keep the takes -------------------------------------------------------------------------------

def test_record_keeps_each_piece_as_a_take_with_both_parts(tmp_path):
    import mido

    folder = tmp_path / "takes"
    name = uid("take")
    d = start_daemon(["--virtual", "--name", name, "--wait", "500ms", "--bars", "1", "--tempo", "240", "--seed", "1",
                      "--record", str(folder)], env={"IMPROVD_RESET_AFTER_BARS": "2"})
    try:
        wait_for_port(f"{name}-in:in")
        kbd = Player(uid("k"), virtual=False, target=f"{name}-in:in")
        time.sleep(0.5)
        kbd.phrase([(60, 1), (64, 1), (67, 1)], 0.25)
        time.sleep(5.0)  # the answer, then two bars of silence: a new piece
        kbd.phrase([(62, 1), (65, 1)], 0.25)
        time.sleep(1.5)
        rc, err = stop(d)
        assert rc == 0, err[-800:]
        kbd.close()
    finally:
        if d.poll() is None:
            d.kill()
    takes = sorted(folder.glob("*.mid"))
    assert len(takes) == 2, (takes, err[-800:])
    for path in takes:
        mid = mido.MidiFile(path)
        names = [next((m.name for m in t if m.type == "track_name"), "") for t in mid.tracks]
        assert names[1:] == ["performer", "improvd"]
        for track in mid.tracks[1:]:
            assert any(m.type == "note_on" and m.velocity for m in track), f"{path.name}: an empty {track.name} track"
        assert any(m.type == "set_tempo" and round(mido.tempo2bpm(m.tempo)) == 240 for m in mid.tracks[0])
    assert err.count("take written") == 2


def test_a_port_whose_name_starts_like_improvds_own_can_be_opened():
    """Only improvd's own clients (NAME-in, NAME-out) are skipped when matching: a synth
    called NAME-synth is the performer's and opens (it never could)."""
    name = uid("own")
    synth = Recorder(None, f"{name}-synth")
    d = start_daemon(["--name", name, "--out", f"{name}-synth", "--mode", "duet", "--tempo", "200", "--seed", "1"])
    try:
        wait_for_port(f"{name}-out:out")
        assert playing(synth), "the synth port was not opened"
        rc, err = stop(d)
        assert rc == 0, err[-800:]
    finally:
        synth.close()
        if d.poll() is None:
            d.kill()
