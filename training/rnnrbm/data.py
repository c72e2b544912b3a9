"""Piano rolls for training: the train and valid pieces of the data given, chunks and batches."""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import torch

from improvd.encoding import pianoroll as enc
from improvd.training.config import TrainConfig


def rolls_of(items) -> list:
    """The rolls of (name, roll) items, those of at least 2 frames."""
    return [r for _, r in items if len(r) > 1]


def load_splits(cfg: TrainConfig) -> tuple[list, list, list, int]:
    """(train rolls, valid rolls, data names, frame_ticks). JSON: its own train/valid splits;
    folders: a train/ and valid/ inside, else a split by piece."""
    from improvd.evaluation.data import default_data
    from improvd.training.loop import split_by_piece

    data = list(cfg.data) or [str(default_data("polyphonic/jsb_chorales.trainvalid.json", "FILE|FOLDER or --data music21:bach"))]
    ft = int(cfg.extra.get("frame_ticks") or enc.default_frame_ticks(data[0]))
    train, valid = [], []
    for spec in data:
        p = Path(spec)
        has_splits = p.suffix == ".json" or (p.is_dir() and (p / "train").is_dir() and (p / "valid").is_dir())
        if has_splits:
            train += enc.load(spec, "train", ft, cfg.max_items)
            valid += enc.load(spec, "valid", ft)
        else:
            items = enc.load(spec, None, ft, cfg.max_items)
            tr, va = split_by_piece(items, cfg.valid_fraction, cfg.seed)
            train += tr
            valid += va
    return rolls_of(train), rolls_of(valid), data, ft


def chunks(rolls: list, length: int) -> list:
    return [r[i:i + length] for r in rolls for i in range(0, len(r), length) if len(r[i:i + length]) > 1]


def collate(seqs: list, transpose: int, rng: random.Random) -> tuple[torch.Tensor, torch.Tensor]:
    T = max(len(s) for s in seqs)
    v = np.zeros((len(seqs), T, enc.UNITS), np.float32)
    m = np.zeros((len(seqs), T), np.float32)
    for i, s in enumerate(seqs):
        if transpose:
            on = np.flatnonzero(s.any(0))
            lo, hi = -min(transpose, int(on.min())), min(transpose, enc.UNITS - 1 - int(on.max()))
            s = np.roll(s, rng.randint(lo, hi), axis=1) if hi >= lo else s
        v[i, :len(s)] = s
        m[i, :len(s)] = 1
    return torch.from_numpy(v), torch.from_numpy(m)
