"""Following the performer's time (issue 14): with no tempo given, the grid runs on the
performer's beats and bars. Replays of performances with rubato, played at tempos far from the
default 120, check where improvd's answers start against the performer's own beat grid,
extrapolated from their last beats as a listener would hear it.
"""

from __future__ import annotations

import dataclasses
import logging

import numpy as np
import pytest

from improvd.clock import Clock
from improvd.config import ConfigError, load_settings
from improvd.encoding import BAR_TICKS, TICKS_PER_BEAT
from improvd.midi.files import Note, Performance
from improvd.modes import State
from improvd.performer import next_beat
from improvd.replay import replay
from improvd.tempo import Estimate

TOLERANCE = 0.030  # seconds: an answer within this of the performer's extrapolated downbeat


# -- fixtures: a performer with a tempo of their own -------------------------------------------------

def beat_times(bpm: float, beats: int, ritardando: tuple | None = None, jump: tuple | None = None) -> np.ndarray:
    """Times of beats 0..beats. ``ritardando`` (from_beat, to_beat, factor): the tempo eases down
    to ``factor`` of itself over those beats and stays there; ``jump`` (beat, bpm): from that beat
    on the tempo is another."""
    times = [0.0]
    for b in range(beats):
        tempo = bpm
        if jump is not None and b >= jump[0]:
            tempo = jump[1]
        if ritardando is not None and b >= ritardando[0]:
            done = min(1.0, (b - ritardando[0]) / (ritardando[1] - ritardando[0]))
            tempo *= 1.0 - (1.0 - ritardando[2]) * done
        times.append(times[-1] + 60.0 / tempo)
    return np.array(times)


def performance(beats: np.ndarray, phrases: list[tuple[int, int]], chords: bool = False, pedal: bool = False,
                seed: int = 0, second: float = 0.5) -> Performance:
    """Phrases (first bar, bars) as a player comps and sings over a beat: a melody note on every
    beat (beat one loudest, three next), the two-four beats split into eighths (``second``: where
    the second falls, 2/3 swung), a bass note on one and three, and with ``chords`` a chord on
    one. With ``pedal`` the sustain pedal is held through each bar and the keys let go early, as a
    pianist does."""
    rng = np.random.default_rng(seed)
    notes, controls = [], []
    loud = (110, 80, 95, 80)
    for first, bars in phrases:
        for b in range(first * 4, (first + bars) * 4):
            t0, t1 = beats[b], beats[b + 1]
            span = t1 - t0
            length = 0.3 if pedal else 0.9
            pitch = 60 + int(rng.integers(0, 12))
            if b % 2:  # beats two and four: two eighths
                notes.append(Note(pitch, loud[b % 4], t0, t0 + span * second * length, 0, 0))
                notes.append(Note(pitch + 2, 55, t0 + span * second, t0 + span * (second + (1 - second) * length), 0, 0))
            else:
                notes.append(Note(pitch, loud[b % 4], t0, t0 + span * length, 0, 0))
                notes.append(Note(36 + int(rng.integers(0, 12)), loud[b % 4], t0, t0 + span * (0.3 if pedal else 1.8), 0, 0))
            if b % 4 == 0:
                if chords:
                    notes += [Note(p, 90, t0, t0 + span * (0.3 if pedal else 1.9), 0, 0) for p in (52, 55, 59)]
                if pedal:
                    controls.append((t0 + 0.01, 0, 64, 127, 0))
                    controls.append((beats[b + 4] - 0.02, 0, 64, 0, 0))
    notes.sort(key=lambda n: (n.start, n.pitch))
    return Performance(tuple(notes), 120.0, 0.5, "follow-fixture", 480, tuple(sorted(controls)), ())


def answers(perf: Performance, **flags) -> tuple[list[float], object]:
    """Replay with no tempo given: the times at which improvd began its answers (the tick its
    answer starts on, as the clock placed it), and the replay."""
    settings = load_settings(None, {"model": "jazz", "seed": 3, "bars": 1, **flags}, environ={})
    starts: list[float] = []
    box = {}

    def seen(state):
        engine = box["engine"]
        if state == State.ANSWERING:
            starts.append(engine.clock.time_of(engine.mode.answer_start))

    import improvd.replay as rp

    build = rp.build

    def spying_build(*args, **kwargs):
        session = build(*args, **kwargs)
        box["engine"] = session.engine
        session.engine.listeners.append(seen)
        return session

    rp.build = spying_build
    try:
        res = replay(perf, settings)
    finally:
        rp.build = build
    return starts, res


