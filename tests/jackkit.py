"""Test helpers over a real JACK server: a player that plays into improvd's input port and a
recorder on its output port (python-rtmidi clients, like a keyboard and a synth would be)."""

from __future__ import annotations

import contextlib
import os
import signal
import shutil
import subprocess
import sys
import time

import pytest
import rtmidi


def jack_running() -> bool:
    try:
        m = rtmidi.MidiOut(rtmidi.API_UNIX_JACK, "improvd-probe")
    except Exception:
        return False
    ok = m.get_current_api() == rtmidi.API_UNIX_JACK
    try:
        m.get_ports()
    except Exception:
        ok = False
    m.delete()
    return ok


needs_jack = pytest.mark.skipif(not (shutil.which("jackd") and jack_running()),
                                reason="no JACK server running (start: jackd -R -d dummy -r 48000 -p 64 &, or --no-realtime where realtime is refused)")


class Recorder:
    """A synth stand-in: connects to a port and keeps (perf_counter, bytes) of all it hears.

    ``source_pattern`` None: only open the port 'NAME:in' for improvd's --out to find.
    ``drop``: the share of messages it loses on arrival (seeded), as a loaded MIDI path does;
    what it drops is kept apart in ``dropped``.

    It reads its port by polling from a thread of its own, as improvd's InputPort does: a
    Python callback would run in JACK's realtime thread and take the GIL, and a JACK client
    closed in the same process (an in-process daemon stopping) could then deadlock or crash
    the test process."""

    def __init__(self, source_pattern: str | None, name: str = "rec", drop: float = 0.0, seed: int = 0):
        import random
        import threading

        self.events: list = []
        self.dropped: list = []
        self.name = name
        self._rng, self._drop = random.Random(seed), drop
        self.mi = rtmidi.MidiIn(rtmidi.API_UNIX_JACK, name, queue_size_limit=8192)
        self.mi.ignore_types(sysex=False, timing=False, active_sense=True)
        self.source_pattern = source_pattern
        self._running = True
        self._reader = threading.Thread(target=self._read, name=f"{name}-reader", daemon=True)
        self._reader.start()
        self.connect()

    def _read(self) -> None:
        while self._running:
            item = self.mi.get_message()
            if item:
                self._heard(item[0])
            else:
                time.sleep(0.0005)

    def _heard(self, data) -> None:
        item = (time.perf_counter(), list(data))
        if self._drop and self._rng.random() < self._drop:
            self.dropped.append(item)
        else:
            self.events.append(item)

    def connect(self, timeout: float = 5.0) -> None:
        # By name, not by index: with other JACK clients coming and going, the index rtmidi
        # opens can name another port than the one just listed.
        self.mi.open_virtual_port("in")
        if self.source_pattern is None:
            return
        src = find_port(self.mi, self.source_pattern, timeout)
        jack_connect(src, f"{self.name}:in", timeout)

    def sounded(self, until: float | None = None) -> list:
        """(channel, pitch, start, end) of every note as this synth sounded it: from a note-on
        to the next note-off of that key or all-notes-off (CC123) on its channel; end is
        ``until`` (default now) for a note still sounding. A synth ignores a note-off for a
        key that is not sounding, and a second note-on restarts the key."""
        until = time.perf_counter() if until is None else until
        on: dict = {}
        out = []
        for t, d in self.events:
            st = d[0] & 0xF0
            ch = d[0] & 0x0F
            if st == 0x90 and len(d) > 2 and d[2] > 0:
                if (ch, d[1]) in on:
                    out.append((ch, d[1], on.pop((ch, d[1])), t))
                on[(ch, d[1])] = t
            elif (st == 0x80 or st == 0x90) and len(d) > 1 and (ch, d[1]) in on:
                out.append((ch, d[1], on.pop((ch, d[1])), t))
            elif st == 0xB0 and len(d) > 2 and d[1] in (120, 123):
                for key in [k for k in on if k[0] == ch]:
                    out.append((*key, on.pop(key), t))
        out += [(*key, t0, until) for key, t0 in on.items()]
        return sorted(out, key=lambda n: n[2])

    def notes(self, channel: int | None = None):
        """(on, off) lists of (time, pitch); ``channel`` (0-based) keeps one channel only, e.g.
        improvd's answer apart from the performer's notes passed through."""
        ev = [(t, d) for t, d in self.events if channel is None or d[0] & 0x0F == channel]
        on = [(t, d[1]) for t, d in ev if d[0] & 0xF0 == 0x90 and d[2] > 0]
        off = [(t, d[1]) for t, d in ev if d[0] & 0xF0 == 0x80 or (d[0] & 0xF0 == 0x90 and d[2] == 0)]
        return on, off

    def hanging(self) -> list:
        """(channel, pitch) of every note-on with no note-off after it, on any channel."""
        sounding: dict = {}
        for _t, d in self.events:
            st, key = d[0] & 0xF0, (d[0] & 0x0F, d[1] if len(d) > 1 else None)
            if st == 0x90 and d[2] > 0:
                sounding[key] = sounding.get(key, 0) + 1
            elif (st == 0x80 or st == 0x90) and sounding.get(key):
                sounding[key] -= 1
            elif st == 0xB0 and len(d) > 2 and d[1] == 123:  # all notes off, as a synth obeys it
                for k in [k for k in sounding if k[0] == d[0] & 0x0F]:
                    sounding[k] = 0
        return sorted(k for k, n in sounding.items() if n > 0)

    def close(self) -> None:
        time.sleep(0.01)  # what is queued is read first
        self._running = False
        self._reader.join(timeout=2)
        self.mi.close_port()
        self.mi.delete()


