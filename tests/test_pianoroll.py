"""The 88-key piano roll shared by training and the daemon: round trips and loaders."""

from pathlib import Path

import numpy as np
import pytest

from improvd import ImprovdError
from improvd.encoding import pianoroll as pr

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
JSB = DATA / "polyphonic" / "jsb_chorales.trainvalid.json"


def test_frame_units_and_range():
    v = pr.frame([21, 60, 108, 20, 109])
    assert v.shape == (88,) and v.dtype == np.float32
    assert pr.pitches_of(v) == [21, 60, 108]  # off-piano pitches are dropped


def test_roll_round_trip():
    steps = [[60, 64, 67], [], [43, 59, 62, 67], [96]]
    assert pr.from_roll(pr.to_roll(steps)) == steps


def test_notes_round_trip_ties_consecutive_frames():
    ft = pr.JSB_FRAME_TICKS
    notes = [(0, 24, 60), (24, 36, 62), (12, 48, 48)]
    roll = pr.notes_to_roll(notes, ft)
    assert roll.shape == (4, 88)
    assert sorted(pr.roll_to_notes(roll, ft)) == sorted(notes)


def test_short_note_inside_a_frame_is_kept():
    roll = pr.notes_to_roll([(0, 12, 60), (3, 5, 72)], 12)
    assert pr.from_roll(roll) == [[60, 72]]


def test_midi_file_round_trip(tmp_path):
    steps = [[60, 64, 67], [60, 64, 67], [62, 65, 69], [], [59, 62, 67]]
    path = pr.write_midi(pr.to_roll(steps), tmp_path / "x.mid", pr.JSB_FRAME_TICKS, tempo=100)
    back = pr.load_midi_file(path, pr.JSB_FRAME_TICKS)
    assert pr.from_roll(back) == steps[: len(back)] and len(back) == len(steps)


def test_bad_json_is_one_clear_error(tmp_path):
    p = tmp_path / "bad.json"
    p.write_text("{not json")
    with pytest.raises(ImprovdError, match="not valid JSON"):
        pr.load_json(p)
    p.write_text('{"train": []}')
    with pytest.raises(ImprovdError, match="no split 'valid'"):
        pr.load_json(p, "valid")


@pytest.mark.skipif(not JSB.exists(), reason="shared data absent")
def test_jsb_json_loads_both_splits():
    tr = pr.load(str(JSB), "train")
    va = pr.load(str(JSB), "valid")
    assert len(tr) == 229 and len(va) == 76
    roll = tr[0][1]
    assert roll.shape[1] == 88 and set(np.unique(roll)) <= {0.0, 1.0}
    assert 1 <= roll.sum(1).max() <= 6


@pytest.mark.skipif(not (DATA / "nottingham_abc" / "valid").exists(), reason="shared data absent")
def test_nottingham_abc_with_chords():
    items = pr.load(str(DATA / "nottingham_abc"), "valid", limit=2)
    assert len(items) == 2
    roll = items[0][1]
    # melody plus a sounding chord symbol: most eighth-note frames hold 3 or more keys
    assert np.mean(roll.sum(1) >= 3) > 0.5


def test_saved_rolls_load_back_with_their_frame_length(tmp_path):
    """`training.rnnrbm rolls` writes a corpus once (music21 is slow); the JSON must load back
    frame for frame and say its own frame length (eighths for folk tunes)."""
    from improvd.encoding import pianoroll as pr

    a = pr.to_roll([[60, 64], [62], [], [67, 71, 74]])
    b = pr.to_roll([[48], [50, 53]])
    path = pr.save_json({"train": [("a", a)], "valid": [("b", b)]}, tmp_path / "notts.json", 6)
    assert pr.default_frame_ticks(str(path)) == 6
    (_, a2), = pr.load(str(path), "train")
    (_, b2), = pr.load(str(path), "valid")
    assert (a2 == a).all() and (b2 == b).all()
