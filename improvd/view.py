"""The live panel ``improvd run`` shows on a terminal: what a performer glances at between
phrases (state, tempo, chord, model and mode, notes in and out, how well the timing holds).

It reads the daemon's figures and never changes them. rich redraws it from its own thread
twice a second, so the engine thread does no drawing; off a terminal (systemd, a pipe) there
is no panel and the log lines carry the same facts.
"""

from __future__ import annotations

import logging
import math
import sys
from dataclasses import dataclass

from rich.console import Console
from rich.live import Live
from rich.table import Table


@dataclass(frozen=True)
class Snapshot:
    """What the panel shows, taken from the daemon at one moment."""

    state: str
    tempo: float
    confidence: float | None  # following the performer: how sure of their beat; None: a set tempo
    chord: str
    model: str
    mode: str
    notes_in: int
    notes_out: int
    step_p99_ms: float
    timing_p99_ms: float
    late: int
    dropped: int


def render(snap: Snapshot) -> Table:
    """A pure function of the snapshot, so it can be checked without a terminal."""
    table = Table.grid(padding=(0, 2))
    for _ in range(4):
        table.add_column()
    colour = {"idle": "dim", "listening": "cyan", "answering": "bold green"}.get(snap.state, "")
    table.add_row("state", f"[{colour}]{snap.state}[/]" if colour else snap.state, "tempo", _tempo(snap))
    table.add_row("model", f"{snap.model} ({snap.mode})", "chord", snap.chord or "-")
    table.add_row("notes in", str(snap.notes_in), "notes out", str(snap.notes_out))
    table.add_row("step p99", _ms(snap.step_p99_ms), "timing p99", _ms(snap.timing_p99_ms))
    table.add_row("late notes", str(snap.late), "input dropped", str(snap.dropped))
    return table


def _tempo(snap: Snapshot) -> str:
    if snap.confidence is None:
        return f"{snap.tempo:.1f} BPM"
    return f"{snap.tempo:.1f} BPM followed ({snap.confidence:.0%} sure)"


def _ms(value: float) -> str:
    return "-" if value is None or math.isnan(value) else f"{value:.3f} ms"


class LiveView:
    """Context manager around rich's Live; ``snapshot`` is a callable the redraw asks."""

    def __init__(self, snapshot, stream=None):
        self._snapshot = snapshot
        self._console = Console(file=stream or sys.stderr)
        self._live = Live(get_renderable=lambda: render(self._snapshot()), console=self._console,
                          refresh_per_second=2, transient=False, redirect_stderr=False, redirect_stdout=False)

    @staticmethod
    def wanted(stream=None) -> bool:
        """A panel only on a terminal: under systemd or in a pipe, log lines instead."""
        stream = stream or sys.stderr
        return hasattr(stream, "isatty") and stream.isatty()

    def __enter__(self):
        # log lines print above the panel instead of tearing through it
        from improvd.logs import TerminalFormatter

        logger = logging.getLogger("improvd")
        self._handlers = list(logger.handlers)
        handler = _ConsoleHandler(self._console)
        handler.setFormatter(TerminalFormatter())
        for old in self._handlers:
            logger.removeHandler(old)
        logger.addHandler(handler)
        self._handler = handler
        self._live.__enter__()
        return self

    def __exit__(self, *exc):
        try:
            return self._live.__exit__(*exc)
        finally:
            logger = logging.getLogger("improvd")
            logger.removeHandler(self._handler)
            for old in self._handlers:
                logger.addHandler(old)


class _ConsoleHandler(logging.Handler):
    def __init__(self, console: Console):
        super().__init__()
        self._console = console

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self._console.print(self.format(record), markup=False, highlight=False, soft_wrap=True)
        except Exception:
            self.handleError(record)
