"""End to end over a real JACK server: improvd as a subprocess, a keyboard stand-in playing into
its input port and a synth stand-in recording its output port."""

from __future__ import annotations

import signal
import time
import uuid

import pytest

from jackkit import Player, Recorder, attach, daemon, needs_jack, start_daemon

pytestmark = [pytest.mark.jack, needs_jack]

PHRASE = [(60, 1), (62, 1), (64, 1), (67, 1)]
KBD_CH, IMPROVD_CH = 1, 0  # the keyboard plays on channel 2, improvd answers on channel 1 (--channel-out 1):
# the performer's own notes may be passed through to the output, and must not count as the answer
BEAT = 0.5  # --tempo 120
WAIT = 0.5  # --wait 500ms


def unique(prefix: str) -> str:
    return f"{prefix}{uuid.uuid4().hex[:6]}"


def wait_for_answer(rec: Recorder, after: float, timeout: float = 3.0):
    t0 = time.time()
    while time.time() - t0 < timeout:
        on, _ = rec.notes(IMPROVD_CH)
        later = [t for t, _p in on if t > after]
        if later:
            return later[0]
        time.sleep(0.01)
    return None


def test_answer_arrives_after_the_wait_and_every_note_ends():
    name = unique("imp")
    with daemon(["--virtual", "--name", name, "--tempo", "120", "--wait", "500ms", "--bars", "1", "--seed", "1", "--channel-out", "1"],
                ports=(f"{name}-out:out", f"{name}-in:in")) as p:
        rec, pl = attach(name, KBD_CH)
        try:
            t_end = pl.phrase(PHRASE, BEAT)
            first = wait_for_answer(rec, t_end)
            assert first is not None, f"no answer; recorder heard {rec.events}; daemon alive: {p.poll() is None}"
            latency = first - t_end
            assert WAIT - 0.005 <= latency <= WAIT + 0.050, f"answer after {latency * 1e3:.1f} ms"
            time.sleep(4 * BEAT + 0.5)  # the one-bar answer is over
            on, off = rec.notes(IMPROVD_CH)
            assert len(on) >= 1 and len(off) >= len(on) and rec.hanging() == []
            assert all(t >= t_end + WAIT - 0.005 for t, _ in on), [(round(t - t_end, 3), d) for t, d in rec.events]
            assert p.poll() is None, "the daemon died"
        finally:
            pl.close()
            rec.close()


def test_sigterm_mid_answer_leaves_nothing_hanging_and_exits_0():
    name = unique("imp")
    with daemon(["--virtual", "--name", name, "--tempo", "120", "--wait", "500ms", "--bars", "4", "--seed", "2", "--channel-out", "1"],
                ports=(f"{name}-out:out", f"{name}-in:in")) as p:
        rec, pl = attach(name, KBD_CH)
        try:
            t_end = pl.phrase(PHRASE, BEAT)
            assert wait_for_answer(rec, t_end) is not None, f"no answer; heard {rec.events}"
            time.sleep(0.6)  # well inside the 8-second answer
            p.send_signal(signal.SIGTERM)
            _out, err = p.communicate(timeout=10)
            time.sleep(0.2)
            assert p.returncode == 0, err[-800:]
            assert rec.hanging() == [], f"stuck notes after SIGTERM: {rec.hanging()} in {rec.events}"
            # the last thing the synth hears is the all-notes-off controller
            assert rec.events[-1][1][0] & 0xF0 == 0xB0 and rec.events[-1][1][1] == 123, rec.events[-6:]
        finally:
            pl.close()
            rec.close()


def test_input_keyboard_unplugged_and_back_is_reconnected():
    name, kbd = unique("imp"), unique("kbd")
    pl = Player(kbd, virtual=True, channel=KBD_CH)  # the keyboard: its own client with a port 'out'
    try:
        with daemon(["--in", kbd, "--name", name, "--tempo", "120", "--wait", "500ms", "--bars", "1", "--seed", "3", "--channel-out", "1"],
                    ports=(f"{name}-out:out",)) as p:
            rec = Recorder(f"{name}-out:out", name=unique("rec"))
            try:
                time.sleep(0.3)
                t_end = pl.phrase(PHRASE[:2], BEAT)
                assert wait_for_answer(rec, t_end) is not None, "no answer before the unplug"
                time.sleep(2.2)
                pl.close()
                pl = None
                time.sleep(1.5)  # the daemon notices within about a second
                pl = Player(kbd, virtual=True, channel=KBD_CH)
                time.sleep(1.5)  # and reconnects within about a second
                t_end = pl.phrase(PHRASE[:2], BEAT)
                assert wait_for_answer(rec, t_end) is not None, "no answer after the keyboard came back"
                assert p.poll() is None
                time.sleep(2.2)
                assert rec.hanging() == []
            finally:
                rec.close()
            p.send_signal(signal.SIGTERM)
            _out, err = p.communicate(timeout=10)
            assert p.returncode == 0
            assert "is gone" in err and "is back" in err
    finally:
        if pl is not None:
            pl.close()


def test_unknown_input_port_exits_2_listing_the_ports():
    name = unique("imp")
    p = start_daemon(["--in", "no-such-keyboard-xyz", "--name", name])
    _out, err = p.communicate(timeout=30)
    assert p.returncode == 2, err
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1, err
    assert "no-such-keyboard-xyz" in lines[0] and "not found" in lines[0] and "ports here" in lines[0]
