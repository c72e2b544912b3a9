"""Progress of the slow offline stages: corpus parsing, training epochs, AIS, sampling.

Why one helper: music21 parses the Bach corpus for minutes and an RNN-RBM evaluation runs AIS
for minutes more; a command that says nothing for that long looks hung and gets killed. Every
stage reports the same way, on stderr, so stdout keeps only the command's own output (tables,
the run summary) and stays parseable:

- on a terminal, a rich bar per stage (stages that run inside another share its display);
- anywhere else (a CI log, a pipe, systemd), plain lines: one when the stage starts, then at
  most one every ``every`` seconds while it runs, from a timer, so a stage stuck in one long
  call still shows it is alive, and one when it ends. A log shows liveness without flooding.

Imports only rich and the standard library, so the daemon may use it too.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from contextlib import contextmanager
from typing import Iterable, Iterator, TypeVar

EVERY = 5.0  # seconds between plain liveness lines

T = TypeVar("T")

_lock = threading.Lock()
_shared: dict = {"progress": None, "users": 0}  # the one rich display that nested stages share


def _terminal() -> bool:
    """Is stderr a terminal that can redraw a bar? (The CLI's own test for a person at a
    terminal; FORCE_COLOR in a CI log must not turn it into redrawn bars.)"""
    return sys.stderr.isatty() and os.environ.get("TERM") != "dumb"


def seconds_text(s: float) -> str:
    if s < 10:
        return f"{s:.1f} s"
    s = int(round(s))
    return f"{s // 60} min {s % 60} s" if s >= 60 else f"{s} s"


class Stage:
    """One stage's counter. ``advance`` and ``update`` move it; ``log`` prints a line of its own
    (above the bar on a terminal, on stderr otherwise). A quiet stage does nothing, so code that
    runs both inside a reported command and inside a loop that reports itself (validation inside
    training) takes a ``quiet`` flag instead of two code paths."""

    def __init__(self, description: str, total: int | None, unit: str, completed: int = 0, quiet: bool = False):
        self.description, self.total, self.unit = description, total, unit
        self.completed, self.info = completed, ""
        self.quiet = quiet
        self.started = time.monotonic()
        self._progress = None
        self._task = None
        self._nested = False
        self._stop = threading.Event()
        self._timer: threading.Thread | None = None

    @property
    def live(self) -> bool:
        """A rich bar is drawn (stderr is a terminal)."""
        return self._progress is not None

    def count_text(self) -> str:
        unit = f" {self.unit}" if self.unit else ""
        if self.total:
            return f"{self.completed}/{self.total}{unit}"
        return f"{self.completed}{unit}" if self.completed or unit else ""

    def advance(self, n: int = 1, info: str | None = None) -> None:
        self.update(completed=self.completed + n, info=info)

    def update(self, completed: int | None = None, total: int | None = None, info: str | None = None) -> None:
        if completed is not None:
            self.completed = completed
        if total is not None:
            self.total = total
        if info is not None:
            self.info = info
        if self._progress is not None:
            self._progress.update(self._task, completed=self.completed, total=self.total,
                                  count=self.count_text(), info=self.info)

    def log(self, text: str) -> None:
        if self.quiet:
            return
        if self._progress is not None:
            self._progress.console.print(text, markup=False, highlight=False)
        else:
            print(text, file=sys.stderr, flush=True)

    # -- plain lines ------------------------------------------------------------------------
    def _line(self, ending: str = "") -> str:
        count = self.count_text()
        if self.total and not ending:
            count += f" ({100 * self.completed // self.total} %)"
        parts = (ending, count, seconds_text(time.monotonic() - self.started), self.info)
        return f"improvd: {self.description}: " + ", ".join(p for p in parts if p)

    def _beat(self, every: float) -> None:
        while not self._stop.wait(every):
            print(self._line(), file=sys.stderr, flush=True)

    # -- start and end ----------------------------------------------------------------------
    def _start(self, every: float) -> None:
        if self.quiet:
            return
        if _terminal():
            from rich.console import Console
            from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn, TimeRemainingColumn

            with _lock:
                if _shared["progress"] is None:
                    _shared["progress"] = Progress(
                        SpinnerColumn(), TextColumn("[bold]{task.description}"), BarColumn(),
                        TextColumn("{task.fields[count]}"), TextColumn("{task.fields[info]}"),
                        TimeElapsedColumn(), TimeRemainingColumn(), console=Console(stderr=True), transient=False)
                    _shared["progress"].start()
                _shared["users"] += 1
                self._nested = _shared["users"] > 1
                self._progress = _shared["progress"]
            self._task = self._progress.add_task(self.description, total=self.total, completed=self.completed,
                                                 count=self.count_text(), info=self.info)
            return
        print(f"improvd: {self.description}: " + (self.count_text() or "started"), file=sys.stderr, flush=True)
        self._timer = threading.Thread(target=self._beat, args=(every,), daemon=True, name="improvd-progress")
        self._timer.start()

    def _end(self, ok: bool) -> None:
        if self.quiet:
            return
        if self._timer is not None:
            self._stop.set()
            self._timer.join()
            if ok:
                finished = self.total is None or self.completed >= self.total
                print(self._line("done" if finished else "stopped"), file=sys.stderr, flush=True)
            return
        if self._progress is not None:
            if ok and self.total is None:  # an open-ended stage shows as finished, not still pulsing
                self._progress.update(self._task, total=max(self.completed, 1), completed=max(self.completed, 1))
            if self._nested:  # a stage inside another leaves no row behind: the outer one counts it
                self._progress.remove_task(self._task)
            with _lock:
                _shared["users"] -= 1
                if _shared["users"] == 0:
                    _shared["progress"].stop()
                    _shared["progress"] = None


@contextmanager
def stage(description: str, total: int | None = None, unit: str = "", completed: int = 0,
          quiet: bool = False, every: float | None = None) -> Iterator[Stage]:
    """``with stage("parsing music21:bach", total=len(paths), unit="files") as s: ... s.advance()``.
    ``total`` None: a stage whose length is not known (a spinner; plain lines give the time)."""
    s = Stage(description, total, unit, completed, quiet)
    s._start(EVERY if every is None else every)
    ok = False
    try:
        yield s
        ok = True
    except GeneratorExit:  # a ``track`` its consumer stopped early: ended, not failed
        ok = True
        raise
    finally:
        s._end(ok)


def track(items: Iterable[T], description: str, total: int | None = None, unit: str = "",
          quiet: bool = False, every: float | None = None) -> Iterator[T]:
    """Each item of ``items``, the stage advanced after each one (rich.progress.track, the
    project's way)."""
    if total is None and hasattr(items, "__len__"):
        total = len(items)  # type: ignore[arg-type]
    with stage(description, total, unit, quiet=quiet, every=every) as s:
        for item in items:
            try:
                yield item
            except GeneratorExit:  # the consumer is done with this item and wants no more
                s.advance()
                raise
            s.advance()
