"""The call-and-response evaluation (issue 15): phrases cut where a soloist breathes, relevance
as "own call minus other solos' calls", intervals bootstrapped over solos, and the degeneration
figures that tell a collapsed answer from a soloist's line. Then the collapse itself: the
README's Metheny example answers with an ostinato; those tests are expected to fail until the
generation fix and the loop guard land (strict, so they flag the fix when it comes)."""

from __future__ import annotations

import math
import subprocess
import sys

import numpy as np
import pytest

from conftest import METHENY, REPO, SHARED
from improvd.chords import Chord
from improvd.encoding import BAR_TICKS
from improvd.encoding.events import REST, Event
from improvd.evaluation import response as rs

C7, F7 = Chord(0, "dom7"), Chord(5, "dom7")
WJAZZD = SHARED / "jazz" / "wjazzd_chords.trainvalid.jsonl"


def line(pitches, start=0, step=6, chord=C7):
    """Notes of equal length back to back, from ``start``."""
    return tuple(Event(p, step, start + k * step, chord) for k, p in enumerate(pitches))


def random_phrase(rng, start, center, chord=C7):
    """A plausible phrase: 4-10 notes, a random walk around ``center`` on a 16th/8th grid."""
    n = int(rng.integers(4, 11))
    pitches = center + np.cumsum(rng.integers(-4, 5, n))
    steps = rng.choice([3, 6], n)
    onsets = start + np.concatenate([[0], np.cumsum(steps[:-1])])
    return tuple(Event(int(p), int(d), int(o), chord) for p, d, o in zip(pitches, steps, onsets))


def exchanges(rng, solos=12, per_solo=6, respond=lambda rng, call, start: call):
    """Synthetic exchanges: each solo in its own register, each response made by ``respond``."""
    out = []
    for s in range(solos):
        center = 50 + 3 * s
        for k in range(per_solo):
            call = random_phrase(rng, 20 * BAR_TICKS * k, center)
            start = 20 * BAR_TICKS * k + 10 * BAR_TICKS  # whole bars later: an echo keeps its groove
            resp = respond(rng, call, start)
            out.append(rs.Exchange(f"solo{s}", call, resp, start, (C7,) * 200))
    return out


def echo(rng, call, start):
    """The call played again from ``start``: as responsive as an answer can be."""
    return tuple(Event(e.pitch, e.duration, e.onset - call[0].onset + start, e.chord) for e in call)


def unrelated(rng, call, start):
    """A phrase from a register drawn afresh: nothing of the call in it."""
    return random_phrase(rng, start, int(rng.integers(50, 86)))


# -- phrases --------------------------------------------------------------------------------------
def test_phrases_split_at_a_beat_of_silence_and_keep_4_notes_within_4_bars():
    a = line([60, 62, 64, 65])  # ends at 24
    b = line([67, 65, 64, 62], start=24 + 11)  # 11 ticks later: the same phrase
    c = line([60, 59, 57, 55, 53], start=35 + 24 + 12)  # a beat later: a new phrase
    d = line([50, 52, 53], start=200)  # three notes: not a phrase
    rest = Event(REST, 12, 59, C7)
    events = a + b + (rest,) + c + d
    phrases = rs.split_phrases(events)
    assert [len(p) for p in phrases] == [8, 5, 3]
    assert [rs.is_phrase(p) for p in phrases] == [True, True, False]
    assert rs.phrase_pairs(events) == [(phrases[0], phrases[1])]
    long = line(list(range(50, 84)), step=6)  # 34 notes, 204 ticks: more than 4 bars
    assert rs.span(long) > 4 * BAR_TICKS and not rs.is_phrase(long)


def test_an_echo_scores_the_most_a_response_can_on_every_metric():
    call = line([60, 63, 67, 70, 72, 70], chord=C7)
    ex = rs.Exchange("s", call, echo(None, call, 100), 100, (C7,) * 50)
    scores = {m.name: m.score(ex, ex) for m in rs.METRICS}
    assert scores["pitch classes"] == pytest.approx(1.0)
    assert scores["groove (onset in bar)"] < 1.0  # 100 ticks later the bar positions move...
    shifted = rs.Exchange("s", call, echo(None, call, 2 * BAR_TICKS), 2 * BAR_TICKS, (C7,) * 50)
    assert rs.METRICS[3].score(shifted, shifted) == pytest.approx(1.0)  # ...whole bars later they do not
    assert scores["intervals"] == pytest.approx(1.0)
    assert scores["register"] == 0.0 and scores["density"] == 0.0
    # C Eb G Bb C Bb: over C7 all but the Eb are chord tones, over F7 the C, the Eb and the C
    assert scores["chord tones"] == pytest.approx(5 / 6)
    assert rs.chord_tone_share(call, 0, (F7,)) == pytest.approx(3 / 6)


