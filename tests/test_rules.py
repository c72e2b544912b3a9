"""Each post-processing rule as a pure function: what it does to one candidate note."""

import dataclasses

import numpy as np
import pytest
from hypothesis import given, settings as hsettings, strategies as st

from improvd.chords import parse_chord
from improvd.config import RuleSettings
from improvd.rules import (Candidate, RuleContext, apply_rules, humanize, max_leap, max_repeats, min_length,
                           polyphony, range_clamp, snap, velocity)


def ctx(chord=None, recent=(), pv=None, sounding=0, seed=0, **rules):
    return RuleContext(parse_chord(chord) if chord else None, tuple(recent), pv, sounding,
                       np.random.default_rng(seed), RuleSettings(**rules))


def note(pitch=60, vel=90, dur=6):
    return Candidate(pitch, vel, dur)


@given(st.integers(0, 127), st.integers(0, 100), st.integers(12, 60))
def test_range_folds_by_octaves_into_range(pitch, lo, width):
    hi = min(127, lo + width)
    out = range_clamp(note(pitch), ctx(range_low=lo, range_high=hi))
    assert lo <= out.pitch <= hi
    assert out.pitch % 12 == pitch % 12  # the pitch class the model chose is kept
    if lo <= pitch <= hi:
        assert out.pitch == pitch


def test_range_examples():
    c = ctx(range_low=48, range_high=72)
    assert range_clamp(note(30), c).pitch == 54
    assert range_clamp(note(100), c).pitch == 64
    assert range_clamp(note(60), c).pitch == 60
    # a range narrower than an octave still gives a pitch inside it
    assert 60 <= range_clamp(note(59), ctx(range_low=60, range_high=65)).pitch <= 65


def test_max_leap_moves_wide_leaps_by_octaves():
    c = ctx(recent=(60,), max_leap=7)
    assert max_leap(note(79), c).pitch == 67  # a 19th up becomes a 5th up
    assert max_leap(note(41), c).pitch == 53  # a 19th down becomes a 7th down... by octaves
    assert max_leap(note(64), c).pitch == 64  # a 3rd is fine
    assert max_leap(note(90), ctx(max_leap=7)).pitch == 90  # nothing before: nothing to limit


def test_max_leap_never_leaves_the_range():
    c = ctx(recent=(40,), max_leap=5, range_low=36, range_high=96)
    out = max_leap(note(90), c)
    assert 36 <= out.pitch <= 96 and out.pitch % 12 == 90 % 12
    assert out.pitch - 40 <= 12


@given(st.integers(36, 96), st.integers(36, 96), st.integers(6, 24))
def test_max_leap_property(prev, pitch, limit):
    out = max_leap(note(pitch), ctx(recent=(prev,), max_leap=limit))
    assert out.pitch % 12 == pitch % 12
    assert 36 <= out.pitch <= 96
    octaves = [q for q in range(36, 97) if q % 12 == pitch % 12]
    if any(abs(q - prev) <= limit for q in octaves):
        assert abs(out.pitch - prev) <= limit
    else:
        assert abs(out.pitch - prev) <= abs(pitch - prev)


def test_max_leap_small_limit_picks_the_nearer_octave():
    assert max_leap(note(68), ctx(recent=(60,), max_leap=3)).pitch == 56


def test_max_repeats_breaks_a_fourth_repeat():
    c = ctx(chord="Cmaj7", recent=(64, 64, 64), max_repeats=3)
    out = max_repeats(note(64), c)
    assert out.pitch != 64
    assert out.pitch % 12 in parse_chord("Cmaj7").tones | parse_chord("Cmaj7").scale
    assert abs(out.pitch - 64) <= 2
    # three in a row is allowed, and an interrupted run is not a repeat
    assert max_repeats(note(64), ctx(chord="Cmaj7", recent=(64, 64), max_repeats=3)).pitch == 64
    assert max_repeats(note(64), ctx(chord="Cmaj7", recent=(64, 62, 64), max_repeats=3)).pitch == 64
    # with no chord any neighbour will do
    assert max_repeats(note(64), ctx(recent=(64, 64, 64), max_repeats=3)).pitch in (63, 65)


def test_min_length():
    assert min_length(note(dur=1), ctx(min_length=3)).duration == 3
    assert min_length(note(dur=9), ctx(min_length=3)).duration == 9


def test_snap_strength_one_always_lands_on_a_chord_tone():
    tones = parse_chord("G7").tones
    for p in range(48, 84):
        out = snap(note(p), ctx(chord="G7", snap_strength=1.0))
        assert out.pitch % 12 in tones
        assert abs(out.pitch - p) <= 2  # the nearest one, not a jump
        if p % 12 in tones:
            assert out.pitch == p


