"""Constrained folk tunes through the seeds' own renderer (abc2midi), and the constrained
sampler's bar and repeat accounting on hand-written ABC (no model needed for those)."""

from __future__ import annotations

import shutil
from fractions import Fraction

import numpy as np
import pytest

from improvd.models.folk import first_violation
from training.folk import abc2midi_check


def ok(body: str, **kw) -> bool:
    return first_violation(body, **kw) is None


# -- bar accounting ----------------------------------------------------------------------------

@pytest.mark.parametrize("body, meter, unit", [
    ("ABcd efga|bagf edcB|A8|]\n\n", "4/4", "1/8"),
    ("ABcd efga|bagf edcB|A8|]\n\n", "C", "1/8"),
    ("ABcd efga|bagf edcB|A8|]\n\n", "C|", "1/8"),
    ("ABc def|gfe dcB|A6|]\n\n", "6/8", "1/8"),
    ("A2B c2d|e6|]\n\n", "3/4", "1/8"),
    ("ABcd efga ABcd efga|a16|]\n\n", "4/4", "1/16"),
    ("AB cd|e4|]\n\n", "2/4", "1/8"),
])
def test_full_bars_in_every_meter(body, meter, unit):
    assert ok(body, meter=meter, unit=unit)


@pytest.mark.parametrize("body, meter", [
    ("ABcd efga|ABcd efg|a", "4/4"),  # 7 eighths in 4/4 (only the first bar may be short)
    ("ABcd efgab|", "4/4"),  # 9: the ninth note never gets in
    ("ABc def|ABc de|f", "6/8"),
    ("A2B c2d|A2B c2de|", "3/4"),
])
def test_a_short_or_long_bar_is_refused(body, meter):
    i = first_violation(body, meter=meter)
    assert i is not None and i < len(body)


def test_pickup_and_its_complement():
    # a pickup of one eighth, sections ending one eighth short, next pickup completes them
    body = "A|ABc def|ABc de:|!\n|:f|ABc def|ABc de:|!\n\n"
    assert ok(body, meter="6/8")
    # the last bar before :| must complement the pickup of the section it repeats
    assert not ok("A|ABc def|ABc def:|!\n\n", meter="6/8")
    # a short first bar after a full last bar is a stray pickup
    assert not ok("ABc def|ABc def:|!\n|:f|ABc def|", meter="6/8")


def test_only_the_first_bar_may_be_short_on_its_own():
    assert ok("AB|cdef gabc|d8|]\n\n", meter="4/4")
    assert not ok("ABcd efga|AB|cdef gabc|", meter="4/4")


def test_triplets_count_two_for_three():
    assert ok("(3ABc d2 e4|f8|]\n\n", meter="4/4")
    assert ok("(3ABc (3def g4|a8|]\n\n", meter="4/4")
    assert not ok("(3ABc d2 e4 f|", meter="4/4")
    # a tuplet is never cut by a bar line
    assert not ok("ABcd ef(3ga|b", meter="4/4")


def test_broken_rhythm_keeps_the_pair_length():
    assert ok("A>B c>d e<f g>a|b8|]\n\n", meter="4/4")
    assert not ok("A>B c>d e<f g>a b|", meter="4/4")
    assert not ok("A2>B", meter="4/4")  # a pair of unequal notes abc2midi refuses


def test_chords_take_one_length_after_the_bracket():
    assert ok("[CEG]2 [DF]2 A4|[GBd]8|]\n\n", meter="4/4")
    assert not ok("[C2E2]", meter="4/4")
    assert not ok("[CEG]2 [DF]2 A4 [CE]|", meter="4/4")


def test_repeats_and_endings():
    body = "|:ABc def|[1ABc def:|[2ABc dcB||\n\n"
    assert ok(body, meter="6/8")
    # :| with no |: after an earlier repeat is refused (abc2midi "assumes" it, with a warning)
    assert not ok("ABc def|ABc def:|!\nABc def|", meter="6/8")
    # and so is a tune that ends with a repeat still open
    assert not ok("|:ABc def|ABc def|]", meter="6/8")
    # [1 closed by :| is followed by [2
    assert not ok("|:ABc def|[1ABc def:|ABc", meter="6/8")


def test_ties_slurs_and_the_end():
    assert ok("ABcd e4-|e2 f2 (ga) b2|a8|]\n\n", meter="4/4")
    assert not ok("ABcd e4-|f", meter="4/4")  # a tie to another pitch
    assert not ok("(AB (cd", meter="4/4")  # a slur inside a slur
    assert not ok("(ABcd efga|", meter="4/4")  # a slur left open over the bar line
    assert not ok("ABcd efga|bagf e\n\n", meter="4/4")  # the tune ends mid-bar


def test_an_answer_starting_mid_bar_fills_that_bar_first():
    # three eighths (18 ticks) left of the bar the performer was in
    assert ok("ABc|defg abc'a|", meter="4/4", tune=False, first_bar=Fraction(18))
    assert not ok("ABcd|", meter="4/4", tune=False, first_bar=Fraction(18))


# -- the bundled model through abc2midi --------------------------------------------------------

N_TUNES = 40


@pytest.mark.skipif(shutil.which("abc2midi") is None, reason="abc2midi is not installed (apt install abcmidi)")
def test_constrained_tunes_pass_abc2midi():
    from improvd.models import load_model

    m = load_model("folk")
    rng = np.random.default_rng(7)
    errors, warned = [], 0
    for _ in range(N_TUNES):
        tune = m.lm.sample_tune(rng, temperature=1.0, constrained=True)
        r = abc2midi_check(tune)
        if not r["ok"]:
            errors.append((tune, r["errors"]))
        warned += bool(r["warnings"])
    assert not errors, errors[:2]
    assert warned <= 0.05 * N_TUNES
