"""Log lines that read well on a terminal and that journald files under the right priority.

Under systemd, stderr goes to the journal, which already prefixes every line with
``improvd[PID]:``; a line that starts with ``<N>`` (sd-daemon(3)) is stored at syslog
priority N, so ``journalctl -u improvd -p err`` shows the errors alone. On a terminal or in a
pipe the lines read ``improvd: ...``, with ``warning:`` / ``error:`` where it matters. Every
record is one line: a message that holds a newline is folded, so one event is one entry.
"""

from __future__ import annotations

import logging
import os
import sys

# syslog priorities (sd-daemon.h): SD_ERR 3, SD_WARNING 4, SD_INFO 6, SD_DEBUG 7
PRIORITY = {logging.CRITICAL: 2, logging.ERROR: 3, logging.WARNING: 4, logging.INFO: 6, logging.DEBUG: 7}


def under_journald(stream=None) -> bool:
    """True when ``stream`` is the journal's own socket: systemd sets JOURNAL_STREAM to its
    device and inode (systemd.exec(5)), so a stream redirected elsewhere is not mistaken."""
    stream = stream or sys.stderr
    value = os.environ.get("JOURNAL_STREAM", "")
    try:
        dev, ino = (int(x) for x in value.split(":"))
        st = os.fstat(stream.fileno())
    except (ValueError, OSError, AttributeError):
        return False
    return (st.st_dev, st.st_ino) == (dev, ino)


def _one_line(text: str) -> str:
    return " | ".join(part.strip() for part in text.splitlines() if part.strip()) or text


class JournalFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        priority = PRIORITY.get(record.levelno, 6 if record.levelno < logging.WARNING else 3)
        return f"<{priority}>{_one_line(record.getMessage())}"


class TerminalFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        level = "" if record.levelno < logging.WARNING else ("warning: " if record.levelno < logging.ERROR else "error: ")
        return f"improvd: {level}{_one_line(record.getMessage())}"


class _Stderr(logging.StreamHandler):
    """Writes to whatever sys.stderr is when a line is logged, not when the handler was made:
    a test runner (or anything else) that swaps stderr and closes the old one afterwards must
    not leave the daemon's log writing into a closed file."""

    def __init__(self):
        super().__init__(sys.stderr)

    @property
    def stream(self):
        return sys.stderr

    @stream.setter
    def stream(self, _value):
        pass


def setup(level: str = "info", stream=None) -> None:
    """One handler on the ``improvd`` logger, formatted for where stderr goes."""
    handler = logging.StreamHandler(stream) if stream is not None else _Stderr()
    handler.setFormatter(JournalFormatter() if under_journald(stream or sys.stderr) else TerminalFormatter())
    logger = logging.getLogger("improvd")
    for old in list(logger.handlers):
        logger.removeHandler(old)
    logger.addHandler(handler)
    logger.setLevel(getattr(logging, str(level).upper(), logging.INFO))
    logger.propagate = False


def error_line(message: str, stream=None) -> str:
    """The line a command prints when it fails with an error the user can fix."""
    stream = stream or sys.stderr
    return f"<3>{_one_line(message)}" if under_journald(stream) else f"improvd: error: {_one_line(message)}"
