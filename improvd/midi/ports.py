"""Real MIDI ports through python-rtmidi: ALSA sequencer or JACK, opened by substring or as
virtual ports, watched so that an unplugged keyboard is reconnected without a restart.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections import deque

import rtmidi

from improvd import ImprovdError

log = logging.getLogger("improvd")


class PortError(ImprovdError):
    pass


def pick_api(backend: str) -> int:
    has_alsa = os.path.exists("/dev/snd/seq")
    if backend == "alsa":
        if not has_alsa:
            raise PortError("backend alsa: this kernel has no ALSA sequencer (/dev/snd/seq is missing): load snd-seq or use --backend jack")
        return rtmidi.API_LINUX_ALSA
    if backend == "jack" or (backend == "auto" and not has_alsa):
        return rtmidi.API_UNIX_JACK
    return rtmidi.API_LINUX_ALSA


def _make(cls, api: int, name: str):
    try:
        obj = cls(api, name)
    except (rtmidi.SystemError, rtmidi.RtMidiError) as e:  # no server
        which = "JACK server" if api == rtmidi.API_UNIX_JACK else "ALSA sequencer"
        raise PortError(f"cannot reach the {which} ({e}): start it (e.g. `jackd -d dummy &` or `jackd -d alsa`) or pick another --backend") from None
    if api == rtmidi.API_UNIX_JACK and obj.get_current_api() != api:
        raise PortError("python-rtmidi was built without JACK: reinstall python-rtmidi with JACK headers (libjack-jackd2-dev)")
    return obj


def list_ports(backend: str = "auto", client: str = "improvd-list") -> tuple[list[str], list[str]]:
    api = pick_api(backend)
    mi, mo = _make(rtmidi.MidiIn, api, client), _make(rtmidi.MidiOut, api, client)
    try:
        return mi.get_ports(), mo.get_ports()
    finally:
        mi.delete()
        mo.delete()


def jack_server_id() -> tuple | None:
    """(inode, mtime) of the JACK server's socket, None when no server runs."""
    name = os.environ.get("JACK_DEFAULT_SERVER", "default")
    base = os.environ.get("JACK_TMPDIR", "/dev/shm")
    try:
        st = os.stat(os.path.join(base, f"jack_{name}_{os.getuid()}_0"))
    except OSError:
        return None
    return (st.st_ino, st.st_mtime_ns)


def match_port(ports: list[str], pattern: str, kind: str, own_client: str | None = None) -> int:
    """Index of the first port whose name holds ``pattern`` (case-insensitive)."""
    pat = pattern.lower()
    for i, name in enumerate(ports):
        if own_client and name.lower().startswith(own_client.lower() + "-"):
            continue
        if pat in name.lower():
            return i
    listing = ", ".join(repr(p) for p in ports) or "none"
    raise PortError(f"{kind} port {pattern!r} not found; {kind} ports here: {listing}")


class _Silent:
    """Stands in for a dropped rtmidi object while its server is down: every call is a no-op."""

    def __getattr__(self, _name):
        return lambda *a, **k: [] if _name == "get_ports" else None


