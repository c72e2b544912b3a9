"""sd_notify, by hand: readiness, status and watchdog pings to systemd.

Written with the standard library on purpose. The ``systemd`` Python bindings build against
libsystemd headers with a C compiler, which a stage machine should not need, and the whole
protocol is one datagram of ``KEY=value`` lines on the AF_UNIX socket named by
$NOTIFY_SOCKET. Only that AF_UNIX socket is ever opened (never AF_INET), so the unit's
``RestrictAddressFamilies=AF_UNIX`` and ``PrivateNetwork=yes`` hold.

Every call is a no-op returning False outside systemd (NOTIFY_SOCKET unset), and a failed
send is reported by the return value, never raised: losing a status line must not stop the
music.
"""

from __future__ import annotations

import os
import socket

__all__ = ["notify", "ready", "stopping", "reloading", "status", "watchdog_ping", "watchdog_interval"]


def _address(path: str) -> str | bytes:
    # '@name' is Linux's abstract namespace: a leading NUL byte instead of a file path.
    if path.startswith("@"):
        return b"\0" + path[1:].encode()
    return path


def notify(state: str) -> bool:
    """Send ``state`` (one or more ``KEY=value`` lines); True when the datagram went out."""
    path = os.environ.get("NOTIFY_SOCKET")
    if not path or path[0] not in "/@":
        return False
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
            sock.sendto(state.encode(), _address(path))
        return True
    except OSError:
        return False


def ready() -> bool:
    # Sent only once ports are open and the model is warm: Type=notify makes
    # `systemctl start` (and units ordered After= us) wait for exactly this.
    return notify("READY=1")


def stopping() -> bool:
    return notify("STOPPING=1")


def reloading() -> bool:
    # Sent on SIGHUP while the config is re-read; READY=1 afterwards ends the reload.
    return notify("RELOADING=1")


def status(text: str) -> bool:
    # One line only: a newline would start a new KEY=value assignment.
    return notify("STATUS=" + " ".join(str(text).splitlines()))


def watchdog_ping() -> bool:
    return notify("WATCHDOG=1")


def watchdog_interval() -> float | None:
    """Seconds between pings: half of $WATCHDOG_USEC, the margin sd_watchdog_enabled(3) advises.

    None when no watchdog is set, or when $WATCHDOG_PID names another process (the variable
    was inherited, and the watchdog belongs to our parent).
    """
    usec = os.environ.get("WATCHDOG_USEC")
    if not usec:
        return None
    pid = os.environ.get("WATCHDOG_PID")
    if pid:
        try:
            if int(pid) != os.getpid():
                return None
        except ValueError:
            return None
    try:
        value = int(usec)
    except ValueError:
        return None
    if value <= 0:
        return None
    return value / 2 / 1_000_000