def extrapolated_downbeat_error(t: float, beats: np.ndarray, end: int) -> float:
    """How far ``t`` is from the nearest downbeat of the performer's grid, extrapolated from
    the last beat of their phrase (beat ``end``) at the tempo of its last beat."""
    period = beats[end] - beats[end - 1]
    beat = end + (t - beats[end]) / period  # where t falls, counted in the performer's beats
    downbeat = 4 * round(beat / 4)
    return abs(beats[end] + (downbeat - end) * period - t)


PHRASES = [(0, 2), (4, 2), (8, 2), (12, 2), (16, 2)]  # two bars played, two bars left to answer


def check_answers(beats: np.ndarray, starts: list[float], phrases=PHRASES) -> None:
    assert len(starts) >= len(phrases) - 1, f"improvd answered {len(starts)} of {len(phrases)} phrases"
    errors = []
    for first, bars in phrases[1:]:  # the first phrase is where the beat is found
        end = (first + bars) * 4
        after = [t for t in starts if beats[end] - 0.05 <= t < beats[end + 8]]
        assert after, f"no answer after the phrase ending on beat {end}"
        errors.append(extrapolated_downbeat_error(after[0], beats, end))
    assert max(errors) <= TOLERANCE, f"answers {[f'{e * 1000:.0f} ms' for e in errors]} off the performer's downbeats"


# -- replays -------------------------------------------------------------------------------------------

@pytest.mark.parametrize("bpm", [72, 97, 180])
def test_answers_start_on_the_performers_downbeats_at_their_tempo(bpm):
    beats = beat_times(bpm, 100)
    starts, res = answers(performance(beats, PHRASES))
    check_answers(beats, starts)
    heard = res.engine.performer.heard
    assert heard is not None and heard.locked and abs(heard.bpm - bpm) / bpm < 0.04, heard


@pytest.mark.parametrize("bpm", [72, 97, 180])
def test_a_ritardando_is_followed(bpm):
    beats = beat_times(bpm, 100, ritardando=(24, 40, 0.8))  # phrases 3 and 4 slow to 80 %
    starts, _res = answers(performance(beats, PHRASES))
    check_answers(beats, starts)


@pytest.mark.parametrize("bpm", [72, 97, 180])
def test_a_tempo_jump_is_followed(bpm):
    beats = beat_times(bpm, 100, jump=(32, bpm * 1.2))  # from phrase 3 on, 20 % faster
    starts, _res = answers(performance(beats, PHRASES))
    check_answers(beats, starts, PHRASES)


@pytest.mark.parametrize("how", ["pedal", "chords"])
def test_the_pedal_and_chords_do_not_move_the_beat(how):
    beats = beat_times(97, 100)
    starts, _res = answers(performance(beats, PHRASES, chords=how == "chords", pedal=how == "pedal"))
    check_answers(beats, starts)


def sixteenth_share(onsets: list, beats: np.ndarray) -> float:
    """The share of ``onsets`` within TOLERANCE of a sixteenth of the performer's beat."""
    idx = np.clip(np.searchsorted(beats, onsets) - 1, 0, len(beats) - 2)
    period = beats[idx + 1] - beats[idx]
    phase = (np.asarray(onsets) - beats[idx]) / period
    off = np.min(np.abs(phase[:, None] - np.array([0, 0.25, 0.5, 0.75, 1.0])[None, :]), axis=1) * period
    return float(np.mean(off <= TOLERANCE))


def test_duet_plays_on_the_performers_grid_as_if_told_their_tempo():
    beats = beat_times(84, 140)
    perf = performance(beats, [(0, 32)])
    mine, heard = {}, {}
    for told in (None, "84"):  # following, and told the tempo (the file's grid starts on their beat one)
        _starts, res = answers(perf, mode="duet", **({"tempo": told} if told else {}))
        mine[told] = [t for t, m in res.machine if m.type == "note_on" and m.velocity and m.channel == 0 and t > beats[32]]
        heard[told] = res.engine.performer.heard
        assert len(mine[told]) > 40
    assert heard[None].locked and abs(heard[None].bpm - 84) < 84 * 0.04, heard[None]
    following = sixteenth_share(mine[None], beats)
    told = sixteenth_share(mine["84"], beats)
    assert following >= told - 0.05, f"{following:.0%} of the notes on the performer's sixteenths, {told:.0%} when told"


def test_swing_is_followed_and_a_set_swing_is_kept():
    beats = beat_times(120, 100)
    perf = performance(beats, PHRASES, second=2 / 3)
    _starts, res = answers(perf)
    assert res.engine.clock.swing == pytest.approx(1 / 3, abs=0.05)
    _starts, res = answers(performance(beats, PHRASES), swing=0.2)
    assert res.engine.clock.swing == 0.2
    _starts, res = answers(performance(beats, PHRASES))
    assert res.engine.clock.swing < 0.05