def test_echoes_are_relevant_and_unrelated_answers_are_not():
    rng = np.random.default_rng(3)
    echoed = exchanges(rng, respond=echo)
    fresh = exchanges(rng, respond=unrelated)
    for metric in rs.METRICS[:5]:  # the chord metric is checked on its own below
        hi = rs.bootstrap_mean(rs.relevance_values(echoed, metric), [e.solo for e in echoed], np.random.default_rng(0))
        zero = rs.bootstrap_mean(rs.relevance_values(fresh, metric), [e.solo for e in fresh], np.random.default_rng(0))
        assert hi.low > 0, metric.name
        assert zero.low < 0 < zero.high, metric.name
        assert abs(zero.mean) < hi.mean / 3, metric.name


def test_the_chord_metric_rewards_following_the_own_chords_only():
    """Responses on the tones of the chords under them score above the same responses read
    against other solos' chords; responses on random pitch classes score about nothing."""
    rng = np.random.default_rng(5)
    out, noise = [], []
    for s in range(12):
        chord = Chord(int(rng.integers(12)), "maj")
        tones = sorted(chord.tones)
        for k in range(5):
            call = random_phrase(rng, 1000 * k, 60, chord)
            follow = tuple(Event(60 + tones[int(rng.integers(4))], 6, 1000 * k + 500 + 6 * j, chord) for j in range(6))
            wander = tuple(Event(60 + int(rng.integers(12)), 6, 1000 * k + 500 + 6 * j, chord) for j in range(6))
            out.append(rs.Exchange(f"s{s}", call, follow, 1000 * k + 500, (chord,) * 40))
            noise.append(rs.Exchange(f"s{s}", call, wander, 1000 * k + 500, (chord,) * 40))
    chords = rs.METRICS[5]
    follow_iv = rs.bootstrap_mean(rs.relevance_values(out, chords), [e.solo for e in out], np.random.default_rng(0))
    noise_iv = rs.bootstrap_mean(rs.relevance_values(noise, chords), [e.solo for e in noise], np.random.default_rng(0))
    assert follow_iv.low > 0.4
    assert noise_iv.low < 0.1 and noise_iv.mean < follow_iv.low


def test_a_missing_answer_counts_as_no_value_not_as_zero():
    rng = np.random.default_rng(1)
    ex = exchanges(rng, solos=4, per_solo=2, respond=echo)
    ex[0] = rs.Exchange(ex[0].solo, ex[0].call, (), ex[0].start, ex[0].chords)
    values = rs.relevance_values(ex, rs.METRICS[0])
    assert math.isnan(values[0]) and not np.isnan(values[1:]).any()
    assert rs.bootstrap_mean(values, [e.solo for e in ex], rng).n == len(ex) - 1


# -- the bootstrap --------------------------------------------------------------------------------
def test_the_bootstrap_interval_holds_the_mean_and_resamples_whole_solos():
    rng = np.random.default_rng(0)
    # 10 solos whose phrases agree within a solo but not across: solos are the unit of chance
    groups = np.repeat(np.arange(10), 20)
    values = rng.normal(0, 1, 10)[groups] + rng.normal(0, 0.05, 200)
    iv = rs.bootstrap_mean(values, groups, np.random.default_rng(1))
    assert iv.low < iv.mean < iv.high and iv.n == 200 and iv.groups == 10
    # a bootstrap over the 200 phrases as if independent would be about sqrt(20) times narrower
    naive = rs.bootstrap_mean(values, np.arange(200), np.random.default_rng(1))
    assert (iv.high - iv.low) > 3 * (naive.high - naive.low)
    flat = rs.bootstrap_mean([0.25] * 6, ["a", "a", "b", "b", "c", "c"], np.random.default_rng(2))
    assert flat.low == flat.mean == flat.high == 0.25


# -- degeneration ---------------------------------------------------------------------------------
def test_degeneration_figures_tell_a_loop_from_a_line():
    loop = [77, 77, 77, 78] * 8
    assert rs.distinct_pitches(loop) == 2
    assert rs.top_pitch_share(loop) == 0.75
    assert rs.repeated_ngram_share(loop) == pytest.approx(1 - 4 / 29)
    scale = list(range(60, 80))
    assert rs.repeated_ngram_share(scale) == 0.0 and rs.top_pitch_share(scale) == 1 / 20
    assert math.isnan(rs.repeated_ngram_share([60, 62, 64]))


