"""`python -m improvd.training.rnnrbm train | evaluate | rolls`: the GPU box has torch but not the
improvd CLI's typer, mido or rtmidi. ``train`` takes the train options of every family
(improvd.training.config) and ``--set KEY=VALUE`` overrides of the preset."""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from improvd.training.config import TrainConfig, add_train_options, options_of


def parse_settings(items: list[str]) -> dict:
    """``key=value`` pairs; a value is read as JSON where it is JSON (3, 0.5, true), else text."""
    out = {}
    for it in items:
        k, _, v = it.partition("=")
        try:
            out[k] = json.loads(v)
        except json.JSONDecodeError:
            out[k] = v
    return out


def parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="python -m improvd.training.rnnrbm")
    sub = ap.add_subparsers(dest="cmd", required=True)
    t = add_train_options(sub.add_parser("train", help="train one preset"))
    t.add_argument("--set", nargs="*", default=[], help="preset overrides, key=value")
    e = sub.add_parser("evaluate", help="LL (AIS) and ACC of a run folder or exported model")
    e.add_argument("model")
    e.add_argument("--data", action="append", default=[])
    e.add_argument("--split", help="valid | train | test (default: a JSON's valid split, a plain file or folder whole)")
    e.add_argument("--n", type=int, default=10, help="Gibbs samples per frame for ACC")
    e.add_argument("--pieces", type=int, default=0)
    e.add_argument("--chains", type=int)
    e.add_argument("--betas", type=int)
    e.add_argument("--device", default="auto")
    e.add_argument("--json")
    e.add_argument("--marginal-chains", type=int, help="Gibbs chains per frame behind the marginal ACC")
    e.add_argument("--marginal-k", type=int, help="sweeps per chain behind the marginal ACC")
    r = sub.add_parser("rolls", help="write a corpus's train/valid piano-rolls as one JSON file")
    r.add_argument("--data", action="append", required=True)
    r.add_argument("--out", required=True)
    r.add_argument("--seed", type=int, default=0)
    return ap


def main(argv=None) -> int:
    a = parser().parse_args(argv)
    if a.cmd == "rolls":
        from improvd.encoding import pianoroll as enc
        from improvd.training.rnnrbm.data import load_splits

        cfg = TrainConfig(family="rnnrbm", preset="default", data=a.data, out="", seed=a.seed)
        t0 = time.time()
        tr, va, data, ft = load_splits(cfg)
        enc.save_json({"train": [("", x) for x in tr], "valid": [("", x) for x in va]}, a.out, ft)
        print(f"{a.out}: {len(tr)} train and {len(va)} valid pieces, {ft} ticks per frame, from {data} in {time.time() - t0:.1f}s")
    elif a.cmd == "train":
        from improvd.training.rnnrbm.train import train

        s = train(TrainConfig.from_options("rnnrbm", extra=parse_settings(a.set), **options_of(a)))
        print(f"best valid loss {s['best_valid_loss']:.4f} after {s['epochs_run']} epochs in {s['wall_seconds']:.1f}s on {s['device_name']}")
    else:
        from improvd.training.rnnrbm.evaluate import evaluate

        r = evaluate(a.model, a.data, a.split, a.n, 0, a.chains, a.betas, a.device, a.pieces,
                     marginal_chains=a.marginal_chains, marginal_k=a.marginal_k)
        if a.json:
            Path(a.json).write_text(json.dumps(r, indent=2) + "\n")
    return 0
