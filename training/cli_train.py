"""`python -m training.cli_train FAMILY ...`: training without the improvd CLI (the GPU box has
torch but not mido/rtmidi). Same options as `improvd train`."""

from __future__ import annotations

import argparse
import sys

from training.loop import TrainConfig


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m training.cli_train")
    ap.add_argument("family")
    ap.add_argument("--preset", default="default")
    ap.add_argument("--data", action="append", default=[])
    ap.add_argument("--out", default=None)
    ap.add_argument("--epochs", type=int)
    ap.add_argument("--batch-size", type=int)
    ap.add_argument("--lr", type=float)
    ap.add_argument("--hidden", type=int)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--resume", action="store_true")
    ap.add_argument("--no-amp", action="store_true")
    ap.add_argument("--max-items", type=int)
    a = ap.parse_args(argv)
    from improvd.registry import TRAIN, lookup

    cfg = TrainConfig(family=a.family, preset=a.preset, data=a.data, out=a.out or f"runs/{a.family}-{a.preset}",
                      epochs=a.epochs, batch_size=a.batch_size, lr=a.lr, hidden=a.hidden, device=a.device,
                      seed=a.seed, resume=a.resume, amp=not a.no_amp, max_items=a.max_items)
    summary = lookup(TRAIN, cfg.family, cfg.preset)(cfg)
    print(f"best valid loss {summary['best_valid_loss']:.4f} after {summary['epochs_run']} epochs in {summary['wall_seconds']:.1f}s on {summary['device_name']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
