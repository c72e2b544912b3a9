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
from improvd.midi.arrival import ArrivalClock

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


def _make(cls, api: int, name: str, **options):
    try:
        obj = cls(api, name, **options)
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


OWN_PORTS = ("in", "out", "panic-out", "learn-in")  # improvd's clients are NAME-in, NAME-out, ...


def is_own(port: str, own_client: str | None) -> bool:
    """A port of improvd's own clients (``NAME-in:in``...), never one to connect to. Only those
    exact clients: a synth called ``NAME-synth`` is somebody else's and can be opened."""
    if not own_client:
        return False
    client = port.split(":", 1)[0].lower()
    return client in {f"{own_client}-{suffix}".lower() for suffix in OWN_PORTS}


def match_port(ports: list[str], pattern: str, kind: str, own_client: str | None = None) -> int:
    """Index of the first port whose name holds ``pattern`` (case-insensitive)."""
    pat = pattern.lower()
    for i, name in enumerate(ports):
        if is_own(name, own_client):
            continue
        if pat in name.lower():
            return i
    listing = ", ".join(repr(p) for p in ports) or "none"
    raise PortError(f"{kind} port {pattern!r} not found; {kind} ports here: {listing}")


_LEFT: list = []  # rtmidi objects left for the process's end (see _Port.leave)


class _Silent:
    """Stands in for a dropped rtmidi object while its server is down: every call is a no-op."""

    def __getattr__(self, _name):
        return lambda *a, **k: [] if _name == "get_ports" else None


class JackServer:
    """Watches the JACK server for all of one process's ports together.

    A JACK client outlives its server as a zombie that still lists the old ports, so the
    server's socket is watched: gone means down, another one (a restart, also after SIGKILL,
    which leaves the old socket file behind) means a new server. Then every client of the
    old server must be closed before any new one is opened: libjack frees the zombies itself
    when the next client opens (its JackLibGlobals clean-up), so a zombie closed after that
    is a use-after-free. Seen here: after jackd was SIGKILLed and restarted, the input port
    was reopened and then vanished from the graph as the output's zombie was deleted, and
    SIGTERM segfaulted in libjack. Two ports renewed one by one cannot get this order right.
    """

    def __init__(self, ports: list):
        self.ports = ports
        self.id = jack_server_id()
        self.down = False

    def check(self) -> str | None:
        """'lost' when the server went, 'back' once every port is on a new server, else None."""
        now_id = jack_server_id()
        if now_id == self.id and not self.down:
            return None
        if not self.down:
            for p in self.ports:  # every zombie goes while no new client exists
                p._drop()
            self.down = True
            if now_id is None:
                log.warning("the JACK server is gone; playing on silently, reconnecting when it is back")
                self.id = None
                return "lost"
            log.warning("the JACK server was replaced; reconnecting")
        if now_id is None:
            return None
        try:
            for p in self.ports:
                p._renew()
        except ImprovdError:
            for p in self.ports:
                p._drop()
            return None  # not accepting clients yet: next time
        for p in self.ports:
            try:
                p._open()
            except ImprovdError:
                p.connected = False  # its device is not back yet: the port's own check finds it
        self.id, self.down = now_id, False
        log.warning("the JACK server is back; ports reopened")
        return "back"


class _Port:
    """What input and output share: open by pattern or virtually, and re-open when it returns."""

    OPEN_TRIES = 5

    kind = "?"
    rt_class = None  # rtmidi.MidiIn or rtmidi.MidiOut, set by the subclass

    def __init__(self, api: int, client: str, pattern: str | None, virtual: bool, port_name: str):
        # JACK wants one client per rtmidi object and unique client names: NAME-in, NAME-out.
        self.api, self.client, self.pattern, self.virtual, self.port_name = api, f"{client}-{port_name}", pattern, virtual, port_name
        self.base_client = client
        self.rt = self._new_rt()
        self.connected = False
        self.lost_since: float | None = None
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
        """Poll once (about a second apart): 'lost' / 'back' when the port itself went or came
        back; a JACK server going or coming back is JackServer's to watch."""
        if self.virtual or self.pattern is None or isinstance(self.rt, _Silent):
            return None
        try:
            ports = [p for p in self.rt.get_ports() if not is_own(p, self.base_client)]
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

    def describe(self) -> str:
        """For the log: what this port is connected to."""
        if self.virtual or self.pattern is None:
            return f"virtual {self.client}:{self.port_name}"
        return repr(getattr(self, "source", self.pattern))

    def _drop(self) -> None:
        self.connected = False
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
        self.rt = self._new_rt()
        self._setup()

    def _new_rt(self):
        return _make(self.rt_class, self.api, self.client)

    def _setup(self) -> None:
        pass

    def close(self) -> None:
        try:
            self.rt.close_port()
        finally:
            self.rt.delete()
            self.rt = _Silent()

    def leave(self) -> None:
        """The process ends right after: its MIDI client goes with it, closed by the server.

        Unregistering a JACK port while its client is active races rtmidi's process thread,
        which reads the port in every cycle: the daemon segfaulted at exit after a synth had
        come back (1 CI run in about 20 under load), and a hang in close_port was seen before.
        JACK drops a client whose process has gone as it drops a crashed one. The rtmidi object
        is kept referenced, so no destructor runs it down either; the caller ends the process
        with ``os._exit``."""
        _LEFT.append(self.rt)
        self.rt = _Silent()
        self.connected = False


