"""The tempo tracker as a sideman: it finds the performer's beat from note-ons, follows a
ritardando and a tempo jump, keeps swing at its tempo, finds beat one, takes a count-in, and on
bad input (one note, random onsets, a flood) says it is unsure and never leaves 30-300 BPM.

Performances are made here, with known beat times, so every check is against the truth.
"""

from __future__ import annotations

import math
import subprocess
import sys
from dataclasses import dataclass

import numpy as np
import pytest
from hypothesis import given, settings as hsettings, strategies as st

from improvd.tempo import (MAX_BPM, MIN_BPM, BeatGrid, TempoTracker, TrackerSettings, bench_update,
                           onset_features, parse_meter)


@dataclass(frozen=True)
class Performance:
    notes: list[tuple[float, int, int]]  # (time, pitch, velocity), in time order
    beats: np.ndarray  # the true beat times
    meter: int

    @property
    def downbeats(self) -> np.ndarray:
        return self.beats[:: self.meter]


def perform(tempo, beats: int, meter: int = 4, swing: float = 0.0, eighths: bool = True, chords: bool = True,
            jitter: float = 0.004, seed: int = 0) -> Performance:
    """A pianist's pattern: beat one a low chord, the other beats a bass note, a melody note on
    each beat and (eighths) on each off-beat, swung by ``swing`` (1/3: the off-beat at 2/3).
    ``tempo(b)`` is the BPM of beat b, so ritardandos and jumps are exact."""
    rng = np.random.default_rng(seed)
    times = [1.0]
    for b in range(beats):
        times.append(times[-1] + 60.0 / tempo(b))
    notes = []
    for b in range(beats):
        t, period = times[b], times[b + 1] - times[b]
        on = lambda: t + rng.normal(0, jitter)  # noqa: E731
        if b % meter == 0 and chords:
            at = on()
            notes += [(at, 40, 96), (at + 0.003, 47, 90), (at + 0.006, 64, 84)]
        else:
            notes.append((on(), 52, 72))
            notes.append((on() + 0.004, int(rng.integers(62, 74)), 66))
        if eighths:
            off = t + period * 0.5 * (1 + swing) + rng.normal(0, jitter)
            notes.append((off, int(rng.integers(62, 76)), 54))
    notes.sort()
    return Performance(notes, np.array(times[:beats]), meter)


def steady(bpm):
    return lambda b: bpm


def follow(perf: Performance, **kw) -> tuple[TempoTracker, list]:
    """Feed the performance; before each note-on, note the prediction of the next beat."""
    tracker = TempoTracker(meter=kw.pop("meter", perf.meter), **kw)
    predictions = []
    for t, pitch, velocity in perf.notes:
        predictions.append(tracker.estimate(t))
        tracker.onset(t, pitch, velocity)
    return tracker, predictions


def beat_errors(perf: Performance, predictions, after_beat: int) -> np.ndarray:
    """Seconds between each predicted next beat and the true beat nearest it, for predictions
    made after ``after_beat`` (the lock-in)."""
    start = perf.beats[after_beat]
    errs = [min(abs(perf.beats - e.next_beat_time)) for e in predictions if e.time > start]
    return np.array(errs)


def locked_at_beat(perf: Performance, predictions) -> int | None:
    """The beat by which the tracker reported itself locked for good."""
    last_unlocked = max((i for i, e in enumerate(predictions) if not e.locked), default=-1)
    if last_unlocked + 1 >= len(predictions):
        return None
    return int(np.searchsorted(perf.beats, predictions[last_unlocked + 1].time))


@pytest.mark.parametrize("bpm", [72, 97, 180])
@pytest.mark.parametrize("chords", [True, False])
def test_locks_within_eight_beats_and_predicts_beats_within_30ms(bpm, chords):
    perf = perform(steady(bpm), 48, chords=chords, seed=bpm)
    tracker, predictions = follow(perf)
    assert locked_at_beat(perf, predictions) <= 8
    end = tracker.estimate(perf.notes[-1][0])
    assert end.bpm == pytest.approx(bpm, rel=0.04) and end.heard_bpm == pytest.approx(bpm, rel=0.04)
    errors = beat_errors(perf, predictions, after_beat=8)
    assert np.median(errors) < 0.030
    assert np.mean(errors < 0.030) >= 0.8


