"""The jazz model scores the voice's candidate fragments side by side (one batched step per
event) and must give exactly what scoring each alone gives: the answer chosen is the same,
only sooner. A graph exported before the batch axis (fixed batch of 1) still plays."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from improvd.chords import parse_chord
from improvd.encoding import BAR_TICKS, TICKS_PER_BEAT
from improvd.models import load_model
from improvd.models.base import PlayContext, Step
from improvd.motifs import Note


def lines(start: int, rng: np.random.Generator, n: int = 6) -> list[tuple]:
    """Candidate fragments of different lengths, onsets and rests, as the voice builds them."""
    out = []
    for k in range(n):
        t, notes = start + (k % 3) * TICKS_PER_BEAT // 2, []
        for _ in range(2 + k):
            length = int(rng.choice([3, 6, 12]))
            notes.append(Note(t, int(rng.integers(55, 80)), length))
            t += length + int(rng.choice([0, 0, 6]))
        out.append(tuple(notes))
    return out


def warmed(model):
    """The model after a bar of the performer's playing, answering."""
    chord = parse_chord("C7")
    for tick in range(0, BAR_TICKS, TICKS_PER_BEAT // 2):
        model.listen(Step(tick, onsets=((60 + tick % 7, 90),), releases=(), chord=chord))
    model.begin_answer(BAR_TICKS)
    return PlayContext(BAR_TICKS, chord, np.random.default_rng(0), chord_at=lambda t: parse_chord("C7" if t < 2 * BAR_TICKS else "F7"))


def test_batched_scores_equal_one_line_at_a_time():
    model = load_model("jazz")
    assert model._batched  # the bundled graph takes a batch
    ctx = warmed(model)
    cands = lines(BAR_TICKS, np.random.default_rng(1)) + [()]
    batched = model.likelihoods(ctx, cands)
    model._batched = False
    alone = model.likelihoods(ctx, cands)
    assert batched[-1] is None and alone[-1] is None
    assert batched[:-1] == pytest.approx(alone[:-1], abs=1e-5)
    assert len(set(np.round(batched[:-1], 3))) > 3  # different lines, different scores: not a constant
    model._batched = True
    assert model.likelihoods(ctx, [(), ()]) == [None, None]  # nothing to score is no score, not an error


def test_a_graph_with_a_fixed_batch_of_one_scores_alone(tmp_path):
    pytest.importorskip("onnx")
    from improvd.models import resolve
    from improvd.training.export import rebatch

    card = resolve("jazz")
    for f in (card, card.with_suffix(".onnx")):
        shutil.copy(f, tmp_path / f.name)
    rebatch(tmp_path / "jazz.onnx", tmp_path / "jazz.json",
            {"prev_pitch": [1], "prev_dur": [1], "pos": [1], "cond": [1, 24], "h": [2, 1, 384], "c": [2, 1, 384]},
            {"pitch_logits": [1, 82], "dur_logits": [1, 54], "h_out": [2, 1, 384], "c_out": [2, 1, 384]})
    old = load_model(str(tmp_path / "jazz.json"))
    assert not old._batched
    new = load_model("jazz")
    cands = lines(BAR_TICKS, np.random.default_rng(2))
    assert old.likelihoods(warmed(old), cands) == pytest.approx(new.likelihoods(warmed(new), cands), abs=1e-5)
