"""Log lines for journald: a priority it understands on every line, no doubled prefix, one
line per event; plain ``improvd: ...`` lines on a terminal or in a pipe."""

from __future__ import annotations

import logging
import os
import subprocess
import sys

import pytest

from improvd import logs


@pytest.fixture(autouse=True)
def own_logger():
    """These tests point the improvd logger at files they close: give it back as it was."""
    logger = logging.getLogger("improvd")
    handlers, level, propagate = list(logger.handlers), logger.level, logger.propagate
    yield
    for handler in list(logger.handlers):
        logger.removeHandler(handler)
    for handler in handlers:
        logger.addHandler(handler)
    logger.setLevel(level)
    logger.propagate = propagate


def journal_env(path) -> dict:
    st = os.stat(path)
    return {**os.environ, "JOURNAL_STREAM": f"{st.st_dev}:{st.st_ino}"}


def test_under_journald_each_line_carries_its_priority(tmp_path, monkeypatch):
    out = tmp_path / "journal"
    with open(out, "w") as stream:
        monkeypatch.setattr(os, "environ", journal_env(out))
        logs.setup("debug", stream)
        log = logging.getLogger("improvd")
        log.debug("d")
        log.info("ready")
        log.warning("port gone")
        log.error("step failed\nsecond line")
    lines = out.read_text().splitlines()
    assert lines == ["<7>d", "<6>ready", "<4>port gone", "<3>step failed | second line"]


def test_elsewhere_lines_read_improvd_and_name_the_level(tmp_path, monkeypatch):
    monkeypatch.delenv("JOURNAL_STREAM", raising=False)
    out = tmp_path / "plain"
    with open(out, "w") as stream:
        logs.setup("info", stream)
        log = logging.getLogger("improvd")
        log.info("ready")
        log.warning("port gone")
        log.error("failed")
    assert out.read_text().splitlines() == ["improvd: ready", "improvd: warning: port gone", "improvd: error: failed"]


def test_a_journal_stream_that_is_not_stderr_is_not_taken_for_the_journal(tmp_path, monkeypatch):
    other = tmp_path / "other"
    other.write_text("")
    monkeypatch.setattr(os, "environ", journal_env(other))
    with open(tmp_path / "stderr", "w") as stream:
        assert not logs.under_journald(stream)


def test_a_command_error_under_journald_is_an_err_entry(tmp_path):
    err = tmp_path / "err"
    err.write_text("")
    with open(err, "w") as stream:
        r = subprocess.run([sys.executable, "-m", "improvd", "replay", str(tmp_path / "none.mid"), "-o",
                            str(tmp_path / "x.mid")], stderr=stream, stdout=subprocess.DEVNULL, env=journal_env(err),
                           timeout=60)
    assert r.returncode == 2
    lines = err.read_text().splitlines()
    assert len(lines) == 1 and lines[0].startswith("<3>") and "improvd:" not in lines[0]
