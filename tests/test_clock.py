"""Ticks and seconds as a drummer would count them: tempo, swing, tempo changes, MIDI clock in."""

import pytest
from hypothesis import given, strategies as st

from improvd.clock import PPQN, Clock, ClockFollower
from improvd.encoding import BAR_TICKS, TICKS_PER_BEAT

T = TICKS_PER_BEAT


def test_ticks_to_seconds_at_120():
    c = Clock(tempo=120.0)
    assert c.beat_seconds == pytest.approx(0.5)
    assert c.time_of(0) == 0.0
    assert c.time_of(T) == pytest.approx(0.5)  # one beat
    assert c.time_of(BAR_TICKS) == pytest.approx(2.0)  # one 4/4 bar
    assert c.time_of(3) == pytest.approx(0.125)  # a 16th
    assert c.tick_at(2.0) == BAR_TICKS
    assert c.tick_at(0.5 + 0.01) == T  # nearest tick
    assert c.tick_at(0.5 + 0.03) == T + 1


@given(st.floats(20, 400), st.integers(0, 100000))
def test_tick_seconds_round_trip(bpm, tick):
    c = Clock(tempo=bpm, origin=3.25)
    assert c.tick_at(c.time_of(tick)) == tick


def test_triplet_swing_moves_offbeat_eighths_only():
    c = Clock(tempo=120.0, swing=1 / 3)
    assert c.time_of(0) == 0.0
    assert c.time_of(T) == pytest.approx(0.5)  # downbeats stay put
    assert c.time_of(2 * T) == pytest.approx(1.0)
    # the off-beat 8th lands on the third triplet: 2/3 of the beat
    assert c.time_of(T // 2) == pytest.approx(0.5 * 2 / 3)
    assert c.time_of(T + T // 2) == pytest.approx(0.5 + 0.5 * 2 / 3)
    straight = Clock(tempo=120.0)
    assert straight.time_of(T // 2) == pytest.approx(0.25)
    # swing keeps time monotonic across the whole beat
    times = [c.time_of(t) for t in range(0, 4 * T + 1)]
    assert all(b > a for a, b in zip(times, times[1:]))
    # and MIDI clock out stays straight
    assert c.straight_time(T // 2) == pytest.approx(0.25)


def test_tempo_change_continues_from_the_change_tick():
    c = Clock(tempo=120.0)
    at = c.time_of(96)
    c.set_tempo(60.0, at_tick=96)
    assert c.time_of(96) == pytest.approx(at)  # no jump where the tempo changes
    # after the change a beat is a second long
    assert c.time_of(96 + T) - c.time_of(96) == pytest.approx(1.0)
    assert c.tick_at(at + 2.0) == 96 + 2 * T


def test_tempo_change_keeps_earlier_ticks():
    c = Clock(tempo=120.0)
    before = [c.time_of(t) for t in range(0, 97)]
    c.set_tempo(60.0, at_tick=96)
    assert [c.time_of(t) for t in range(0, 97)] == pytest.approx(before)
    assert c.tick_at(1.0) == 2 * T  # a note heard at 1 s, before the change, was on beat 2


def test_tempo_is_clamped_to_playable_range():
    c = Clock(tempo=120.0)
    c.set_tempo(1000, 0)
    assert c.tempo == 400.0
    c.set_tempo(1, 0)
    assert c.tempo == 20.0


def _pulses(f: ClockFollower, bpm: float, n: int, t0: float = 0.0):
    dt = 60.0 / bpm / PPQN
    tempo = None
    for i in range(n):
        got = f.message("clock", t0 + i * dt)
        tempo = got if got is not None else tempo
    return tempo, t0 + n * dt


@pytest.mark.parametrize("bpm", [60.0, 96.0, 120.0, 172.0, 240.0])
def test_clock_follower_reads_tempo_from_pulses(bpm):
    f = ClockFollower()
    f.message("start", 0.0)
    tempo, _ = _pulses(f, bpm, 48)
    assert tempo == pytest.approx(bpm, rel=1e-6)


def test_clock_follower_ignores_one_late_packet():
    f = ClockFollower()
    f.message("start", 0.0)
    dt = 60.0 / 120 / PPQN
    t, tempo = 0.0, None
    for i in range(48):
        t += dt * (3.0 if i == 30 else 1.0)  # one USB packet 2 pulses late
        got = f.message("clock", t)
        tempo = got if got is not None else tempo
    assert tempo == pytest.approx(120.0, rel=1e-6)


def test_clock_follower_follows_a_tempo_change():
    f = ClockFollower()
    f.message("start", 0.0)
    _, t = _pulses(f, 100.0, 48)
    tempo, _ = _pulses(f, 140.0, 48, t0=t)
    assert tempo == pytest.approx(140.0, rel=1e-6)


def test_start_stop_continue_and_song_position():
    f = ClockFollower()
    f.message("clock", 0.0)
    assert f.pulses == 0  # pulses before start do not move the song position
    f.message("start", 0.0)
    assert f.running
    _pulses(f, 120.0, 24)
    assert f.pulses == 24 and f.tick == T  # one beat
    f.message("stop", 1.0)
    assert not f.running
    _pulses(f, 120.0, 24, t0=1.0)
    assert f.pulses == 24  # stopped: position holds
    f.message("songpos", 1.5, 16)  # 16 sixteenths = one bar
    assert f.tick == BAR_TICKS
    f.message("continue", 2.0)
    assert f.running
    _pulses(f, 120.0, 12, t0=2.0)
    assert f.tick == BAR_TICKS + T // 2
    f.message("start", 3.0)  # start rewinds to the top
    assert f.pulses == 0 and f.tick == 0
