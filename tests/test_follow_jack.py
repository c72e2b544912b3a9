"""Following the performer's time over real JACK ports: a keyboard stand-in plays phrases at 96
BPM with no tempo given to improvd, and what a synth stand-in hears of improvd's answers lies on
the keyboard's own beat grid, starting on its bar lines."""

from __future__ import annotations

import time
import uuid

import numpy as np
import pytest

from jackkit import attach, daemon, needs_jack
from test_follow import performance

pytestmark = [pytest.mark.jack, needs_jack]

BPM = 96
PERIOD = 60.0 / BPM
KBD_CH, IMPROVD_CH = 1, 0
TOLERANCE = 0.030
GRID = np.arange(13) / 12  # the ticks of improvd's grid (12 a beat), laid on the keyboard's beats
ON_GRID = 0.010  # seconds: a note this close to one of them is on the keyboard's grid (ticks are 52 ms apart)


def play(kbd, t0: float, phrases) -> None:
    """A bar of count-in, then the replay tests' performance (tests/test_follow.py) at 96 BPM from
    ``t0`` (perf_counter), each message sent at its time on the wall clock."""
    perf = performance(t0 + PERIOD * np.arange(100), phrases)
    count_in = [(t0 + b * PERIOD, 0.1, 84) for b in range(4)]  # four on one key, as a drummer's sticks
    events = [(t, [0x90 | KBD_CH, pitch, 100]) for t, _length, pitch in count_in]
    events += [(t + length, [0x80 | KBD_CH, pitch, 0]) for t, length, pitch in count_in]
    events += [(n.start, [0x90 | KBD_CH, n.pitch, n.velocity]) for n in perf.notes]
    events += [(n.end, [0x80 | KBD_CH, n.pitch, 0]) for n in perf.notes]
    for t, data in sorted(events, key=lambda e: (e[0], e[1][0] & 0xF0 == 0x90)):
        while (left := t - time.perf_counter()) > 0:
            time.sleep(min(left, 0.002))
        kbd.send(data)


def test_a_performer_at_96_bpm_gets_answers_on_their_own_grid():
    name = f"flw{uuid.uuid4().hex[:6]}"
    # At SCHED_FIFO, as the stage unit runs it (systemd/README.md): at normal priority, with two
    # busy loops beside it, the first note of an answer left 10-25 ms late (refused: it warns and plays on)
    with daemon(["--virtual", "--name", name, "--bars", "1", "--seed", "1", "--channel-out", "1", "--rt-priority", "40"],
                ports=(f"{name}-out:out", f"{name}-in:in")) as p:
        rec, kbd = attach(name, KBD_CH)
        try:
            t0 = time.perf_counter() + 0.2
            play(kbd, t0, [(1, 2), (4, 2), (8, 2)])  # a bar of count-in, then two bars played and two left
            # for the answer, three times
            time.sleep(max(0.0, t0 + 12 * 4 * PERIOD - time.perf_counter()) + 0.3)
            on, _off = rec.notes(IMPROVD_CH)
            assert p.poll() is None, "the daemon died"
            for first_bar in (4, 8):  # the first phrase is where the beat is found
                start, end = t0 + (first_bar + 2) * 4 * PERIOD, t0 + (first_bar + 4) * 4 * PERIOD
                heard = [t for t, _pitch in on if start - 0.05 <= t < end]
                assert len(heard) >= 2, f"no answer after the phrase of bar {first_bar}: {[round(t - t0, 3) for t, _ in on]}"
                downbeat = t0 + round((heard[0] - t0) / (4 * PERIOD)) * 4 * PERIOD
                assert heard[0] >= downbeat - TOLERANCE and heard[0] - downbeat < 4 * PERIOD, \
                    f"the answer began {heard[0] - downbeat:+.3f} s from the keyboard's bar line"
                beats = (np.array(heard) - t0) / PERIOD
                off = np.min(np.abs((beats % 1)[:, None] - GRID[None, :]), axis=1) * PERIOD
                assert np.mean(off <= ON_GRID) >= 0.85 and off.max() <= TOLERANCE, \
                    f"answer notes off the keyboard's grid by {[f'{o * 1000:.0f} ms' for o in off]}"
        finally:
            kbd.close()
            rec.close()
