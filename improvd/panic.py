"""``improvd panic``: silence a synth from outside the daemon.

A daemon killed with SIGKILL (or crashed inside native code) cannot send its own note-offs. The
systemd unit runs this command as ``ExecStopPost=``, so whatever way the daemon ended, the synth
ends in silence. It also serves a performer by hand: ``improvd panic --out fluid``.
"""

from __future__ import annotations

import logging
import time

from improvd import ImprovdError
from improvd.config import Settings, used_channels

log = logging.getLogger("improvd")


def silence_messages(channels: list[int], notes: bool = True) -> list[list[int]]:
    """Pedal up, all notes off and all sound off on each 0-based channel, then, for a synth
    that ignores channel mode messages, a note-off for every key."""
    out = []
    for ch in channels:
        out += [[0xB0 | ch, 64, 0], [0xB0 | ch, 123, 0], [0xB0 | ch, 120, 0]]
    if notes:
        out += [[0x80 | ch, key, 0] for ch in channels for key in range(128)]
    return out


def panic(settings: Settings, channels: list[int] | None = None) -> int:
    """Open the output port of ``settings`` (its own client, so it never meets the daemon's
    names), send the silence and wait for JACK to deliver it; returns how many messages left."""
    from improvd.midi.ports import OutputPort, pick_api

    if not settings.out_port:
        raise ImprovdError("panic needs the synth's port: give --out PORT (or out_port in the config); "
                           "improvd's own virtual port went away with the daemon")
    port = OutputPort(pick_api(settings.backend), f"{settings.client_name}-panic", settings.out_port, False)
    try:
        messages = silence_messages(channels if channels is not None else used_channels(settings))
        for data in messages:
            port.send(data)  # paced by the port, so a burst does not overrun a JACK buffer
        time.sleep(0.2)  # rtmidi hands the last messages to JACK in its next cycles
    finally:
        port.close()
    log.info("panic: %d messages to %s", len(messages), getattr(port, "source", settings.out_port))
    return len(messages)
