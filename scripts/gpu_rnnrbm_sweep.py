"""The RNN-RBM sweep as one GPU job: candidates trained side by side, each evaluated with the full
AIS, the best one's AIS checked for convergence; checkpoints and figures come back under --out.

Not part of the installed package: run it from the repo root on the GPU box, where improvd is
installed (pip install -e . --no-deps) beside torch:

    python3 scripts/gpu_rnnrbm_sweep.py --data JSB.json --out $OUT [--seconds 300] [--only NAME ...]

The rounds it ran, and what each settled, are in docs/rnnrbm_sweeps.md.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
from pathlib import Path

from improvd.training.rnnrbm.evaluate import ais_check, evaluate

# Candidates: extra data (None: the --data given) and preset overrides (`train --set`); a seed=N
# among them is the run's --seed.
_LONG = ["plateau=4", "patience=20", "epochs=2000"]
SWEEP = {
    # round 1 (2026-11-24): batch size, dropout, GRU, k
    "rnn-b4": (None, ["batch_size=4", *_LONG]),
    "rnn-drop": (None, ["batch_size=8", "dropout=0.3", *_LONG]),
    "gru": (None, ["cell=gru", "batch_size=8", *_LONG]),
    "gru-drop": (None, ["cell=gru", "recurrent=200", "dropout=0.3", "batch_size=8", *_LONG]),
    "gru-h300-drop": (None, ["cell=gru", "hidden=300", "recurrent=200", "dropout=0.4", "batch_size=8", *_LONG]),
    "gru-drop-k25": (None, ["cell=gru", "recurrent=200", "dropout=0.3", "batch_size=8", "k=25", *_LONG]),
    "notts-gru": (".rnnrbm_data/nottingham.json", ["cell=gru", "recurrent=200", "dropout=0.3", "batch_size=32",
                                                     "pretrain_epochs=5", *_LONG]),
    # round 2: the step size
    "rnn-lr3e-3": (None, ["lr=0.003", *_LONG]),
    "rnn-lr5e-3": (None, ["lr=0.005", *_LONG]),
    "rnn-lr1e-2": (None, ["lr=0.01", *_LONG]),
    "rnn-lr3e-3-b8": (None, ["lr=0.003", "batch_size=8", *_LONG]),
    "rnn-lr3e-3-h300": (None, ["lr=0.003", "hidden=300", *_LONG]),
    "gru-lr3e-3": (None, ["cell=gru", "lr=0.003", *_LONG]),
    "rnn-lr3e-3-k25": (None, ["lr=0.003", "k=25", *_LONG]),
    "notts-rnn-lr3e-3": (".rnnrbm_data/nottingham.json", ["lr=0.003", "batch_size=32", "pretrain_epochs=5", *_LONG]),
    # round 3: other seeds, slower annealing, and Nottingham for longer
    "rnn-lr3e-3-s1": (None, ["lr=0.003", "seed=1", *_LONG]),
    "rnn-lr3e-3-s2": (None, ["lr=0.003", "seed=2", *_LONG]),
    "rnn-lr3e-3-p8": (None, ["lr=0.003", "plateau=8", "patience=30", "epochs=2000"]),
    "rnn-lr2e-3": (None, ["lr=0.002", *_LONG]),
    "notts-gru-lr3e-3": (".rnnrbm_data/nottingham.json", ["cell=gru", "lr=0.003", "batch_size=32",
                                                            "pretrain_epochs=5", *_LONG]),
}


def gpu_job(data: str, out: Path, seconds: float, names: list[str] | None = None) -> int:
    """One device call: the candidates train side by side (one process each, same GPU) under a
    time guard; each is then evaluated with the full AIS on its own data's valid split, and every
    run's checkpoint and figures come back under ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    Path("runs").mkdir(exist_ok=True)
    names = names or list(SWEEP)
    procs, datas = {}, {}
    for name in names:
        extra_data, sets = SWEEP[name]
        datas[name] = extra_data or data
        seed = next((x.split("=")[1] for x in sets if x.startswith("seed=")), "0")
        cmd = [sys.executable, "-m", "improvd.training.rnnrbm", "train", "--preset", "default", "--data", datas[name],
               "--out", f"runs/gpu-{name}", "--seed", seed, "--set", f"max_seconds={seconds}",
               *[x for x in sets if not x.startswith("seed=")]]
        procs[name] = subprocess.Popen(cmd, stdout=open(f"runs/gpu-{name}.log", "w"), stderr=subprocess.STDOUT)
    for name, pr in procs.items():
        rc = pr.wait()
        print(f"{name}: exit {rc}", flush=True)
        print(Path(f"runs/gpu-{name}.log").read_text()[-300:], flush=True)
    summary = {}
    for name in procs:
        rd = Path(f"runs/gpu-{name}")
        if not (rd / "metrics.json").exists():
            continue
        m = json.loads((rd / "metrics.json").read_text())
        try:
            r = evaluate(str(rd), [datas[name]], "valid", 10, 0, show=False)
        except Exception as e:  # one bad candidate must not lose the others' figures
            print(f"{name}: evaluation failed: {e!r}", flush=True)
            continue
        (rd / "eval.json").write_text(json.dumps(r, indent=2) + "\n")
        summary[name] = {k: m.get(k) for k in ("best_valid_loss", "epochs_run", "wall_seconds", "stopped_by_time",
                                                 "train_seconds_measured", "device_name")}
        summary[name]["eval"] = r
        print(name, json.dumps({k: r[k] for k in ("ll_per_step", "acc", "acc_meanfield", "acc_marginal",
                                                  "acc_marginal_threshold", "seconds")}), flush=True)
        dst = out / name
        dst.mkdir(exist_ok=True)
        for f in ("best.pt", "metrics.json", "loss.png", "eval.json"):
            if (rd / f).exists():
                shutil.copy(rd / f, dst / f)
        shutil.copy(f"runs/gpu-{name}.log", dst / "train.log")
    jsb = sorted((n for n in summary if not n.startswith("notts")), key=lambda n: -summary[n]["eval"]["ll_per_step"])
    for name in jsb[:1]:  # is the best LL an AIS artefact? (round 2 checked three: no)
        try:
            summary[name]["ais_check"] = chk = ais_check(f"runs/gpu-{name}", datas[name])
            print(name, "ais check", json.dumps(chk), flush=True)
        except Exception as e:
            print(f"{name}: AIS check failed: {e!r}", flush=True)
    (out / "sweep.json").write_text(json.dumps(summary, indent=2) + "\n")
    return 0


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python3 scripts/gpu_rnnrbm_sweep.py")
    ap.add_argument("--data", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--seconds", type=float, default=300)
    ap.add_argument("--only", nargs="*", help="candidate names (default: all of SWEEP)")
    a = ap.parse_args(argv)
    return gpu_job(a.data, Path(a.out), a.seconds, a.only)


if __name__ == "__main__":
    sys.exit(main())