def test_swing_is_followed_at_its_tempo_not_at_the_hemiola():
    """Swung eighths (off-beat at 2/3) also fit a straight grid 1.5x as fast: a sideman hears the
    beat, not the long-short pairs."""
    for bpm, swing in ((150, 1 / 3), (200, 0.25)):
        perf = perform(steady(bpm), 64, swing=swing, chords=False, seed=3)
        tracker, predictions = follow(perf)
        assert tracker.estimate(perf.notes[-1][0]).bpm == pytest.approx(bpm, rel=0.04)
        assert np.median(beat_errors(perf, predictions, after_beat=12)) < 0.030


@pytest.mark.parametrize("bpm", [110, 140, 200, 260])
def test_a_sparse_swung_line_gives_its_tempo_within_eight_bars(bpm):
    """A horn solo's start: single notes (one velocity), swung eighths with rests, no chord, no
    bass. The interval model must name the tempo (not the fallback 120, not the eighth-note rate)
    by the end of 8 bars, sure enough to play at it."""
    rng = np.random.default_rng(bpm)
    beat, notes = 60.0 / bpm, []
    for b in range(32):
        for sub in (0.0, 2 / 3 if bpm < 220 else 0.55):
            if rng.random() < 0.85:
                notes.append(1.0 + (b + sub) * beat + rng.normal(0, 0.01))
    tracker = TempoTracker(fallback_bpm=120)
    for t in sorted(notes):
        tracker.onset(t, int(rng.integers(60, 80)), 64)
    e = tracker.estimate(1.0 + 32 * beat)
    assert e.bpm == pytest.approx(bpm, rel=0.04) and e.heard_bpm == pytest.approx(bpm, rel=0.04)


def _swung_line(bpm: float, seed: int, jitter: float, n: int = 600) -> list[tuple[float, int, int]]:
    """Swung eighths (2:1, 85 % of them played), one line, no chord, no accent: nothing but
    the long-short pattern says where the beat is."""
    rng = np.random.default_rng(seed)
    beat, notes, t = 60.0 / bpm, [], 1.0
    while len(notes) < n:
        for sub in (0.0, 2.0 / 3.0):
            if rng.random() < 0.85:
                notes.append((t + sub * beat + rng.normal(0, jitter), int(rng.integers(60, 84)), int(rng.integers(50, 110))))
        t += beat
    return sorted(notes)[:n]


@pytest.mark.parametrize("jitter", [0.01, 0.02])
@pytest.mark.parametrize("bpm", [100, 132, 150, 200])
def test_a_swung_line_is_followed_at_its_tempo_not_at_its_long_notes(bpm, jitter):
    """The phase kernels were fitted on classical piano, where a beat's second eighth falls at
    its middle; a swung line at 132 or 150 was then mostly followed at 1.5 times its tempo (its
    long notes taken for beats, so every note on a beat or a half beat): share of estimates at
    the tempo 0.09 and 0.35 with 10 ms of spread. Hearing the long-short pairs moves the
    half-beat kernel to the swung places."""
    shares = []
    for seed in range(3):
        tracker, heard = TempoTracker(), []
        for i, (when, pitch, vel) in enumerate(_swung_line(bpm, seed, jitter, n=400)):
            tracker.onset(when, pitch, vel)
            if i % 10 == 0 and i >= 60:
                heard.append(tracker.estimate(when).heard_bpm / bpm)
        shares.append(np.mean(np.abs(np.array(heard) - 1.0) < 0.04))
    assert np.mean(shares) > 0.85, shares


