"""Evaluation: what is scored is what the table says (a given file whole, the default data's
valid split), the default data's absence is one line naming --data, and progress reaches a log
without touching stdout."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from improvd import ImprovdError
from improvd.evaluation import data as ev_data
from improvd.progress import stage, track

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared" / "data"
WJAZZD = SHARED / "jazz" / "wjazzd_chords.trainvalid.jsonl"
IRISH = SHARED / "abc" / "irish.trainvalid.abc"


def test_progress_lines_on_stderr_at_most_every_few_seconds_when_not_a_tty(capsys):
    with stage("scoring", total=40, unit="pieces", every=0.1) as s:
        for _ in range(40):
            time.sleep(0.01)
            s.advance(info="LL -6.0")
    for _ in track(range(3), "quick", unit="items"):
        pass
    out, err = capsys.readouterr()
    assert out == ""
    lines = err.splitlines()
    assert lines[0] == "improvd: scoring: 0/40 pieces"
    beats = [ln for ln in lines if ln.startswith("improvd: scoring: ") and "%" in ln]
    assert 1 <= len(beats) <= 8  # a timer line every 0.1 s over about 0.45 s, not one per advance
    assert lines[len(beats) + 1].startswith("improvd: scoring: done, 40/40 pieces, ") and lines[len(beats) + 1].endswith("LL -6.0")
    # a stage shorter than the interval: its start and its end, nothing between
    assert lines[-2:] == ["improvd: quick: 0/3 items", lines[-1]] and lines[-1].startswith("improvd: quick: done, 3/3 items, ")


def test_a_stage_that_fails_prints_no_done_line(capsys):
    with pytest.raises(ValueError):
        with stage("parsing", total=2, unit="files"):
            raise ValueError("bad file")
    assert capsys.readouterr().err.splitlines() == ["improvd: parsing: 0/2 files"]


def test_missing_default_data_is_one_line_naming_data(monkeypatch, tmp_path):
    """An installed wheel has no ../shared/data beside its source: each family's evaluator says
    so in one line and names --data, never a traceback."""
    from improvd.evaluation.jazz import load_solos

    monkeypatch.setattr(ev_data, "shared_folders", lambda: [tmp_path / "shared" / "data"])
    with pytest.raises(ImprovdError, match=r"--data FILE\.jsonl") as e:
        load_solos([], None, None)
    assert "\n" not in str(e.value) and str(tmp_path) in str(e.value)
    with pytest.raises(ImprovdError, match=r"--data FILE\.abc"):
        pytest.importorskip("improvd.training.folk").evaluation_text([], None)


def test_split_choice_and_the_title_words():
    assert ev_data.choose_split(None, given=False) == "valid"
    assert ev_data.choose_split(None, given=True) == "whole"
    assert ev_data.choose_split(None, given=True, holds_splits=True) == "valid"
    assert ev_data.choose_split("test", given=True) == "test"
    with pytest.raises(ImprovdError, match="no test split"):
        ev_data.choose_split("test", given=False)
    with pytest.raises(ImprovdError, match="not a split"):
        ev_data.choose_split("dev", given=True)
    assert ev_data.describe("whole", ["x/held.abc"]) == "whole file held.abc"
    assert ev_data.describe("test", ["x/held.abc"]) == "test split (whole file held.abc)"
    assert ev_data.describe("valid", ["x/jsb.json"], own=True) == "valid split of jsb.json"


def test_folk_scores_a_given_file_whole_and_names_the_split(tmp_path):
    """The bug: a held-out file given with --data was split again, 90 % of it scored under the
    title 'valid'. Now it is scored whole by default and with --split test; --split valid takes
    training's 10 %."""
    folk = pytest.importorskip("improvd.training.folk")
    if not IRISH.exists():
        pytest.skip("shared data absent")
    from improvd.encoding import abc as enc

    held = tmp_path / "held.abc"
    held.write_text(enc.join_tunes(enc.load_irish(IRISH)[:10]))
    whole, title, tunes = folk.evaluation_text([str(held)], None)
    assert tunes == 10 and title == "whole file held.abc"
    assert len(whole) == len(enc.encode(held.read_text()))
    test, title, tunes = folk.evaluation_text([str(held)], "test")
    assert tunes == 10 and title == "test split (whole file held.abc)" and (test == whole).all()
    _, title, tunes = folk.evaluation_text([str(held)], "valid")
    assert tunes == 1 and title == "valid split of held.abc (10 % of tunes held out as valid, seed 0)"
    _, title, tunes = folk.evaluation_text([], None)  # the README's figure: irish.abc's valid tunes
    assert tunes == 68 and title.startswith("valid split of irish.trainvalid.abc")


def test_evaluate_jazz_on_a_given_file_scores_all_of_it(tmp_path):
    """`improvd evaluate jazz --data FILE` through the CLI, not a terminal: every solo of the file
    is scored (no --n cut, no split), the title says 'whole file', stdout holds the table and
    nothing else, and the stages went to stderr."""
    if not WJAZZD.exists():
        pytest.skip("shared data absent")
    held = tmp_path / "held.jsonl"
    held.write_text("".join(WJAZZD.read_text().splitlines(keepends=True)[:2]))
    r = subprocess.run([sys.executable, "-m", "improvd", "evaluate", "jazz", "--data", str(held)],
                       capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-2000:]
    title = " ".join(r.stdout.split("┏")[0].split())
    assert title.startswith("jazz on the whole file held.jsonl: statistics over all 2 solos"), title
    assert "improvd:" not in r.stdout and "NLL total" in r.stdout
    err = r.stderr.splitlines()
    assert "improvd: jazz: improvising over the solos' chords: 0/6 solos" in err
    assert any(ln.startswith("improvd: jazz: likelihood of the solos: done, 2/2 solos") for ln in err)
