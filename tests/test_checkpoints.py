"""Checkpoints are read as data only: a run folder someone hands you cannot run code in
`improvd export`, `improvd train --resume` or the GPU helpers (issue 11, item 12)."""

from __future__ import annotations

import os
import random
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from improvd import ImprovdError  # noqa: E402
from improvd.training.loop import RunDir, load_checkpoint, numpy_rng_state, set_numpy_rng_state  # noqa: E402

REPO = Path(__file__).resolve().parents[1]


class Payload:
    """What a malicious checkpoint holds: unpickling it runs a shell command."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


@pytest.fixture
def evil_run(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    marker = tmp_path / "pwned"
    state = {"model": {"w": torch.zeros(2)}, "config": {"family": "jazz", "preset": "tiny"}, "x": Payload(marker)}
    for name in ("best.pt", "last.pt"):
        torch.save(state, run / name)
    # the file is really dangerous: an unrestricted load runs the payload
    torch.load(run / "last.pt", weights_only=False)
    assert marker.exists()
    marker.unlink()
    return run, marker


def test_export_refuses_a_checkpoint_that_runs_code(evil_run, tmp_path):
    run, marker = evil_run
    p = subprocess.run([sys.executable, "-m", "improvd", "export", str(run), "-o", str(tmp_path / "out")],
                       capture_output=True, text=True, timeout=120)
    lines = [ln for ln in p.stderr.splitlines() if ln.strip()]
    assert p.returncode == 2 and len(lines) == 1, p.stderr
    assert "refused" in lines[0] and "system" in lines[0]
    assert not marker.exists()
    assert not (tmp_path / "out.onnx").exists()


def test_resume_and_gpu_helper_refuse_it(evil_run):
    run, marker = evil_run
    with pytest.raises(ImprovdError, match="refused"):
        RunDir(run).load("last")  # what `improvd train --resume` reads
    import importlib.util

    spec = importlib.util.spec_from_file_location("gpu_folk_slim", REPO / "scripts" / "gpu_folk_slim.py")
    helper = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(helper)  # a job script, outside the package
    slim = helper.slim

    with pytest.raises(ImprovdError, match="refused"):
        slim(run, run, "default")
    assert not marker.exists()


def test_garbage_is_one_clear_error(tmp_path):
    bad = tmp_path / "last.pt"
    bad.write_bytes(b"not a checkpoint at all")
    with pytest.raises(ImprovdError, match="not a readable torch checkpoint"):
        load_checkpoint(bad)


def test_rng_state_is_plain_data_and_round_trips(tmp_path):
    np.random.seed(5)
    random.seed(5)
    state = {"numpy_rng": numpy_rng_state(), "py_rng": random.getstate(), "torch_rng": torch.get_rng_state()}
    want = np.random.rand(3), random.random()
    torch.save(state, tmp_path / "c.pt")
    back = torch.load(tmp_path / "c.pt", weights_only=True)  # plain torch, no allow-list
    set_numpy_rng_state(back["numpy_rng"])
    random.setstate(back["py_rng"])
    assert np.array_equal(np.random.rand(3), want[0]) and random.random() == want[1]


def test_runs_saved_before_still_load(tmp_path):
    """Runs trained before this change kept np.random's state as a numpy array: a narrow
    allow-list (an array of a dtype) loads them, and nothing wider."""
    np.random.seed(9)
    torch.save({"numpy_rng": np.random.get_state()}, tmp_path / "old.pt")
    want = np.random.rand(2)
    set_numpy_rng_state(load_checkpoint(tmp_path / "old.pt")["numpy_rng"])
    assert np.array_equal(np.random.rand(2), want)
