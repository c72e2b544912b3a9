"""How improvd plays along: call and response, duet, harmonize. One small protocol (base.Mode),
one module each; the modes are the only callers of a model's lifecycle (begin and end of an
answer, snapshot, restore, reset)."""

from __future__ import annotations

from improvd.modes.base import Mode, ModeName, State
from improvd.modes.call_response import CallResponse
from improvd.modes.duet import Duet
from improvd.modes.harmonize import Harmonize

MODES = {ModeName.CALL_RESPONSE: CallResponse, ModeName.DUET: Duet, ModeName.HARMONIZE: Harmonize}


def make_mode(name: str, stage) -> Mode:
    return MODES[ModeName(name)](stage)


__all__ = ["Mode", "ModeName", "State", "make_mode", "MODES"]