class Player:
    """A keyboard stand-in: its own output port, connected to improvd's input."""

    def __init__(self, name: str = "kbd", virtual: bool = True, target: str | None = None, channel: int = 0):
        """``virtual``: just a port 'NAME:out' others connect to; else also connected to ``target``.
        ``channel`` (0-based) the phrases are played on."""
        self.channel = channel
        self.mo = rtmidi.MidiOut(rtmidi.API_UNIX_JACK, name)
        self.mo.open_virtual_port("out")
        if not virtual:
            jack_connect(f"{name}:out", find_port(self.mo, target), 5.0)

    def phrase(self, notes, beat: float) -> float:
        """Play [(pitch, beats)] legato-ish; returns the perf_counter time of the last note-off."""
        last = 0.0
        for pitch, beats in notes:
            self.mo.send_message([0x90 | self.channel, pitch, 90])
            time.sleep(beats * beat * 0.9)
            self.mo.send_message([0x80 | self.channel, pitch, 0])
            last = time.perf_counter()
            time.sleep(beats * beat * 0.1)
        return last

    def send(self, data) -> None:
        self.mo.send_message(data)

    def close(self) -> None:
        self.mo.close_port()
        self.mo.delete()


def find_port(rt, pattern: str, timeout: float = 5.0) -> str:
    """The full name of the first port holding ``pattern`` in ``rt``'s listing."""
    t0 = time.time()
    while time.time() - t0 < timeout:
        for p in rt.get_ports():
            if pattern in p:
                return p
        time.sleep(0.05)
    raise RuntimeError(f"no port {pattern!r} among {rt.get_ports()}")


def connected(src: str, dst: str) -> bool:
    out = subprocess.run(["jack_lsp", "-c"], capture_output=True, text=True, timeout=10).stdout
    cur = None
    for line in out.splitlines():
        if not line.startswith(" "):
            cur = line.strip()
        elif cur == src and line.strip() == dst:
            return True
    return False


def jack_connect(src: str, dst: str, timeout: float = 5.0) -> None:
    """Connect two ports by name (jack_connect), and check JACK says they are connected."""
    t0 = time.time()
    while time.time() - t0 < timeout:
        subprocess.run(["jack_connect", src, dst], capture_output=True, timeout=10)
        if connected(src, dst):
            return
        time.sleep(0.05)
    raise RuntimeError(f"could not connect {src} -> {dst}")


def start_daemon(args: list[str], env=None) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "improvd", "run", "--backend", "jack", *args]
    p = subprocess.Popen(cmd, stderr=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                         env={**os.environ, **(env or {})})
    return p


@contextlib.contextmanager
def daemon(args: list[str], ports=()):
    """`improvd run` with ``args`` until the block ends (then SIGTERM), once ``ports`` exist."""
    p = start_daemon(args)
    try:
        for port in ports:
            try:
                wait_for_port(port, timeout=15)
            except RuntimeError:
                p.kill()
                _out, err = p.communicate(timeout=5)
                raise AssertionError(f"improvd did not open {port}: rc {p.returncode} {err[-800:]}")
        time.sleep(0.3)
        yield p
    finally:
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
            try:
                p.communicate(timeout=10)
            except subprocess.TimeoutExpired:
                p.kill()
                p.communicate()


def attach(name: str, channel: int = 0) -> tuple["Recorder", "Player"]:
    """A synth (recorder) on daemon ``name``'s output and a keyboard into its input; the caller
    closes both."""
    rec = Recorder(f"{name}-out:out", name=f"{name}r")
    kbd = Player(f"{name}k", virtual=False, target=f"{name}-in:in", channel=channel)
    time.sleep(0.3)  # let JACK make the connections before the first note
    return rec, kbd


def wait_for_port(pattern: str, timeout: float = 15.0) -> None:
    mi = rtmidi.MidiIn(rtmidi.API_UNIX_JACK, "waiter-in")
    mo = rtmidi.MidiOut(rtmidi.API_UNIX_JACK, "waiter-out")
    try:
        t0 = time.time()
        while time.time() - t0 < timeout:
            if any(pattern in p for p in mi.get_ports() + mo.get_ports()):
                return
            time.sleep(0.05)
    finally:
        mi.delete()
        mo.delete()
    raise RuntimeError(f"port {pattern!r} did not appear")


def assert_nothing_hanging_and_close(rec: "Recorder", *clients) -> None:
    """After the daemon has gone: give JACK a moment, then every note it started has ended."""
    time.sleep(0.2)
    try:
        assert rec.hanging() == []
    finally:
        rec.close()
        for c in clients:
            c.close()
