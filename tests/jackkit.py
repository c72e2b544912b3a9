"""Test helpers over a real JACK server: a player that plays into improvd's input port and a
recorder on its output port (python-rtmidi clients, like a keyboard and a synth would be)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import threading
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
                                reason="no JACK server running (start: jackd --no-realtime -d dummy -r 48000 -p 64 &)")


class Recorder:
    """A synth stand-in: connects to a port and keeps (perf_counter, bytes) of all it hears."""

    def __init__(self, source_pattern: str, name: str = "rec"):
        self.events: list = []
        self.mi = rtmidi.MidiIn(rtmidi.API_UNIX_JACK, name)
        self.mi.ignore_types(sysex=False, timing=False, active_sense=True)
        self.source_pattern = source_pattern
        self.mi.set_callback(lambda ev, _d: self.events.append((time.perf_counter(), list(ev[0]))))
        self.connect()

    def connect(self, timeout: float = 5.0) -> None:
        t0 = time.time()
        while time.time() - t0 < timeout:
            ports = self.mi.get_ports()
            for i, p in enumerate(ports):
                if self.source_pattern in p:
                    self.mi.open_port(i, "in")
                    return
            time.sleep(0.05)
        raise RuntimeError(f"no port {self.source_pattern!r} among {self.mi.get_ports()}")

    def notes(self):
        on = [(t, d[1]) for t, d in self.events if d[0] & 0xF0 == 0x90 and d[2] > 0]
        off = [(t, d[1]) for t, d in self.events if d[0] & 0xF0 == 0x80 or (d[0] & 0xF0 == 0x90 and d[2] == 0)]
        return on, off

    def hanging(self) -> list:
        """Pitches whose last note-on has no note-off after it (CC123 counts as all off)."""
        sounding = {}
        for _t, d in self.events:
            st = d[0] & 0xF0
            if st == 0x90 and d[2] > 0:
                sounding[d[1]] = sounding.get(d[1], 0) + 1
            elif st == 0x80 or (st == 0x90 and d[2] == 0):
                if sounding.get(d[1]):
                    sounding[d[1]] -= 1
        return sorted(p for p, n in sounding.items() if n > 0)

    def close(self) -> None:
        self.mi.close_port()
        self.mi.delete()


class Player:
    """A keyboard stand-in: its own output port, connected to improvd's input."""

    def __init__(self, name: str = "kbd", virtual: bool = True, target: str | None = None):
        self.mo = rtmidi.MidiOut(rtmidi.API_UNIX_JACK, name)
        if virtual:
            self.mo.open_virtual_port("out")
        else:
            t0 = time.time()
            while time.time() - t0 < 5:
                for i, p in enumerate(self.mo.get_ports()):
                    if target in p:
                        self.mo.open_port(i, "out")
                        return
                time.sleep(0.05)
            raise RuntimeError(f"no port {target!r}")

    def phrase(self, notes, beat: float) -> float:
        """Play [(pitch, beats)] legato-ish; returns the perf_counter time of the last note-off."""
        last = 0.0
        for pitch, beats in notes:
            self.mo.send_message([0x90, pitch, 90])
            time.sleep(beats * beat * 0.9)
            self.mo.send_message([0x80, pitch, 0])
            last = time.perf_counter()
            time.sleep(beats * beat * 0.1)
        return last

    def send(self, data) -> None:
        self.mo.send_message(data)

    def close(self) -> None:
        self.mo.close_port()
        self.mo.delete()


def start_daemon(args: list[str], env=None) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "improvd", "run", "--backend", "jack", *args]
    p = subprocess.Popen(cmd, stderr=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                         env={**os.environ, **(env or {})})
    return p


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
