"""The chord-conditioned jazz encoding: event tokens plus beat and chord conditioning.

Input of LSTM step i: the tokens of event i-1 (pitch, duration) and the conditioning of event
i (its position in the bar, the chord sounding at its onset). Outputs: the pitch and duration
of event i. Knowing the chord and the beat of the note it is about to choose is what lets the
model land chord tones on strong beats.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from improvd.chords import chord_features
from improvd.encoding import BAR_TICKS, fold_to_range
from improvd.encoding.events import REST, Event

ENCODING_NAME = "jazz-events"
ENCODING_VERSION = 1

PITCH_LO, PITCH_HI = 28, 108
N_PITCH = PITCH_HI - PITCH_LO + 2  # rest + pitches: the output classes
BOS = N_PITCH  # start-of-sequence pitch input (input vocabulary is N_PITCH + 1)
DURATIONS = tuple(range(1, 49)) + (54, 60, 66, 72, 84, 96)
N_DUR = len(DURATIONS)
N_POS = BAR_TICKS
COND_DIM = 24
_DUR_ARRAY = np.array(DURATIONS)


def pitch_token(pitch: int) -> int:
    if pitch == REST:
        return 0
    return fold_to_range(pitch, PITCH_LO, PITCH_HI) - PITCH_LO + 1


def token_pitch(token: int) -> int:
    return REST if token == 0 else int(token) + PITCH_LO - 1


def duration_token(ticks: int) -> int:
    return int(np.argmin(np.abs(_DUR_ARRAY - ticks)))


def token_duration(token: int) -> int:
    return DURATIONS[int(token)]


@dataclass(frozen=True)
class StepInputs:
    """One LSTM step's inputs, batched over a sequence (all arrays length T)."""

    prev_pitch: np.ndarray  # int64
    prev_dur: np.ndarray  # int64
    pos: np.ndarray  # int64
    cond: np.ndarray  # float32 [T, 24]


def step_input(prev: Event | None, onset: int, chord) -> tuple[int, int, int, np.ndarray]:
    """Inputs for the step that predicts the event starting at ``onset`` under ``chord``."""
    if prev is None:
        pp, pd = BOS, 0
    else:
        pp, pd = pitch_token(prev.pitch), duration_token(prev.duration)
    return pp, pd, onset % BAR_TICKS, chord_features(chord)


def encode(events: list[Event]) -> tuple[StepInputs, np.ndarray, np.ndarray]:
    """A whole solo as inputs and targets (pitch tokens, duration tokens)."""
    n = len(events)
    pp = np.empty(n, np.int64)
    pd = np.empty(n, np.int64)
    pos = np.empty(n, np.int64)
    cond = np.empty((n, COND_DIM), np.float32)
    prev = None
    for i, e in enumerate(events):
        pp[i], pd[i], pos[i], cond[i] = step_input(prev, e.onset, e.chord)
        prev = e
    tp = np.array([pitch_token(e.pitch) for e in events], np.int64)
    td = np.array([duration_token(e.duration) for e in events], np.int64)
    return StepInputs(pp, pd, pos, cond), tp, td


def events_from_wjazzd(record: dict) -> list[Event]:
    """A WJazzD .jsonl record: ``[pitch, duration_ticks, onset_in_bar, root_pc, type]`` rows."""
    from improvd.chords import Chord

    if record.get("ticks_per_beat", 12) != 12:
        raise ValueError(f"solo {record.get('melid')}: ticks_per_beat must be 12")
    events, tick = [], 0
    first = True
    for pitch, dur, onset_in_bar, root, kind in record["events"]:
        if first:
            tick = int(onset_in_bar)
            first = False
        else:
            # Onsets follow from durations; re-anchor on the bar position the data states.
            bar = tick // BAR_TICKS
            cand = bar * BAR_TICKS + int(onset_in_bar)
            tick = cand if cand >= tick - 1 else cand + BAR_TICKS
        events.append(Event(int(pitch), max(1, int(dur)), tick, Chord(int(root) % 12, kind)))
        tick += max(1, int(dur))
    return events