def test_snap_lands_on_the_chord_as_written():
    """Over C6 a B (the template major 7th) is not a chord tone: it snaps to the A or the C."""
    assert snap(note(71), ctx(chord="C6", snap_strength=1.0)).pitch in (69, 72)
    assert snap(note(70), ctx(chord="C6", snap_strength=1.0)).pitch == 69
    assert snap(note(61), ctx(chord="C7b9", snap_strength=1.0)).pitch == 61  # the b9 is written


def test_snap_to_scale():
    scale = parse_chord("Dm7").scale
    for p in range(48, 72):
        assert snap(note(p), ctx(chord="Dm7", snap_strength=1.0, snap_to="scale")).pitch % 12 in scale


def test_snap_strength_zero_and_no_chord_leave_notes_alone():
    for p in range(48, 72):
        assert snap(note(p), ctx(chord="G7", snap_strength=0.0)).pitch == p
        assert snap(note(p), ctx(snap_strength=1.0)).pitch == p


def test_snap_half_strength_snaps_about_half_the_outside_notes():
    rng_ctx = ctx(chord="Cmaj7", snap_strength=0.5, seed=1)
    moved = sum(snap(note(61), rng_ctx).pitch != 61 for _ in range(2000))
    assert 850 < moved < 1150


def test_polyphony_drops_a_note_past_the_limit():
    assert polyphony(note(), ctx(sounding=3, max_polyphony=4)) == note()
    assert polyphony(note(), ctx(sounding=4, max_polyphony=4)) is None


def test_velocity_follows_the_performer():
    assert velocity(note(vel=100), ctx(pv=40.0, velocity_follow=1.0)).velocity == 40
    assert velocity(note(vel=100), ctx(pv=40.0, velocity_follow=0.0)).velocity == 100
    assert velocity(note(vel=100), ctx(pv=40.0, velocity_follow=0.5)).velocity == 70
    assert velocity(note(vel=100), ctx(pv=None, velocity_follow=1.0)).velocity == 100  # nobody played yet
    soft = velocity(note(vel=90), ctx(pv=20.0, velocity_follow=0.8)).velocity
    loud = velocity(note(vel=90), ctx(pv=120.0, velocity_follow=0.8)).velocity
    assert soft < 40 < 100 < loud <= 127


def test_humanize_is_never_early_and_stays_a_valid_velocity():
    c = ctx(humanize_ms=8.0, seed=3)
    outs = [humanize(note(vel=v), c) for v in (1, 2, 64, 126, 127) for _ in range(200)]
    assert all(o.delay_ms >= 0 for o in outs)
    assert any(o.delay_ms > 1 for o in outs)  # it does move notes
    assert all(1 <= o.velocity <= 127 for o in outs)
    assert np.mean([o.delay_ms for o in outs]) < 4 * 8.0
    assert humanize(note(), ctx(humanize_ms=0.0)) == note()


def test_rules_do_not_mutate_their_input():
    n = note(30, 100, 1)
    c = ctx(chord="G7", recent=(60, 60, 60, 60), pv=50.0, snap_strength=1.0, humanize_ms=5.0)
    for name in RuleSettings().order + ["humanize"]:
        apply_rules(n, c, [name])
    assert n == note(30, 100, 1)


def test_chain_order_matters_and_is_the_users():
    c = ctx(chord="Db7", range_low=60, range_high=72, snap_strength=1.0)
    # snap then range: C (84) snaps up to Db (85), then folds into the range
    assert apply_rules(note(84), c, ["snap", "range"]).pitch == 61
    # range then snap: C folds to 72, then snaps down to B (71): Db 73 would leave the range
    assert apply_rules(note(84), c, ["range", "snap"]).pitch == 71
    assert apply_rules(note(73), ctx(sounding=9), ["range", "polyphony"]) is None
    assert apply_rules(note(73), ctx(), []) == note(73)


@given(st.integers(0, 127), st.sampled_from(["C7", "Db7", "F#m7b5", "Bmaj7", "Ebdim7"]),
       st.lists(st.integers(36, 96), max_size=4), st.integers(40, 60), st.integers(12, 30))
@hsettings(max_examples=300)
def test_default_chain_keeps_every_note_in_range(pitch, chord, recent, lo, width):
    """What the musician set as the range is a promise, whatever snap or max_repeats do after it."""
    hi = lo + width
    c = ctx(chord=chord, recent=recent + [pitch] * 3, range_low=lo, range_high=hi, snap_strength=1.0)
    out = apply_rules(note(pitch), c, RuleSettings().order)
    assert out is not None and lo <= out.pitch <= hi
