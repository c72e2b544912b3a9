"""`python -m improvd.training.cli_train FAMILY ...`: training without the improvd CLI (the GPU box has
torch but not typer, mido or rtmidi). The options are `improvd train`'s, from improvd.training.config,
and the run goes through the same family table (improvd.training.families.train)."""

from __future__ import annotations

import argparse
import sys

from improvd.training.config import add_train_options, options_of
from improvd.training.families import train


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m improvd.training.cli_train")
    ap.add_argument("family", help="jazz | rnnrbm | folk")
    a = add_train_options(ap).parse_args(argv)
    summary = train(a.family, **options_of(a))
    print(f"best valid loss {summary['best_valid_loss']:.4f} after {summary['epochs_run']} epochs in {summary['wall_seconds']:.1f}s on {summary['device_name']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
