"""`improvd bench` runs and prints its tables. The figures themselves are the benchmark's to
report (on a quiet machine, see the README), never a test's to assert."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from jackkit import needs_jack


@pytest.mark.jack
@needs_jack
def test_bench_prints_loaded_figures_beside_unloaded_ones():
    p = subprocess.run([sys.executable, "-m", "improvd", "bench", "-m", "rnnrbm", "--steps", "20", "--seconds", "2",
                        "--load", "1", "--runs", "2"], capture_output=True, text=True, timeout=300,
                       env={**os.environ, "COLUMNS": "160"})
    assert p.returncode == 0, p.stderr
    out = p.stdout
    assert "step cost" in out and "rnnrbm" in out
    assert "unloaded" in out and "1 busy" in out, out
    for row in ("timing, sent", "timing, heard", "harmonize", "key to ear", "runs within"):
        assert row in out, (row, out)
    assert out.count(" of 2 runs") == 2, out  # both columns count their runs against the target
    assert "harmonize p99 per run" in out and "ready in" in out


def test_summary_counts_what_is_over_the_target():
    from improvd.bench import summary

    s = summary([0.5, 0.9, 1.2, 7.0], target=1.0)
    assert s["n"] == 4 and s["over"] == 2 and s["max"] == 7.0 and s["p50"] == pytest.approx(1.05)
    assert summary([]) == {"n": 0}


def test_harmony_reactions_time_only_notes_that_got_a_new_harmony():
    from improvd.bench import harmony_reactions

    keys = [0.0, 1.0, 2.0, 3.0]
    arrivals = [0.001, 2.001, 3.001]  # the second key never reached the input port
    sent = [(None, 0.003, [0x90, 50, 72]), (None, 0.5, [0x80, 50, 0]),
            (None, 2.004, [0x90, 52, 72])]  # never ended: the fourth key meets it still sounding
    r = harmony_reactions(keys, arrivals, sent, heard=[0.005, 2.006])
    assert r["reaction_ms"] == pytest.approx([2.0, 3.0]) and r["key_to_ear_ms"] == pytest.approx([5.0, 6.0])
    assert (r["lost"], r["held_over"], r["unanswered"]) == (1, 1, 0)


def test_a_message_lost_on_the_way_pairs_with_nothing():
    from improvd.bench import arrival_delays

    on, off = [0x90, 60, 90], [0x80, 60, 0]
    sent = [(1.0, 1.0, on), (1.5, 1.5, off), (2.0, 2.0, on), (2.5, 2.5, off)]
    heard = [(1.001, tuple(on)), (2.001, tuple(on)), (2.502, tuple(off))]  # the first note-off never arrived
    delays, unheard = arrival_delays(sent, heard)
    assert sorted(round(d * 1e3, 3) for d in delays) == [1.0, 1.0, 2.0] and unheard == 1


def test_fragment_cost_reports_both_ways_of_scoring():
    """The answer-start figure is printed beside its one-line-at-a-time baseline, and the model
    is left scoring together afterwards."""
    from rich.console import Console

    from improvd.bench import fragment_cost

    con = Console(record=True, width=300)
    r = fragment_cost(con, runs=3)
    text = con.export_text()
    assert r["batched"] and "together p50" in text and "one at a time p50" in text and "x at p99" in text
    assert all(v > 0 for v in r["together_ms"] + r["alone_ms"])