class _Port:
    """What input and output share: open by pattern or virtually, and re-open when it returns."""

    OPEN_TRIES = 5

    kind = "?"
    rt_class = None  # rtmidi.MidiIn or rtmidi.MidiOut, set by the subclass

    def __init__(self, api: int, client: str, pattern: str | None, virtual: bool, port_name: str):
        # JACK wants one client per rtmidi object and unique client names: NAME-in, NAME-out.
        self.api, self.client, self.pattern, self.virtual, self.port_name = api, f"{client}-{port_name}", pattern, virtual, port_name
        self.base_client = client
        self.rt = _make(self.rt_class, api, self.client)
        self.connected = False
        self.lost_since: float | None = None
        self.server = jack_server_id() if api == rtmidi.API_UNIX_JACK else None
        self.server_down = False
        self._open(first=True)

    def _open(self, first: bool = False) -> None:
        if self.virtual or self.pattern is None:
            self.rt.open_virtual_port(self.port_name)
            self.connected = True
            return
        # rtmidi opens by index and looks the name up again inside: if clients came or went
        # between the two listings, the index may name another port. Check after opening that
        # the index still names the port we matched; if not, close and match again.
        for _ in range(self.OPEN_TRIES):
            names = self.rt.get_ports()
            idx = match_port(names, self.pattern, self.kind, self.base_client)
            self.rt.open_port(idx, self.port_name)
            after = self.rt.get_ports()
            if idx < len(after) and after[idx] == names[idx]:
                self.connected = True
                self.source = names[idx]
                return
            self.rt.close_port()
        raise PortError(f"{self.kind} port {self.pattern!r} kept moving while it was opened (MIDI clients coming and "
                           f"going): try again once the other clients have settled")

    def check(self) -> str | None:
        """Poll once (about a second apart): 'lost' / 'back' when that changed, else None."""
        if self.server is not None:
            change = self._check_server()
            if change or self.server_down:
                return change
        if self.virtual or self.pattern is None:
            return None
        try:
            ports = [p for p in self.rt.get_ports() if not p.lower().startswith(self.base_client.lower() + "-")]
        except Exception:
            ports = []
        present = any(self.pattern.lower() in p.lower() for p in ports)
        if self.connected and not present:
            self.connected = False
            self.lost_since = time.monotonic()
            log.warning("%s port %r is gone; playing on, reconnecting when it returns", self.kind, self.pattern)
            try:
                self.rt.close_port()
            except Exception:
                pass
            return "lost"
        if not self.connected and present:
            try:
                self._renew()
                self._open()
            except ImprovdError:
                return None
            log.warning("%s port %r is back, reconnected", self.kind, self.pattern)
            self.lost_since = None
            return "back"
        return None

    def _check_server(self) -> str | None:
        """A JACK client outlives its server as a zombie that still lists the old ports, so the
        server's socket is watched instead: gone means down, a new one means restarted."""
        now_id = jack_server_id()
        if now_id is None and not self.server_down:
            self.server_down, self.connected = True, False
            log.warning("the JACK server is gone; playing on silently, reconnecting when it is back")
            # Let go of the dead client now: deleted after a new server is up, it unregisters
            # by port id there, and takes down whichever new port got the same id.
            self._drop()
            return "lost"
        if now_id is not None and now_id != self.server:
            try:
                self._renew()
                self._open()
            except ImprovdError:
                return None  # back, but our source is not there yet: the port check finds it later
            self.server, self.server_down = now_id, False
            log.warning("the JACK server is back; %s port reopened", self.kind)
            return "back"
        return None

    def _drop(self) -> None:
        try:
            self.rt.delete()
        except Exception:
            pass
        self.rt = _Silent()

    def _renew(self) -> None:
        """A fresh rtmidi object before re-opening: python-rtmidi's JACK input hears nothing more
        on its callback after close_port + open_port, so a returning keyboard would stay silent."""
        try:
            self.rt.delete()
        except Exception:
            pass
        self.rt = _make(self.rt_class, self.api, self.client)
        self._setup()

    def _setup(self) -> None:
        pass

    def close(self) -> None:
        try:
            self.rt.close_port()
        finally:
            self.rt.delete()


class InputPort(_Port):
    kind = "input"
    rt_class = rtmidi.MidiIn

    def __init__(self, api, client, pattern, virtual, port_name="in", clock_in=False, maxlen=20000):
        self.queue: deque = deque(maxlen=maxlen)
        self.wake = threading.Event()  # the engine thread sleeps on it between ticks
        self.dropped = 0
        self.clock_in = clock_in
        super().__init__(api, client, pattern, virtual, port_name)
        self._setup()

    def _setup(self) -> None:
        self.rt.ignore_types(sysex=True, timing=not self.clock_in, active_sense=True)
        self.rt.set_callback(self._callback)

    def _callback(self, event, _data=None):
        # rtmidi's thread: stamp and hand over, nothing else; the engine thread does the rest.
        if len(self.queue) == self.queue.maxlen:
            self.dropped += 1
        self.queue.append((event[0], time.perf_counter()))
        self.wake.set()


class OutputPort(_Port):
    kind = "output"
    rt_class = rtmidi.MidiOut

    def __init__(self, api, client, pattern, virtual, port_name="out"):
        self.on_at_far_end: set = set()  # (channel, note) that the synth has heard start
        self._window, self._in_window = 0.0, 0
        super().__init__(api, client, pattern, virtual, port_name)

    BURST = 48  # messages per millisecond a JACK period can be trusted to carry

    def send(self, data: list) -> None:
        if not self.connected:
            return
        # A burst (panic, exit with many notes held) can overrun a JACK port buffer, which
        # drops what does not fit: a note-off lost that way is a stuck note. Pace bursts.
        now = time.perf_counter()
        if now - self._window > 0.001:
            self._window, self._in_window = now, 0
        self._in_window += 1
        if self._in_window > self.BURST:
            time.sleep(0.0015)
            self._window, self._in_window = time.perf_counter(), 1
        try:
            self.rt.send_message(data)
        except Exception:
            return
        status = data[0] & 0xF0
        key = (data[0] & 0x0F, data[1]) if len(data) > 1 else None
        if status == 0x90 and data[2] > 0:
            self.on_at_far_end.add(key)
        elif status == 0x80 or (status == 0x90 and data[2] == 0):
            self.on_at_far_end.discard(key)

    def check(self):
        change = super().check()
        if change == "back":
            # Whatever it heard start before it went away, it now hears end.
            for ch, note in sorted(self.on_at_far_end):
                self.rt.send_message([0x80 | ch, note, 0])
            self.on_at_far_end.clear()
            for ch in range(16):
                self.rt.send_message([0xB0 | ch, 123, 0])
        return change
