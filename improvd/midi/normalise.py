"""Raw bytes from a port to a message the engine understands, or nothing.

Running status, sysex and garbage never reach the engine: rtmidi already expands running
status; whatever mido cannot parse is counted and dropped. Note-on with velocity 0 becomes
note-off here, once, so nothing downstream has to remember that rule.
"""

from __future__ import annotations

import mido

REALTIME = {0xF8: "clock", 0xFA: "start", 0xFB: "continue", 0xFC: "stop"}


def normalise(data) -> mido.Message | None:
    """One complete message as bytes/list of ints; None for what improvd ignores."""
    if not data:
        return None
    try:
        status = int(data[0])
    except (TypeError, ValueError):
        return None
    if status in (0xF0, 0xF7, 0xFE, 0xFF) or status < 0x80:
        return None  # sysex, active sensing, reset, stray data bytes
    try:
        msg = mido.Message.from_bytes(list(int(b) & 0xFF for b in data))
    except (ValueError, TypeError, IndexError, KeyError):
        return None
    if msg.type == "note_on" and msg.velocity == 0:
        return mido.Message("note_off", channel=msg.channel, note=msg.note, velocity=0)
    if msg.type in ("note_on", "note_off", "control_change", "program_change", "pitchwheel",
                    "clock", "start", "stop", "continue", "songpos"):
        return msg
    return None
