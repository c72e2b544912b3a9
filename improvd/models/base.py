"""The step contract every model family keeps, so the engine never branches on the family.

``listen(step)`` feeds what the performer did in one grid step (teacher forcing, state kept
warm); ``play(ctx)`` returns the notes the machine starts at ``ctx.tick`` and feeds them back
into its own state. The daemon owns the recurrent state, so it can snapshot it and never
re-runs history.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from improvd.chords import Chord
from improvd.models.card import ModelCard


@dataclass(frozen=True)
class Step:
    """What the performer did at one grid tick."""

    tick: int
    onsets: tuple = ()  # ((pitch, velocity), ...) started at this tick
    releases: tuple = ()  # pitches released at this tick
    held: frozenset = frozenset()  # pitches sounding after this tick (sustain counted)
    chord: Chord | None = None


@dataclass
class PlayContext:
    """What the engine asks of the model for one tick of its own playing."""

    tick: int
    chord: Chord | None
    rng: np.random.Generator
    temperature: float = 1.0
    top_p: float = 1.0
    starting: bool = False  # first tick of an answer: start a note now, not a rest
    held: frozenset = frozenset()  # the performer's sounding pitches (harmonize clamps them)
    max_voices: int = 4
    pitch_range: tuple = (36, 96)
    chord_at: Callable[[int], Chord | None] | None = None  # the chart ahead, for models that plan
    onset: bool = False  # harmonize: the performer just struck a note (react now, off the grid)
    ban: frozenset = frozenset()  # pitches not to draw now (the voice steering out of a loop)


@dataclass(frozen=True)
class NoteOut:
    pitch: int
    velocity: int
    duration: int  # ticks


class StepModel(ABC):
    """A loaded model: one ONNX step graph and the state the daemon keeps for it."""

    family: str = ""
    #: modes this family can play
    modes: tuple = ("call-response", "duet")

    def __init__(self, card: ModelCard, card_path: Path):
        self.card = card
        self.path = card_path

    @abstractmethod
    def reset(self) -> None: ...

    @abstractmethod
    def listen(self, step: Step) -> None: ...

    @abstractmethod
    def play(self, ctx: PlayContext) -> list[NoteOut]: ...

    def configure(self, settings) -> None:
        """Settings a family reads itself (the folk model's key and meter); called at start."""

    def begin_answer(self, tick: int) -> None:
        """An answer starts at ``tick``: close the performer's line up to here."""

    def end_answer(self, tick: int) -> None:
        """The answer stopped (its end, or a barge-in): the performer's line resumes."""

    def take(self, ctx: PlayContext, note: NoteOut) -> bool:
        """The voice plays ``note`` at ``ctx.tick`` in the model's stead (a fragment of the
        call, developed: improvd/motifs.py). A family that can takes it into its state as its
        own line, so its next draw goes on from it, and returns True. The default cannot: it
        returns False, and the voice lets the model play on unheard under the fragment."""
        return False

    def home_scale(self) -> frozenset:
        """Pitch classes of the key the model answers in, where it keeps one (folk: its K:), so
        a motif of the call is moved into it; empty: the call's own key is the answer's."""
        return frozenset()

    def likelihood(self, ctx: PlayContext, notes) -> float | None:
        """How likely the model finds ``notes`` (improvd.motifs.Note, absolute onsets, from
        ``ctx.tick`` on) as its own next line: mean log-probability a note, or None for a family
        that cannot say (the voice then chooses among fragments without it). The state is left
        as it was."""
        return None

    def likelihoods(self, ctx: PlayContext, lines: list) -> list[float | None]:
        """``likelihood`` of each of several candidate lines; a family may score them together."""
        return [self.likelihood(ctx, notes) for notes in lines]

    @abstractmethod
    def snapshot(self): ...

    @abstractmethod
    def restore(self, snap) -> None: ...
