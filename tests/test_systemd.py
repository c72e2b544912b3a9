"""The systemd unit, the example config and the sd_notify client.

The unit is checked twice: by reading it (so the guarantees hold where systemd is absent) and,
where systemd-analyze exists, by systemd itself, because a misspelt directive is only a
warning in the journal and a silently unhardened daemon on stage.
"""

from __future__ import annotations

import dataclasses
import os
import re
import shutil
import socket
import subprocess
import tempfile
import uuid
from pathlib import Path

import pytest

from improvd import notify

ROOT = Path(__file__).resolve().parents[1]
UNIT = ROOT / "systemd" / "improvd.service"
EXAMPLE = ROOT / "systemd" / "improvd.toml"
EXEC = "/usr/local/bin/improvd"
MAX_EXPOSURE = 2.5


def parse_unit(path: Path) -> dict[str, list[str]]:
    """``Key`` -> every value it is given, in order (systemd keys may repeat, e.g. SystemCallFilter)."""
    out: dict[str, list[str]] = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if not line or line[0] in "#;[":
            continue
        key, _, value = line.partition("=")
        out.setdefault(key.strip(), []).append(value.strip())
    return out


@pytest.fixture(scope="module")
def unit() -> dict[str, list[str]]:
    return parse_unit(UNIT)


def one(unit, key):
    values = unit.get(key)
    assert values, f"{key}= missing from {UNIT.name}"
    return values[-1]


# -- the unit, read -------------------------------------------------------------------------

@pytest.mark.parametrize(
    "key, value",
    [
        ("Type", "notify"),
        ("NotifyAccess", "main"),
        ("WatchdogSec", "10"),
        ("Restart", "on-failure"),
        ("RestartSec", "2"),
        ("ExecStart", f"{EXEC} run --config /etc/improvd/improvd.toml"),
        ("ExecReload", "/bin/kill -HUP $MAINPID"),
        ("ExecStopPost", f"-{EXEC} panic --config /etc/improvd/improvd.toml"),
        ("RestartPreventExitStatus", "2"),
        ("User", "improvd"),
        ("Group", "audio"),
        ("StateDirectory", "improvd"),
        ("UMask", "0077"),
        ("PrivateNetwork", "yes"),
        ("IPAddressDeny", "any"),
        ("RestrictAddressFamilies", "AF_UNIX"),
        ("ProtectSystem", "strict"),
        ("ProtectHome", "yes"),
        ("NoNewPrivileges", "yes"),
        ("PrivateTmp", "yes"),
        ("ProtectKernelTunables", "yes"),
        ("ProtectKernelModules", "yes"),
        ("ProtectKernelLogs", "yes"),
        ("ProtectControlGroups", "yes"),
        ("ProtectClock", "yes"),
        ("ProtectHostname", "yes"),
        ("ProtectProc", "invisible"),
        ("ProcSubset", "pid"),
        ("RestrictNamespaces", "yes"),
        ("LockPersonality", "yes"),
        ("MemoryDenyWriteExecute", "yes"),
        ("SystemCallArchitectures", "native"),
        ("CapabilityBoundingSet", ""),
        ("AmbientCapabilities", ""),
        ("PrivateDevices", "no"),
        ("DevicePolicy", "closed"),
        ("DeviceAllow", "char-alsa rw"),
        ("RestrictRealtime", "no"),
        ("SystemCallErrorNumber", "EPERM"),
    ],
)
def test_unit_sets(unit, key, value):
    assert one(unit, key) == value


def test_unit_lets_audio_threads_go_realtime(unit):
    assert 1 <= int(one(unit, "LimitRTPRIO")) <= 95
    assert int(one(unit, "Nice")) < 0
    # The manager must not put the whole process at FIFO: onnxruntime's pool would run there.
    assert "CPUSchedulingPolicy" not in unit or one(unit, "CPUSchedulingPolicy") in ("other", "batch")


def test_unit_syscall_filter(unit):
    filters = unit["SystemCallFilter"]
    assert filters[0] == "@system-service", "the first filter line must be the allow list"
    removed = " ".join(f[1:] for f in filters if f.startswith("~")).split()
    assert "@privileged" in removed and "@resources" in removed
    readded = " ".join(f for f in filters[1:] if not f.startswith("~")).split()
    assert set(readded) <= {"sched_setscheduler", "sched_setparam", "sched_setattr"}
    assert "sched_setscheduler" in readded  # libjack's process thread asks for SCHED_FIFO


def test_unit_never_gets_a_network(unit):
    assert not any("AF_INET" in v or "AF_NETLINK" in v for v in unit["RestrictAddressFamilies"])
    assert "DynamicUser" not in unit or one(unit, "DynamicUser") == "no"
    assert "IPAddressAllow" not in unit


# -- the unit, by systemd -------------------------------------------------------------------

needs_analyze = pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze is not installed")


@needs_analyze
def test_systemd_analyze_verify():
    """Clean, save the one complaint a build machine must have: the daemon isn't installed there."""
    r = subprocess.run(["systemd-analyze", "verify", str(UNIT)], capture_output=True, text=True, timeout=60)
    lines = [l for l in (r.stdout + r.stderr).splitlines() if l.strip()]
    missing_exec = f"improvd.service: Command {EXEC} is not executable: No such file or directory"
    allowed = [] if os.access(EXEC, os.X_OK) else [missing_exec]
    assert [l for l in lines if l not in allowed] == []
    if not lines:
        assert r.returncode == 0


