"""Input stamps from the backend's deltas (improvd.midi.arrival): late polls do not make late
stamps, and a backend that lost time from its sums is found again."""

from __future__ import annotations

import numpy as np

from improvd.midi.arrival import ArrivalClock


def _arrivals(n: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return 100.0 + np.cumsum(rng.uniform(0.05, 0.6, n))


def test_stamps_keep_the_arrival_times_when_polls_are_late():
    """Polls late by up to 20 ms (a model step, a busy machine), one in ten prompt: stamps stay
    within a millisecond of the arrivals; the poll times themselves are off by 10 ms on average."""
    rng = np.random.default_rng(1)
    arrive = _arrivals(400)
    late = np.where(rng.random(arrive.size) < 0.1, rng.uniform(0, 0.0005, arrive.size), rng.uniform(0, 0.020, arrive.size))
    clock = ArrivalClock()
    deltas = np.diff(arrive, prepend=arrive[0])
    stamps = np.array([clock.stamp(d, a + lag) for d, a, lag in zip(deltas, arrive, late)])
    err = stamps - arrive
    assert np.all(stamps <= arrive + late + 1e-12)  # never later than the poll
    assert np.abs(err[20:]).max() < 0.001, np.abs(err[20:]).max()
    assert late[20:].mean() > 0.008  # what stamping at the poll would have given


def test_a_backend_that_dropped_messages_is_found_again():
    """The backend's full queue dropped messages but moved its delta clock on: from then on the
    sums lack 0.5 s. Within the window (10 s) and a prompt poll after it the stamps are right again."""
    arrive = _arrivals(300, seed=2)
    deltas = np.diff(arrive, prepend=arrive[0])
    deltas[150] -= 0.5  # the time of what was dropped is missing from the next delta
    clock = ArrivalClock()
    stamps = np.array([clock.stamp(d, a + 0.0002) for d, a in zip(deltas, arrive)])
    after = arrive >= arrive[150] + clock.window + 0.7  # one more message past the window
    assert np.abs(stamps[after] - arrive[after]).max() < 0.001
    assert np.all(stamps <= arrive + 0.0002 + 1e-12)


def test_a_reset_starts_again_from_the_next_message():
    clock = ArrivalClock()
    clock.stamp(0.0, 10.0)
    clock.stamp(0.5, 10.5)
    clock.reset()  # a new rtmidi object: its first delta is 0 again
    assert clock.stamp(0.0, 20.0) == 20.0
    assert abs(clock.stamp(0.25, 20.26) - 20.25) < 1e-9
