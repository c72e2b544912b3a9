"""The one place that builds a playing improvd from Settings: models, chord chart, performer,
voice, schedulers and engine. Live, replay, the benchmark and the tests all call ``build``, so
the way a setting reaches its use is written once.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from improvd.clock import Clock
from improvd.config import Settings, load_chart
from improvd.engine import Engine
from improvd.models import load_model
from improvd.models.base import StepModel
from improvd.performer import Performer
from improvd.scheduler import Scheduler
from improvd.voice import Stats, Voice

Send = Callable  # send(message, due seconds or None, now seconds)


@dataclass
class Session:
    engine: Engine
    clock: Clock
    sched: Scheduler
    click: Scheduler | None

    @property
    def model(self) -> StepModel:
        return self.engine.model


def click_scheduler(settings: Settings, send: Send, heal: bool = False) -> Scheduler | None:
    """The metronome's own scheduler on its own channel, when there is a metronome."""
    if settings.metronome == "off":
        return None
    return Scheduler(send, settings.metronome_channel - 1, max_note=1.0, heal=heal)


def build(settings: Settings, send: Send, clock: Clock | None = None, model: StepModel | None = None,
          rng: np.random.Generator | None = None, heal: bool = False, max_note: float | None = None) -> Session:
    """``send`` takes every message improvd plays; ``clock`` defaults to one at the settings'
    tempo from time 0; ``model`` a loaded model to reuse; ``heal`` repeats note-offs and clears
    silent channels (live ports, which lose messages); ``max_note`` seconds overrides the
    settings' guard (tests)."""
    model = model or load_model(settings.model)
    clock = clock or Clock(settings.tempo, settings.swing)
    guard = max_note if max_note is not None else settings.max_note_beats * clock.beat_seconds
    sched = Scheduler(send, settings.channel_out - 1, max_note=guard, heal=heal)
    click = click_scheduler(settings, send, heal)
    more = {m.card.name: m for m in (load_model(name) for name in settings.models)}
    models = {model.card.name: model, **more}
    for m in models.values():
        m.configure(settings)
    performer = Performer(settings, clock)
    rng = rng if rng is not None else np.random.default_rng(settings.seed)
    voice = Voice(settings, sched, clock, rng, model.card, Stats(), performer.velocities)
    engine = Engine(models, model.card.name, settings, performer, voice, clock, load_chart(settings), click)
    return Session(engine, clock, sched, click)