def test_a_fixed_tempo_wins_and_nothing_is_followed():
    beats = beat_times(97, 100)
    _starts, res = answers(performance(beats, PHRASES), tempo="120")
    assert not res.engine.performer.following and res.engine.clock.tempo == 120.0


def test_the_tap_key_fixes_the_tempo(caplog):
    beats = beat_times(97, 60)
    perf = performance(beats, [(0, 4)])
    taps = tuple(Note(21, 100, 12.0 + 0.5 * i, 12.1 + 0.5 * i, 0, 0) for i in range(3))
    perf = dataclasses.replace(perf, notes=tuple(sorted(perf.notes + taps, key=lambda n: n.start)))
    settings = load_settings(None, {"model": "jazz", "seed": 3, "tempo_follow": "on", "tap_key": 21}, environ={})
    with caplog.at_level(logging.INFO, logger="improvd"):
        res = replay(perf, settings)
    assert not res.engine.performer.following
    assert abs(res.engine.clock.tempo - 120.0) < 0.5
    assert any("tempo fixed by the tap key" in r.getMessage() for r in caplog.records)


# -- settings ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("flags, follows", [
    ({}, True),  # nothing sets the time: follow
    ({"tempo": "follow"}, True),
    ({"tempo": "96"}, False),  # a fixed tempo wins
    ({"clock_in": True}, False),  # so does a MIDI clock
    ({"tap_key": 21}, False),  # and a tap key
    ({"tempo": "follow", "clock_in": True}, True),  # asked for by name, it follows anyway
    ({"tempo_follow": "off"}, False),
])
def test_when_improvd_follows(flags, follows):
    assert load_settings(None, flags, environ={}).follows_performer is follows


def test_a_tempo_that_is_neither_a_number_nor_follow_is_one_line():
    with pytest.raises(ConfigError, match="write BPM .* or follow"):
        load_settings(None, {"tempo": "fast"}, environ={})


# -- the parts --------------------------------------------------------------------------------------------

def test_stretch_lands_a_tick_where_asked_and_keeps_the_past():
    clock = Clock(120.0)
    before = clock.time_of(30)
    clock.stretch(36, 48, 3.0)
    assert clock.time_of(30) == pytest.approx(before)
    assert clock.time_of(48) == pytest.approx(3.0)
    assert clock.tick_at(3.0) == 48 and clock.tick_at(before) == 30


def estimate(next_beat_time: float, next_downbeat_time: float, period: float) -> Estimate:
    return Estimate(time=0.0, bpm=60 / period, heard_bpm=60 / period, beat=0.0, next_beat_time=next_beat_time,
                    next_downbeat_time=next_downbeat_time, beat_in_bar=0.0, beat_period=period, confidence=1.0, locked=True)


def test_next_beat_is_the_performers_beat_one_period_ahead_and_its_place_in_the_bar():
    e = estimate(10.1, 11.6, 0.5)  # beats 2, 3, 4 and one of a bar at 10.1, 10.6, 11.1, 11.6
    assert next_beat(e, 10.0) == (pytest.approx(10.6), 2)
    assert next_beat(e, 10.5) == (pytest.approx(11.1), 3)
    assert next_beat(e, 11.05) == (pytest.approx(11.6), 0)


def test_ticks_follow_the_performer_so_a_bar_is_their_bar():
    beats = beat_times(72, 100)
    _starts, res = answers(performance(beats, PHRASES))
    clock = res.engine.clock
    # once the beat is found, the performer's downbeats fall on the grid's bar lines
    for b in range(48, 72, 4):
        tick = clock.tick_at(beats[b])
        assert min(tick % BAR_TICKS, BAR_TICKS - tick % BAR_TICKS) <= 1, f"beat {b} heard at tick {tick} of its bar"
        assert abs(clock.time_of(round(tick / TICKS_PER_BEAT) * TICKS_PER_BEAT) - beats[b]) < TOLERANCE


@pytest.mark.parametrize("bpm", [72, 97])
def test_a_downbeat_lost_as_a_phrase_begins_keeps_the_bar(bpm):
    """Through a ritardando, the first note of a phrase (its beat one) never arrives, as over a
    loaded JACK: the phrase's first notes then put beat one on its loud third beat, and the answer
    came two beats off the bar. The bar is counted on from the grid held instead."""
    beats = beat_times(bpm, 100, ritardando=(24, 40, 0.8))
    perf = performance(beats, PHRASES)
    perf = dataclasses.replace(perf, notes=tuple(n for n in perf.notes if abs(n.start - beats[48]) > 1e-6))
    starts, _res = answers(perf)
    check_answers(beats, starts)