@needs_analyze
def test_systemd_analyze_security_exposure():
    r = subprocess.run(
        ["systemd-analyze", "security", "--offline=true", "--no-pager", str(UNIT)],
        capture_output=True, text=True, timeout=60,
    )
    m = re.search(r"Overall exposure level for improvd\.service: (\d+(?:\.\d+)?)", r.stdout)
    assert m, f"no exposure line in:\n{r.stdout}\n{r.stderr}"
    assert float(m.group(1)) <= MAX_EXPOSURE


# -- the example config ---------------------------------------------------------------------

def test_example_config_loads():
    from improvd.config import load_settings

    load_settings(EXAMPLE, environ={})


def test_example_config_names_every_setting():
    """Every Settings field appears (set or commented out) in the table it belongs to."""
    from improvd.config import Settings

    text = EXAMPLE.read_text()
    top, _, rest = text.partition("\n[cc]\n")
    cc, _, rules = rest.partition("\n[rules]\n")
    s = Settings()

    def names(block):
        return set(re.findall(r"^#?\s*([a-z_]+)\s*=", block, re.M))

    tables = {"cc": cc, "rules": rules}
    for f in dataclasses.fields(s):
        value = getattr(s, f.name)
        if dataclasses.is_dataclass(value):
            want = {g.name for g in dataclasses.fields(value)}
            assert want <= names(tables[f.name]), f"[{f.name}] lacks {want - names(tables[f.name])}"
        else:
            assert f.name in names(top), f"{f.name} missing from {EXAMPLE.name}"


# -- sd_notify --------------------------------------------------------------------------------

@pytest.fixture
def notify_socket(tmp_path, monkeypatch):
    path = tmp_path / "notify"
    if len(str(path)) > 100:  # sun_path holds 108 bytes
        path = Path(tempfile.mkdtemp(prefix="improvd-")) / "notify"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(path))
    sock.settimeout(2)
    monkeypatch.setenv("NOTIFY_SOCKET", str(path))
    yield sock
    sock.close()


def test_ready_arrives(notify_socket):
    assert notify.ready() is True
    assert notify_socket.recv(4096) == b"READY=1"


@pytest.mark.parametrize(
    "call, datagram",
    [
        (notify.stopping, b"STOPPING=1"),
        (notify.reloading, b"RELOADING=1"),
        (notify.watchdog_ping, b"WATCHDOG=1"),
        (lambda: notify.status("model warm\nports open"), b"STATUS=model warm ports open"),
    ],
)
def test_helpers_send_their_state(notify_socket, call, datagram):
    assert call() is True
    assert notify_socket.recv(4096) == datagram


def test_abstract_namespace(monkeypatch):
    name = f"improvd-test-{uuid.uuid4().hex}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(b"\0" + name.encode())
        sock.settimeout(2)
        monkeypatch.setenv("NOTIFY_SOCKET", "@" + name)
        assert notify.notify("READY=1\nSTATUS=up") is True
        assert sock.recv(4096) == b"READY=1\nSTATUS=up"


def test_no_socket_is_a_quiet_no_op(monkeypatch):
    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)

    def no_socket(*a, **k):
        raise AssertionError("a socket was opened with NOTIFY_SOCKET unset")

    monkeypatch.setattr(socket, "socket", no_socket)
    assert notify.notify("READY=1") is False
    assert notify.ready() is False
    assert notify.watchdog_ping() is False


def test_dead_socket_returns_false(tmp_path, monkeypatch):
    monkeypatch.setenv("NOTIFY_SOCKET", str(tmp_path / "nobody-listens"))
    assert notify.ready() is False


def test_only_af_unix_is_ever_opened(notify_socket, monkeypatch):
    families = []
    real = socket.socket

    def spy(family=-1, type=-1, *a, **k):
        families.append(family)
        return real(family, type, *a, **k)

    monkeypatch.setattr(socket, "socket", spy)
    for call in (notify.ready, notify.stopping, notify.watchdog_ping, lambda: notify.status("x")):
        call()
    assert families and set(families) == {socket.AF_UNIX}


def test_watchdog_interval(monkeypatch):
    monkeypatch.delenv("WATCHDOG_PID", raising=False)
    monkeypatch.delenv("WATCHDOG_USEC", raising=False)
    assert notify.watchdog_interval() is None
    monkeypatch.setenv("WATCHDOG_USEC", "4000000")
    assert notify.watchdog_interval() == 2.0
    monkeypatch.setenv("WATCHDOG_PID", str(os.getpid()))
    assert notify.watchdog_interval() == 2.0
    monkeypatch.setenv("WATCHDOG_PID", str(os.getpid() + 1))
    assert notify.watchdog_interval() is None  # inherited: the watchdog is our parent's
    monkeypatch.delenv("WATCHDOG_PID")
    monkeypatch.setenv("WATCHDOG_USEC", "0")
    assert notify.watchdog_interval() is None
