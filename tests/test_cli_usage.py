"""The command line as a shell user meets it: --version, -h on every command, completion, help
that keeps its brackets and fits 80 columns, usage errors that are one line in a log, and the
model folder and onnxruntime provider flags."""

from __future__ import annotations

import os
import pty
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import typer

from improvd import __version__
from improvd.cli import app

REPO = Path(__file__).resolve().parents[1]
COMMANDS = sorted(typer.main.get_command(app).commands)
PERF = REPO / "examples" / "blues_calls.mid"


def improvd(*args, cwd=None, env=None, timeout=120):
    return subprocess.run([sys.executable, "-m", "improvd", *map(str, args)], capture_output=True, text=True,
                          timeout=timeout, cwd=cwd, env=env)


def one_error_line(p):
    assert p.returncode == 2, (p.stdout, p.stderr)
    lines = [ln for ln in p.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("improvd: error:"), p.stderr
    return lines[0]


def test_version_is_the_package_version():
    p = improvd("--version")
    assert p.returncode == 0, p.stderr
    assert p.stdout.strip() == f"improvd {__version__}"
    assert tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["version"] == __version__


def test_every_command_has_h_and_help():
    assert {"run", "replay", "train", "export", "bench"} <= set(COMMANDS)
    for cmd in COMMANDS:
        short, long = improvd(cmd, "-h"), improvd(cmd, "--help")
        assert short.returncode == 0 and short.stdout.startswith(f"Usage: improvd {cmd}"), (cmd, short.stderr)
        assert short.stdout == long.stdout


def test_help_keeps_literal_brackets():
    assert "[cc] table" in " ".join(improvd("learn", "-h").stdout.split())
    assert "'.[train]'" in improvd("train", "-h").stdout
    assert "\\[" not in improvd("train", "-h").stdout


def test_train_options_are_the_trainers():
    """`improvd train` takes the train options of improvd.training.config, the ones the argparse
    entry points (python -m improvd.training.cli_train, ... .rnnrbm train) are built from: a new
    option is a TrainConfig field there and one parameter here, and this holds the two equal."""
    from improvd.training.config import option_names

    params = [p for p in typer.main.get_command(app).commands["train"].params if p.name != "family"]
    assert sorted(p.name for p in params) == sorted(option_names())
    for p in params:
        assert "--" + p.name.replace("_", "-") in p.opts, p.opts


@pytest.mark.parametrize("cmd", [None, *COMMANDS])
def test_help_fits_80_columns(cmd):
    env = {**os.environ, "COLUMNS": "80"}
    p = improvd(*([cmd] if cmd else []), "--help", env=env)
    assert p.returncode == 0
    wide = [ln for ln in p.stdout.splitlines() if len(ln) > 80]
    assert not wide, wide


def test_bash_completion_script_and_answers():
    p = improvd("--show-completion", "bash")
    assert p.returncode == 0 and "complete -o default -F _improvd_completion improvd" in p.stdout
    env = {**os.environ, "_IMPROVD_COMPLETE": "complete_bash", "COMP_WORDS": "improvd re", "COMP_CWORD": "1"}
    p = subprocess.run([sys.executable, "-m", "improvd"], capture_output=True, text=True, env=env, timeout=60)
    assert set(p.stdout.split()) == {"replay", "render"}, p.stdout + p.stderr
    env.update(COMP_WORDS="improvd run --provi", COMP_CWORD="2")
    p = subprocess.run([sys.executable, "-m", "improvd"], capture_output=True, text=True, env=env, timeout=60)
    assert p.stdout.split() == ["--provider"], p.stdout + p.stderr


@pytest.mark.parametrize("args", [
    ("run", "--bogus"),
    ("replay",),
    ("replay", PERF, "-o"),
    ("run", "--tempo", "fast"),
    ("nosuchcommand",),
])
def test_usage_errors_are_one_line_in_a_log(args):
    line = one_error_line(improvd(*args))
    assert "improvd" in line and len(line) < 200


def test_usage_errors_keep_the_usage_line_at_a_terminal():
    main, sub = pty.openpty()
    try:
        p = subprocess.run([sys.executable, "-m", "improvd", "run", "--bogus"], stdout=subprocess.PIPE, stderr=sub,
                           timeout=60)
        os.close(sub)
        sub = None
        out = b""
        while True:
            try:
                chunk = os.read(main, 4096)
            except OSError:
                break
            if not chunk:
                break
            out += chunk
    finally:
        os.close(main)
        if sub is not None:
            os.close(sub)
    text = out.decode()
    assert p.returncode == 2
    assert "Usage: improvd run" in text and "--bogus" in text


# -- where models come from, and what runs them ---------------------------------------------------
@pytest.fixture
def own_model_dir(tmp_path):
    """A model folder of one's own: the bundled jazz graph under another name."""
    d = tmp_path / "mine"
    d.mkdir()
    shutil.copy(REPO / "models" / "jazz.onnx", d / "jazz.onnx")
    card = (REPO / "models" / "jazz.json").read_text()
    (d / "solo.json").write_text(card.replace('"name": "jazz"', '"name": "solo"', 1))
    return d


def test_model_dir_flag_and_environment_from_another_folder(own_model_dir, tmp_path):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {k: v for k, v in os.environ.items() if k != "IMPROVD_MODEL_DIR"}
    p = improvd("replay", PERF, "-o", "a.mid", "-m", "solo", "--seed", 1, cwd=elsewhere, env=env)
    assert "not found" in one_error_line(p)
    p = improvd("replay", PERF, "-o", "a.mid", "-m", "solo", "--seed", 1, "--model-dir", own_model_dir, cwd=elsewhere, env=env)
    assert p.returncode == 0, p.stderr
    assert "model solo on cpu" in p.stdout and (elsewhere / "a.mid").exists()
    p = improvd("replay", PERF, "-o", "b.mid", "-m", "solo", "--seed", 1, cwd=elsewhere,
                env={**env, "IMPROVD_MODEL_DIR": f"{tmp_path / 'none'}{os.pathsep}{own_model_dir}"})
    assert "not exist" in one_error_line(p)  # a folder in the list that is not there is named
    p = improvd("replay", PERF, "-o", "b.mid", "-m", "solo", "--seed", 1, cwd=elsewhere,
                env={**env, "IMPROVD_MODEL_DIR": str(own_model_dir)})
    assert p.returncode == 0, p.stderr
    assert (elsewhere / "a.mid").read_bytes() == (elsewhere / "b.mid").read_bytes()


def test_model_dir_config_key(own_model_dir, tmp_path):
    cfg = tmp_path / "c.toml"
    cfg.write_text(f'model = "solo"\nmodel_dir = "{own_model_dir}"\n')
    p = improvd("replay", PERF, "-o", tmp_path / "a.mid", "--config", cfg, "--seed", 1, cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    assert "model solo" in p.stdout


def test_missing_model_dir_is_one_line(tmp_path):
    line = one_error_line(improvd("replay", PERF, "-o", tmp_path / "a.mid", "--model-dir", tmp_path / "nowhere"))
    assert str(tmp_path / "nowhere") in line and "--model-dir" in line


def test_unknown_provider_is_one_line(tmp_path):
    line = one_error_line(improvd("replay", PERF, "-o", tmp_path / "a.mid", "--provider", "gpu"))
    assert "provider 'gpu'" in line and "cpu, cuda, auto" in line


def test_cuda_provider_runs_on_cuda_or_is_refused(tmp_path):
    """Where CUDA really starts the models run on it; anywhere else the flag is refused with the
    fix, never a silent fall back to the CPU."""
    p = improvd("replay", PERF, "-o", tmp_path / "a.mid", "--provider", "cuda", "--seed", 1)
    if p.returncode == 0:
        assert "on cuda" in p.stdout
    else:
        line = one_error_line(p)
        assert "provider cuda" in line and "--provider cpu" in line


def test_auto_provider_says_what_it_used(tmp_path):
    p = improvd("replay", PERF, "-o", tmp_path / "a.mid", "--provider", "auto", "--seed", 1)
    assert p.returncode == 0, p.stderr
    assert " on cpu," in p.stdout or " on cuda," in p.stdout
