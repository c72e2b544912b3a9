"""The performer's controls: which control change does what, as a table built from Settings.

Pure: a message goes in, a named ``Control`` (the action and its value) comes out, or None for
a controller improvd does not listen to. The engine carries the actions out.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from improvd.config import CCSettings


class Action(Enum):
    SUSTAIN = "sustain"  # the pedal: honoured when reading the performer
    TEMPERATURE = "temperature"  # the mod wheel: at rest the usual temperature, up to 2.0 (wild)
    PANIC = "panic"
    RESET = "reset"  # fresh model state
    MODE = "mode"
    MUTATE = "mutate"  # a new answer to the same phrase
    LOOP = "loop"  # held: the last answer again and again
    TEMPO = "tempo"  # 40 + 2 x value BPM
    MODEL = "model"  # pick among the loaded models (program change does too)
    ECHO = "echo"  # how much answers develop the call: 0 the model alone .. 127 all the time


# When two actions are given one controller number, the earlier one here wins.
PRECEDENCE = (Action.SUSTAIN, Action.TEMPERATURE, Action.PANIC, Action.RESET, Action.MODE, Action.MUTATE,
              Action.LOOP, Action.TEMPO, Action.MODEL, Action.ECHO)
# Actions that fire on a press (value > 0), not on the release that follows it.
ON_PRESS = frozenset((Action.PANIC, Action.RESET, Action.MODE, Action.MUTATE))


@dataclass(frozen=True)
class Control:
    action: Action
    value: int  # 0..127, as sent


def control_table(cc: CCSettings) -> dict[int, Action]:
    """Controller number -> action, from the config's [cc] table."""
    table: dict[int, Action] = {}
    for action in reversed(PRECEDENCE):
        table[getattr(cc, action.value)] = action
    return table


def read_control(table: dict[int, Action], number: int, value: int) -> Control | None:
    """The control a CC message is, or None (not ours, or the release of a press-only one)."""
    action = table.get(number)
    if action is None or (action in ON_PRESS and value <= 0):
        return None
    return Control(action, value)


WILD = 2.0


def temperature_of(value: int, base: float) -> float:
    """The mod wheel from ``base`` (at rest, 0: the temperature the flags or the model card
    give) up to WILD (127), evenly in ratio. A wheel at rest must never mean near-greedy:
    every vibrato gesture ends at 0, and at 0.1 the jazz model loops on two or three pitches
    (docs/collapse.md: the README's Metheny replay). Lower than ``base`` only by --temperature."""
    if base <= 0 or base >= WILD:
        return base
    return base * (WILD / base) ** (value / 127)


def tempo_of(value: int) -> float:
    return 40 + 2 * value


def pick_of(value: int, choices: int) -> int:
    """A 0..127 controller value as an index into ``choices`` things, evenly."""
    return value * choices // 128
