"""Cross-validated dev scores of the tempo tracker over the whole train split of the timing corpora.

    python training/tempo_cv.py NETDIR [--settings "tempo_change=0.2"] [--asap-n 200] [--asap-only | --wjazzd-only]

NETDIR holds net_f0.npz .. net_f4.npz, each made by ``training/tempo_net.py fit --fold K/5``
from the same build: every ASAP performance and WJazzD solo of the train split is scored with
the net of the fold that did not see its piece, so tracker settings can be compared on all of
train (611 performances of ~190 pieces, 168 solos) instead of the one dev fold (12 pieces, a
poor guide: 0.663 there against 0.508 on valid at stop 14). The valid split is not read.
About 6.5 minutes on two cores; --asap-n 200 --asap-only about 2.
"""

from __future__ import annotations

import argparse
import ast
import multiprocessing
import os
import time
from pathlib import Path

import numpy as np

_NETDIR = ""


def _init(netdir: str) -> None:
    global _NETDIR
    _NETDIR = netdir


def _job(args: tuple):
    kind, folder, item, fold, settings = args
    from improvd import tempo_net
    from improvd.evaluation import timing as T
    from improvd.tempo import TrackerSettings

    path = os.path.join(_NETDIR, f"net_f{fold}.npz")
    if tempo_net._CACHE.get("path") != path:  # the tracker reads the bundled net through this cache
        tempo_net._CACHE["net"] = tempo_net.TempoNet.load(path)
        tempo_net._CACHE["path"] = path
    s = TrackerSettings(**settings)
    if kind == "asap":
        r = T.score_performance((folder, item, s, False))
        return kind, r["rows"]["tracker, causal"]
    r = T.score_solo((folder, item[0], item[1], s, False))
    return kind, (r["bpm"], r["estimates"])


def run(netdir: Path, data: Path, settings: dict, asap_n: int = 0, asap_only: bool = False, workers: int = 2,
        wjazzd_only: bool = False) -> dict:
    from improvd.evaluation import timing as T
    from training.tempo_net import in_fold

    def fold(name: str, corpus: str) -> int:
        return next(k for k in range(5) if in_fold({"name": name, "corpus": corpus}, (k, 5)))

    asap, jazz = data / "asap", data / "wjazzd_onsets"
    items = T._pick(T.asap_items(asap, "train"), asap_n, 0)  # the seeded subset `evaluate timing --n` takes
    jobs = [] if wjazzd_only else [("asap", str(asap), it, fold(it[0], "asap"), settings) for it in items]
    if not asap_only:
        jobs += [("wjazzd", str(jazz), it, fold(it[0], "wjazzd"), settings) for it in T.wjazzd_items(jazz, "train")]
    jobs.sort(key=lambda j: j[3])
    with multiprocessing.get_context("spawn").Pool(workers, initializer=_init, initargs=(str(netdir),)) as pool:
        res = pool.map(_job, jobs, chunksize=4)
    rows = [r for k, r in res if k == "asap"]
    out = {"asap_n": len(rows)} | {k: float(np.mean([r[k] for r in rows])) if rows else float("nan") for k in ("F", "CMLt", "AMLt", "downbeat F")}
    solos = [r for k, r in res if k == "wjazzd"]
    for row in T.TRACKER_ROWS + T.HEARD_ROWS:
        hits = [T.tempo_hits(est[row], bpm) for bpm, est in solos if row in est]
        if hits:
            out[row] = (100 * np.mean([h[0] for h in hits]), 100 * np.mean([h[1] for h in hits]))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("netdir", type=Path)
    ap.add_argument("--data", type=Path, default=Path(__file__).resolve().parents[1].parent / "shared" / "data" / "timing")
    ap.add_argument("--settings", default="", help="TrackerSettings keywords, e.g. 'tempo_change=0.2, net_mix=0.6'")
    ap.add_argument("--asap-n", type=int, default=0, help="a seeded subset of the ASAP performances (0: all)")
    ap.add_argument("--asap-only", action="store_true")
    ap.add_argument("--wjazzd-only", action="store_true")
    a = ap.parse_args()
    t0 = time.perf_counter()
    settings = {k.strip(): ast.literal_eval(v.strip()) for k, v in (kv.split("=", 1) for kv in a.settings.split(",") if kv.strip())}
    r = run(a.netdir, a.data, settings, a.asap_n, a.asap_only, wjazzd_only=a.wjazzd_only)
    line = f"ASAP n={r['asap_n']} F {r['F']:.3f} CMLt {r['CMLt']:.3f} AMLt {r['AMLt']:.3f} downbeat F {r['downbeat F']:.3f}"
    for row in (k for k in r if k.startswith("tracker ")):
        line += f" | {row.split(',')[0][8:]} {row.split(': ')[1]} {r[row][0]:.1f}/{r[row][1]:.1f}"
    print(f"{line} ({time.perf_counter() - t0:.0f} s)")


if __name__ == "__main__":
    main()