def test_swung_half_moves_the_half_beat_kernel_and_keeps_its_mass():
    from improvd.tempo import KERNEL_BINS, swung_half

    x = np.arange(KERNEL_BINS)
    half = np.exp(-0.5 * ((x - KERNEL_BINS / 2) / 2.0) ** 2)
    half *= KERNEL_BINS / half.sum()
    swung = swung_half(half, 0.8)
    assert swung.sum() == pytest.approx(half.sum())
    assert swung[round(0.64 * KERNEL_BINS)] > 10 * half[round(0.64 * KERNEL_BINS)]
    assert swung[KERNEL_BINS // 2] == pytest.approx(0.2 * half[KERNEL_BINS // 2], rel=0.05)
    np.testing.assert_array_equal(swung_half(half, 0.0), half)


def test_ritardando_is_followed_and_settles_on_the_new_tempo():
    def rit(b):  # 120 for 24 beats, down to 80 over 16 beats, then 80
        return 120.0 if b < 24 else max(80.0, 120.0 - 40.0 * (b - 24) / 16)

    perf = perform(rit, 64, seed=5)
    tracker, predictions = follow(perf)
    before = [e for e in predictions if perf.beats[12] < e.time < perf.beats[24]]
    assert all(e.locked for e in before)
    assert np.median([e.bpm for e in before]) == pytest.approx(120, rel=0.04)
    assert tracker.estimate(perf.notes[-1][0]).bpm == pytest.approx(80, rel=0.04)
    after = beat_errors(perf, [e for e in predictions if e.time > perf.beats[48]], after_beat=48)
    assert np.median(after) < 0.030


def test_tempo_jump_is_taken_within_eight_beats():
    perf = perform(lambda b: 100.0 if b < 32 else 140.0, 72, seed=7)
    tracker, predictions = follow(perf)
    settled = [e.bpm for e in predictions if e.time > perf.beats[32 + 8]]
    assert np.median(settled) == pytest.approx(140, rel=0.04)
    assert np.median(beat_errors(perf, predictions, after_beat=40)) < 0.030
    before = [e.bpm for e in predictions if perf.beats[12] < e.time < perf.beats[32]]
    assert np.median(before) == pytest.approx(100, rel=0.04)


def test_rubato_does_not_make_the_reported_tempo_wobble():
    """+-4 % of push and pull around 110 every beat: the grid bends, the reported bpm holds."""
    perf = perform(lambda b: 110.0 * (1 + 0.04 * math.sin(b * 1.3)), 64, seed=11)
    _, predictions = follow(perf)
    reported = [e.bpm for e in predictions if e.time > perf.beats[16]]
    changes = sum(1 for a, b in zip(reported, reported[1:]) if a != b)
    assert np.median(reported) == pytest.approx(110, rel=0.04)
    assert changes < len(reported) / 10


def test_a_small_steady_change_of_tempo_reaches_the_reported_bpm():
    """120, then 122 (inside the 2 % dead band): the reported bpm must not stay 1.7 % off for
    good: a steady small gap is the tempo (stop 16: the dead band alone cost 2 of 168 solos Acc1
    after 8 bars on the CV dev)."""
    perf = perform(lambda b: 120.0 if b < 24 else 122.0, 72, seed=13)
    _, predictions = follow(perf)
    assert predictions[-1].bpm == pytest.approx(122.0, rel=0.006)
    _, old = follow(perf, settings=TrackerSettings(bpm_settle_beats=0))
    assert old[-1].bpm == pytest.approx(120.0, rel=0.006)  # the dead band alone holds the old tempo


def test_beat_one_is_found_in_three_four():
    perf = perform(steady(90), 48, meter=3, seed=13)
    tracker, predictions = follow(perf)
    late = [e for e in predictions if e.time > perf.beats[24]]
    errors = [min(abs(perf.downbeats - e.next_downbeat_time)) for e in late]
    assert np.median(errors) < 0.030
    grid = BeatGrid(TempoTracker(meter=3))
    beats = []
    for t, p, v in perf.notes:
        beats += grid.advance(math.nextafter(t, -math.inf)) if grid.time is not None else []
        grid.tracker.onset(t, p, v)
        beats += grid.advance(t)
    down = [b for b in beats if b.downbeat and b.time > perf.beats[24]]
    assert down and all(min(abs(perf.downbeats - b.time)) < 0.05 for b in down)


def test_count_in_locks_tempo_phase_and_bar_at_once():
    period = 60.0 / 96
    tracker = TempoTracker(meter=4)
    for i in range(4):
        tracker.onset(2.0 + i * period, 76, 100)
    e = tracker.estimate(2.0 + 3 * period + 0.01)
    assert e.locked and e.bpm == pytest.approx(96, rel=0.01)
    one = 2.0 + 4 * period  # the beat after the count-in is beat one
    assert e.next_beat_time == pytest.approx(one, abs=0.005)
    assert e.next_downbeat_time == pytest.approx(one, abs=0.005)


def test_only_a_count_in_overrides_the_tempo_prior():
    """Four notes a second apart: struck on one key they are a count-in, taken as 60 BPM at once
    even though the prior centres on 120; as a melody they are only evidence, and four notes do
    not outweigh the prior's preference for 120 (whose grid fits them as well)."""
    results = {}
    for name, pitches in (("count-in", (76, 76, 76, 76)), ("melody", (60, 62, 64, 65))):
        tracker = TempoTracker(fallback_bpm=120, meter=4)
        for i, pitch in enumerate(pitches):
            tracker.onset(1.0 + i, pitch, 80)
        results[name] = tracker.estimate(4.1)
    assert results["count-in"].locked and results["count-in"].bpm == pytest.approx(60, rel=0.01)
    assert results["count-in"].next_downbeat_time == pytest.approx(5.0, abs=0.005)
    assert results["melody"].bpm != pytest.approx(60, rel=0.04)


def test_beat_grid_counts_each_beat_once_in_order():
    perf = perform(lambda b: 100.0 if b < 20 else 130.0, 40, seed=17)
    tracker = TempoTracker()
    grid = BeatGrid(tracker)
    beats, last = [], None
    for t, p, v in perf.notes:
        if grid.time is not None:
            got = grid.advance(math.nextafter(t, -math.inf))
            assert all(b.time < t for b in got)
            beats += got
        tracker.onset(t, p, v)
        beats += grid.advance(t)
    indices = [b.index for b in beats]
    assert indices == sorted(set(indices)) and indices == list(range(indices[0], indices[-1] + 1))
    assert all(b2.time >= b1.time for b1, b2 in zip(beats, beats[1:]))


# ---------------------------------------------------------------- bad input
def assert_in_range(e):
    assert MIN_BPM <= e.bpm <= MAX_BPM and MIN_BPM <= e.heard_bpm <= MAX_BPM
    assert 0.0 <= e.confidence <= 1.0
    assert e.next_beat_time >= e.time - 1e-9 and e.next_downbeat_time >= e.next_beat_time - 1e-9


def test_single_note_is_unsure_and_keeps_the_fallback():
    tracker = TempoTracker(fallback_bpm=96)
    tracker.onset(5.0, 60, 90)
    for now in (5.0, 5.5, 60.0):
        e = tracker.estimate(now)
        assert_in_range(e)
        assert not e.locked and e.bpm == 96 and e.confidence < 0.3


@pytest.mark.parametrize("seed", range(4))
def test_random_onsets_are_unsure(seed):
    rng = np.random.default_rng(seed)
    tracker = TempoTracker(fallback_bpm=120)
    t = 1.0
    confidences = []
    for _ in range(300):
        t += rng.exponential(rng.choice([0.12, 0.25, 0.4]))
        tracker.onset(t, int(rng.integers(36, 96)), int(rng.integers(20, 127)))
        e = tracker.estimate(t)
        assert_in_range(e)
        confidences.append(e.confidence)
    assert np.median(confidences[50:]) < 0.3
    assert np.mean([c >= 0.3 for c in confidences[50:]]) < 0.1


def test_flood_is_ignored_and_the_confident_tempo_kept():
    perf = perform(steady(110), 32, seed=19)
    tracker, _ = follow(perf)
    before = tracker.estimate(perf.notes[-1][0])
    assert before.locked
    rng = np.random.default_rng(0)
    start = perf.notes[-1][0] + 0.5
    flood = np.sort(start + rng.random(10000))
    for t in flood:
        tracker.onset(t, int(rng.integers(0, 128)), int(rng.integers(1, 128)))
    during = tracker.estimate(flood[-1])
    assert_in_range(during)
    assert not during.locked and during.confidence == 0.0
    assert during.bpm == pytest.approx(before.bpm)
    fresh = TempoTracker(fallback_bpm=100)
    for t in flood:
        fresh.onset(t, 60, 100)
    e = fresh.estimate(flood[-1])
    assert_in_range(e)
    assert not e.locked and e.bpm == 100


@hsettings(max_examples=25, deadline=None)
@given(st.lists(st.tuples(st.floats(0.0, 0.5), st.integers(0, 127), st.integers(1, 127)), min_size=1, max_size=120),
       st.floats(MIN_BPM, MAX_BPM), st.sampled_from([2, 3, 4, "6/8"]))
def test_any_stream_stays_within_30_300(steps, fallback, meter):
    tracker = TempoTracker(fallback_bpm=fallback, meter=meter)
    t = 0.0
    for gap, pitch, velocity in steps:
        t += gap
        tracker.onset(t, pitch, velocity)
        assert_in_range(tracker.estimate(t))
    assert_in_range(tracker.estimate(t + 100.0))


# ---------------------------------------------------------------- seams
def test_meter_strings():
    assert parse_meter(4) == (4, False) and parse_meter("3/4") == (3, False)
    assert parse_meter("6/8") == (2, True) and parse_meter("12/8") == (4, True)


def test_fitted_features_are_the_trackers_own():
    """The onset model is fitted on onset_features; the tracker must form the same clusters with
    the same features, or the fit describes something the tracker never sees."""
    perf = perform(steady(120), 24, seed=23)
    times = np.array([n[0] for n in perf.notes])
    pitches = np.array([n[1] for n in perf.notes])
    velocities = np.array([n[2] for n in perf.notes])
    starts, features = onset_features(times, pitches, velocities)
    tracker = TempoTracker()
    seen = []
    for t, p, v in perf.notes:
        if tracker._cluster_t is not None and t - tracker._cluster_t >= tracker.settings.chord_window:
            seen.append((tracker._cluster_t, tracker._x))
        tracker.onset(t, p, v)
    seen.append((tracker._cluster_t, tracker._x))
    assert np.allclose([s[0] for s in seen], starts)
    assert np.allclose([s[1] for s in seen], features)


def test_bench_update_reports_the_cost():
    r = bench_update(400)
    assert r["notes"] == 400 and 0 < r["p50_us"] <= r["p99_us"] <= r["max_us"]
    # the work onset() defers is measured too: per 10 ms tick, per catch-up, per re-estimate
    assert 0 < r["tick_p50_us"] <= r["tick_p99_us"] <= r["tick_max_us"]
    assert r["reestimates"] > 0 and 0 < r["reestimate_p50_us"] <= r["reestimate_p99_us"]
    assert r["total_per_note_us"] > 0
    assert MIN_BPM <= r["bpm"] <= MAX_BPM


def test_the_tracker_imports_nothing_offline():
    probe = ("import sys, improvd.tempo as t; t.TempoTracker().onset(1.0, 60, 90); "
             "print(','.join(sorted(m for m in ('librosa', 'mir_eval', 'pretty_midi', 'scipy', 'sklearn', 'torch') if m in sys.modules)) or 'clean')")
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "clean"


@pytest.mark.parametrize("lost", [16.0, 17.0, 17.5, 18.0, 19.0, 20.0])
def test_a_note_lost_as_a_phrase_begins_does_not_move_the_tempo(lost):
    """A phrase after a rest, one of its first notes missing (left out, or lost on the way: over a
    loaded JACK an xrun drops every message of a cycle). Losing beat 17 once made the phrase's
    first four notes fit a grid 1.43 times slower, and the tracker followed it to 64, then 48 BPM."""
    from test_follow import performance

    period, t0 = 60.0 / 96, 1.0
    perf = performance(t0 + period * np.arange(100), [(1, 2), (4, 2), (8, 2)])
    notes = [(t0 + b * period, 84, 100) for b in range(4)]  # a count-in
    notes += [(n.start, n.pitch, n.velocity) for n in perf.notes if abs((n.start - t0) / period - lost) > 0.01]
    tracker, polls, heard = TempoTracker(), list(t0 + period * np.arange(48)), []
    for t, p, v in sorted(notes) + [(t0 + 48 * period, 0, 0)]:
        while polls and polls[0] <= t:
            e = tracker.estimate(polls.pop(0))
            heard.append(e.bpm if e.locked else None)
        if v:
            tracker.onset(t, p, v)
    after = [b for b in heard[16:] if b is not None]
    assert len(after) >= 24, heard
    assert all(abs(math.log(b / 96)) < 0.05 for b in after), [round(b) for b in after]
