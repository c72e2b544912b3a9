"""The improvd command as a user meets it: help, ports, plot, and one-line errors with exit 2."""

from __future__ import annotations

import subprocess
import sys

import pytest

from conftest import PHRASES
from jackkit import needs_jack


def improvd(*args, timeout=60):
    return subprocess.run([sys.executable, "-m", "improvd", *map(str, args)], capture_output=True, text=True,
                          timeout=timeout)


def one_error_line(p):
    assert p.returncode == 2, (p.stdout, p.stderr)
    lines = [ln for ln in p.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("improvd: error:"), p.stderr
    return lines[0]


def test_help_lists_the_commands():
    p = improvd("--help")
    assert p.returncode == 0
    for cmd in ("run", "replay", "ports", "plot", "train", "export", "evaluate", "generate", "bench"):
        assert cmd in p.stdout
    p = improvd("run", "--help")
    assert p.returncode == 0
    for flag in ("--in", "--out", "--mode", "--wait", "--chords", "--split", "--seed", "--tempo", "--backend"):
        assert flag in p.stdout


@pytest.mark.jack
@needs_jack
def test_ports_lists_jack_ports():
    from jackkit import Player

    pl = Player("cliportsprobe", virtual=True)
    try:
        p = improvd("ports", "--backend", "jack")
    finally:
        pl.close()
    assert p.returncode == 0, p.stderr
    assert "inputs:" in p.stdout and "outputs:" in p.stdout
    assert "cliportsprobe:out" in p.stdout.split("outputs:")[0]  # a keyboard is something improvd reads from


def test_plot_writes_a_png(tmp_path):
    out = tmp_path / "roll.png"
    p = improvd("plot", PHRASES / "bebop.mid", "-o", out)
    assert p.returncode == 0, p.stderr
    data = out.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 5000
    import matplotlib.image as mpimg

    img = mpimg.imread(str(out))
    assert img.shape[0] > 200 and img.shape[1] > 300
    assert img[..., :3].std() > 0.01  # not a blank picture


@pytest.mark.parametrize("case", ["plot_missing", "plot_not_midi", "replay_bad_wait", "run_bad_mode",
                                  "run_bad_backend", "run_bad_config", "bad_model"])
def test_errors_exit_2_with_one_line(case, tmp_path):
    junk = tmp_path / "junk.mid"
    junk.write_bytes(b"not a midi file at all")
    cfg = tmp_path / "c.toml"
    cfg.write_text("tempo = 'fast'\n")
    args = {
        "plot_missing": ("plot", tmp_path / "none.mid", "-o", tmp_path / "x.png"),
        "plot_not_midi": ("plot", junk, "-o", tmp_path / "x.png"),
        "replay_bad_wait": ("replay", PHRASES / "bebop.mid", "-o", tmp_path / "x.mid", "--wait", "whenever"),
        "run_bad_mode": ("run", "--mode", "solo", "--backend", "jack"),
        "run_bad_backend": ("run", "--backend", "coreaudio"),
        "run_bad_config": ("run", "--config", cfg),
        "bad_model": ("replay", PHRASES / "bebop.mid", "-o", tmp_path / "x.mid", "--model", "no-such-model"),
    }[case]
    line = one_error_line(improvd(*args))
    key = {"plot_missing": "none.mid", "plot_not_midi": "junk.mid", "replay_bad_wait": "wait",
           "run_bad_mode": "mode", "run_bad_backend": "backend", "run_bad_config": "tempo",
           "bad_model": "no-such-model"}[case]
    assert key in line
    assert not (tmp_path / "x.png").exists() and not (tmp_path / "x.mid").exists()
