"""The follow replays of tests/test_follow.py with whole onset clusters lost, as over a MIDI path
that drops messages: how many runs still answer on the performer's downbeats.

    python training/follow_loss.py [--loss 0.1] [--seeds 6] [--settings "level_strict=0.8"]

Six cases (steady 97 and 180 BPM, ritardando 72 and 97, a 20 % jump at 97 and 180), each replayed
with the clusters of ``--seeds`` seeds dropped at random, every run judged by the test's own
``check_answers`` (each answer within 30 ms of the downbeat extrapolated from the phrase). Stop 14
and stop 16: 7 of 36 runs fail at 10 %. A dev tool: the tests hold the loss-free replays.
"""

from __future__ import annotations

import argparse
import ast
import dataclasses
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

CASES = (("steady", 97, {}), ("steady", 180, {}), ("ritardando", 72, {"ritardando": (24, 40, 0.8)}),
         ("ritardando", 97, {"ritardando": (24, 40, 0.8)}), ("jump", 97, {"jump": (32, 97 * 1.2)}),
         ("jump", 180, {"jump": (32, 180 * 1.2)}))


def drop_clusters(perf, share: float, seed: int):
    """The performance without a random ``share`` of its onset clusters (every note starting
    at one instant goes together, as a lost MIDI cycle takes them all)."""
    rng = np.random.default_rng(seed)
    starts = sorted({round(n.start, 4) for n in perf.notes})
    gone = {s for s in starts if rng.random() < share}
    return dataclasses.replace(perf, notes=tuple(n for n in perf.notes if round(n.start, 4) not in gone))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--loss", type=float, default=0.1)
    ap.add_argument("--seeds", type=int, default=6)
    ap.add_argument("--settings", default="", help="TrackerSettings defaults to change, e.g. 'level_strict=0.8'")
    a = ap.parse_args()
    import test_follow as F

    from improvd import performer, tempo

    changes = {k.strip(): ast.literal_eval(v.strip()) for k, v in (kv.split("=", 1) for kv in a.settings.split(",") if kv.strip())}
    if changes:  # the engine's Performer builds its tracker's settings itself: change the defaults it gets
        made = tempo.TrackerSettings

        def with_changes(**kw):
            return made(**{**changes, **kw})
        tempo.TrackerSettings = performer.TrackerSettings = with_changes
    fails = runs = 0
    for name, bpm, kw in CASES:
        for seed in range(a.seeds):
            beats = F.beat_times(bpm, 100, **kw)
            starts, _ = F.answers(drop_clusters(F.performance(beats, F.PHRASES), a.loss, seed))
            runs += 1
            try:
                F.check_answers(beats, starts)
            except AssertionError as e:
                fails += 1
                print(f"{name} {bpm} seed {seed}: {str(e).splitlines()[0][:120]}")
    print(f"{fails} of {runs} runs fail with {a.loss:.0%} of the clusters lost")


if __name__ == "__main__":
    main()