def test_long_windows_take_16_bars_then_the_next_8():
    notes = line([60 + (k % 7) for k in range(200)], step=6)  # 25 bars of 8ths
    windows = rs.long_windows(notes)
    assert len(windows) == 1
    call, human, start = windows[0]
    assert start == 16 * BAR_TICKS and len(call) == 128 and len(human) == 64
    assert max(e.onset + e.duration for e in call) <= start


def test_round_robin_spreads_a_few_pairs_over_solos():
    assert rs.round_robin([[1, 2, 3], [4], [5, 6]], 4) == [1, 4, 5, 2]
    assert rs.round_robin([[1, 2], [3]], None) == [1, 3, 2]


def test_a_chart_of_the_solos_chords_reads_back_the_same_chords():
    from improvd.chords import Progression

    chords = [Chord(r, k) for r, k in ((2, "min7"), (7, "dom7"), (0, "maj"), (9, "dom7alt"), (11, "m7b5"), (4, "dim"),
                                       (8, "aug"), (1, "minmaj7"))]
    at = lambda t: chords[(t // 12) % len(chords)]  # a chord a beat
    prog = Progression.parse(rs.chart_text(at, 3, 2), BAR_TICKS)
    for t in range(0, 2 * BAR_TICKS, 12):
        assert (prog.at(t).root, prog.at(t).kind) == (at(3 * BAR_TICKS + t).root, at(3 * BAR_TICKS + t).kind)


# -- the command, end to end ------------------------------------------------------------------------
def test_evaluate_response_prints_both_tables_on_a_few_pairs():
    if not WJAZZD.exists():
        pytest.skip("WJazzD is not in ../shared/data/jazz")
    env = {"COLUMNS": "200", "PATH": "/usr/bin:/bin", "HOME": "/nonexistent"}
    out = subprocess.run([sys.executable, "-m", "improvd", "evaluate", "jazz", "--task", "response", "--n", "2",
                          "--also", "deepjazz"], capture_output=True, text=True, cwd=REPO, timeout=120, env=env)
    assert out.returncode == 0, out.stderr
    text = " ".join(out.stdout.split())  # titles wrap at the terminal width
    assert "Relevance on the valid split" in text and "2 phrase pairs of 2 solos" in text
    assert "Degeneration on the valid split" in text and "2 calls of 16 bars from 2 solos" in text
    for row in ("the soloist's next phrase", "the soloist's next 8 bars", "jazz, the chart", "deepjazz, no chart"):
        assert row in text, row
    # rnnrbm does not play call-response (issue 15, item 4): one line, the model, the mode, the fix
    refused = subprocess.run([sys.executable, "-m", "improvd", "evaluate", "jazz", "--task", "response", "--n", "2",
                              "--also", "rnnrbm"], capture_output=True, text=True, cwd=REPO, timeout=120, env=env)
    assert refused.returncode == 2 and len(refused.stderr.strip().splitlines()) == 1
    assert "rnnrbm" in refused.stderr and "call-response" in refused.stderr and "harmonize" in refused.stderr
    bad = subprocess.run([sys.executable, "-m", "improvd", "evaluate", "jazz", "--task", "respons"],
                         capture_output=True, text=True, cwd=REPO, timeout=60)
    assert bad.returncode == 2 and "--task 'respons' is not a task" in bad.stderr


def test_rnnrbm_refuses_call_response_with_one_line_naming_the_fix(tmp_path):
    """A chorale model's answers took nothing of the call or the chart (relevance about 0 on all
    six measures): asked for call-response it is refused at start, harmonize named as the fix."""
    out = subprocess.run([sys.executable, "-m", "improvd", "replay", str(REPO / "examples" / "blues_calls.mid"), "-m", "rnnrbm",
                          "--mode", "call-response", "-o", str(tmp_path / "x.mid")], capture_output=True, text=True, cwd=REPO,
                         timeout=120)
    assert out.returncode == 2 and len(out.stderr.strip().splitlines()) == 1, out.stderr
    assert "rnnrbm" in out.stderr and "call-response" in out.stderr and "harmonize" in out.stderr


# -- answers that develop the call (issue 15, item 2) ---------------------------------------------------
def echo_relevance(echo: float | None, n: int = 16) -> dict:
    """Relevance of jazz's answers to the first ``n`` valid phrase pairs at ``echo`` (None: the
    model's default), through
    :func:`rs.answer` (replay: the daemon's own path, the voice's motif memory included)."""
    from improvd.evaluation.jazz import chord_lookup
    from improvd.models import load_model

    solos, _ = rs.valid_solos([], None)
    pairs = rs.round_robin([[(name, chord_lookup(ev), c, x) for c, x in rs.phrase_pairs(ev)] for name, ev in solos], n)
    model = load_model("jazz")
    exchanges = []
    for k, (name, at, call, nxt) in enumerate(pairs):
        a = rs.answer(model, call, at, rs.span(nxt), k, settings=None if echo is None else {"echo": echo})
        exchanges.append(rs.Exchange(name, call, a.notes, a.start, rs.chords_from(at, a.start, rs.span(nxt))))
    return {mt.name: float(np.nanmean(rs.relevance_values(exchanges, mt))) for mt in rs.METRICS}


def test_echo_makes_answers_take_up_the_calls_shape_and_groove():
    """The echo control moves what the probe measures: the default (0.85) against the model
    alone (0), on the same calls and seeds. Intervals and groove are what the model alone
    hardly echoes (+0.01, +0.00 on all valid pairs)."""
    if not WJAZZD.exists():
        pytest.skip("WJazzD is not in ../shared/data/jazz")
    alone, echoed = echo_relevance(0.0), echo_relevance(None)
    for name in ("intervals", "groove (onset in bar)", "pitch classes"):
        assert echoed[name] > alone[name] + 0.03, (name, alone[name], echoed[name])


# -- the collapse (issue 15, item 3) ---------------------------------------------------------------
def soloists_most_repetitive() -> dict:
    """The most repetitive 8 bars any valid soloist played after 16 bars of their solo: the
    top of the human range an answer has to stay within."""
    solos, _ = rs.valid_solos([], None)
    human = [rs.degeneration(h) for _, events in solos for _c, h, _s in rs.long_windows(events)]
    return {k: max(d[k] for d in human) for k in ("top pitch share", "repeated 4-grams")}


def metheny_answers(windows, seeds, controls=False, **flags):
    from improvd.clock import Clock
    from improvd.config import load_settings
    from improvd.midi.files import read_midi
    from improvd.replay import replay, select

    perf0 = read_midi(METHENY)
    out = {}
    for beats in windows:
        perf = select(perf0, {11}, beats)
        for seed in seeds:
            s = load_settings(None, {"tempo": round(perf.tempo, 3), "seed": seed, **flags}, environ={})
            res = replay(perf, s, controls=controls)
            out[(beats, seed)] = rs.degeneration(rs.machine_notes(res.machine, Clock(s.tempo), 0, lambda t: None))
    return out


def collapsed(answers, limit) -> list:
    return [(key, round(d["repeated 4-grams"], 2), round(d["top pitch share"], 2)) for key, d in answers.items()
            if d["repeated 4-grams"] > limit["repeated 4-grams"] or d["top pitch share"] > limit["top pitch share"]]


@pytest.mark.parametrize("controls", [False, True], ids=["pedal only", "with the guitar's controllers"])
def test_the_readme_metheny_example_never_collapses(metheny, controls):
    """Was: the guitar's mod wheel (CC1, back to 0 at beat 545) set the temperature to 0.1 and
    the near-greedy model looped (docs/collapse.md). Now a replay hears only the pedal unless
    asked, and a wheel at rest means the usual temperature."""
    if not WJAZZD.exists():
        pytest.skip("WJazzD is not in ../shared/data/jazz")
    limit = soloists_most_repetitive()
    answers = metheny_answers([(476, 548), (520, 548)], range(4), controls=controls)
    assert not collapsed(answers, limit), f"answers past the soloists' most repetitive 8 bars {limit}"


def test_a_low_temperature_answer_never_collapses(metheny):
    """Was: at temperature 0.1 the jazz model repeated 'pitch, rest' and max_repeats turned it
    into 'x x x y' (docs/collapse.md). The voice's loop guard steers the model out."""
    if not WJAZZD.exists():
        pytest.skip("WJazzD is not in ../shared/data/jazz")
    limit = soloists_most_repetitive()
    answers = metheny_answers([(476, 528), (476, 540)], range(2), temperature=0.1)
    assert not collapsed(answers, limit), f"answers past the soloists' most repetitive 8 bars {limit}"