class InputPort(_Port):
    """The performer's port, read by polling from the engine thread.

    No Python callback is registered with rtmidi: its JACK backend calls the callback from
    JACK's realtime process thread, which then has to take the GIL. Two things went wrong that
    way. While the engine thread held the GIL (a model step, a rich redraw) JACK's cycle waited
    for it, missed its deadline and lost the messages of that cycle. And at exit python-rtmidi
    closes the client holding the GIL while libjack waits for the process thread, which waits
    for the GIL: SIGINT was "ignored" (the exit hung), or the callback's data was freed under a
    message in flight (SIGSEGV at exit, 1 in 20 duet runs with the performer playing). Without
    a callback, rtmidi's process thread only queues (plain C, microseconds); ``poll`` moves the
    queue into ours, stamped, every half millisecond while the engine sleeps.
    """

    kind = "input"
    rt_class = rtmidi.MidiIn
    RT_QUEUE = 8192  # rtmidi's own queue between two polls: a flood of 10,000 a second for 0.8 s

    def __init__(self, api, client, pattern, virtual, port_name="in", clock_in=False, maxlen=20000):
        self.queue: deque = deque(maxlen=maxlen)
        self.wake = threading.Event()  # set by a signal handler: stop sleeping now
        self.dropped = 0
        self.last_input = float("-inf")  # perf_counter of the last message polled
        self.clock_in = clock_in
        self.arrival = ArrivalClock()  # each message stamped with when it reached the port
        # what is dropped here rather than by rtmidi: a message rtmidi ignores still moves its
        # delta clock on, so the next delta would leave its time out (ArrivalClock's sums)
        self.skip = {0xF0, 0xF7, 0xFE} | (set() if clock_in else {0xF1, 0xF8})
        super().__init__(api, client, pattern, virtual, port_name)
        self._setup()

    def _new_rt(self):
        return _make(self.rt_class, self.api, self.client, queue_size_limit=self.RT_QUEUE)

    def _setup(self) -> None:
        self.rt.ignore_types(sysex=False, timing=False, active_sense=False)
        self.arrival.reset()

    def poll(self) -> int:
        """Move what rtmidi queued since the last poll into ``queue``, each message stamped
        with its arrival (ArrivalClock); returns how many."""
        get = self.rt.get_message
        stamp, skip = self.arrival.stamp, self.skip
        n = 0
        while True:
            item = get()
            if not item:
                return n
            data, delta = item
            now = time.perf_counter()
            t = stamp(delta, now)
            if not data or data[0] in skip:
                continue
            if len(self.queue) == self.queue.maxlen:
                self.dropped += 1
            self.last_input = now
            self.queue.append((data, t))
            n += 1


class OutputPort(_Port):
    kind = "output"
    rt_class = rtmidi.MidiOut

    def __init__(self, api, client, pattern, virtual, port_name="out"):
        self.on_at_far_end: set = set()  # (channel, note) that the synth has heard start
        self.clear_channels: list = list(range(16))  # 0-based channels clear() silences
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

    def clear(self) -> None:
        """Pedal up and all notes off on every channel improvd uses: at start (an improvd
        killed before may have left notes on), on every reconnection, and once more at exit."""
        for ch in self.clear_channels:
            self.send([0xB0 | ch, 64, 0])
            self.send([0xB0 | ch, 123, 0])

    def check(self):
        change = super().check()
        if change == "back":
            self.reconnected()
        return change

    def reconnected(self) -> None:
        """Whatever the synth heard start before it went away, it now hears end."""
        for ch, note in sorted(self.on_at_far_end):
            self.send([0x80 | ch, note, 0])
        self.on_at_far_end.clear()
        self.clear()
