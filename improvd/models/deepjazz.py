"""The deepjazz / Coursera values LSTM played live against the daemon's chords.

The model speaks the grammar of improvd.encoding.grammar: each step gives a value (kind of
pitch, length, rough interval), and the seed's post-processing turns it into a note at the
tick it is due: A and X are played as chord tones, the length is rounded to a sixteenth up or
down at random, the value is unparsed against the chord sounding then and the previous pitch,
and the second note of a pair that repeats the first is left out. The performer's notes go in
as values too (typed against their chord, intervals mapped to the nearest value the model
knows), so the state stays warm. As in JazzModel, the next value is drawn as soon as the
current one is chosen, so the wire never waits for onnxruntime.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from improvd import ImprovdError
from improvd.chords import Chord
from improvd.encoding import BAR_TICKS, TICKS_PER_BEAT, fold_to_range
from improvd.encoding import grammar as g
from improvd.encoding.events import REST, Event, EventTracker
from improvd.models.base import NoteOut, PlayContext, Step, StepModel
from improvd.models.card import ModelCard, ModelError, check_encoding, open_session
from improvd.sampling import sample

DEFAULT_CHORD = Chord(0, "maj")  # what to play against before any chord is known
VELOCITY = 90
DURATION_TOLERANCE = 0.09  # quarter lengths: a performer's note matches a value within a tick
INTERVAL_TOLERANCE = 2  # semitones summed over both bounds
MAX_ZERO_LENGTH = 8  # values rounded to nothing in a row before giving up and playing a sixteenth


class DeepJazzModel(StepModel):
    family = "deepjazz"

    def __init__(self, card: ModelCard, card_path: Path):
        super().__init__(card, card_path)
        check_encoding(card, g.ENCODING_NAME, g.ENCODING_VERSION, card_path)
        raw = card.encoding.get("values")
        if not isinstance(raw, list) or not raw or not all(isinstance(v, str) for v in raw):
            raise ModelError(f"model card {card_path} has no list of grammar values in encoding.values: re-export the model")
        try:
            self.values = [g.parse_value(v) for v in raw]
        except ImprovdError as e:
            raise ModelError(f"model card {card_path}: {e}; re-export the model") from None
        self.index = {v: i for i, v in enumerate(raw)}
        self.sess = open_session(card, card_path)
        shapes = {s.name: s.shape for s in card.inputs}
        if "x" not in shapes or "h" not in shapes or "c" not in shapes:
            raise ModelError(f"model {card_path} does not take x, h, c: it is not a deepjazz step graph; re-export it")
        if shapes["x"][-1] != len(raw):
            raise ModelError(f"model {card_path} takes {shapes['x'][-1]} values but its card lists {len(raw)}: card and graph are from different exports")
        self.state_shape = tuple(int(d) for d in shapes["h"])
        self._x = np.zeros((1, len(raw)), np.float32)
        # An answer opens with a note and no interval, as deepjazz forces a measure's first value.
        self.start_mask = np.array([v.kind == "R" or v.has_interval for v in self.values])
        self._by_kind: dict = {}
        for i, v in enumerate(self.values):
            self._by_kind.setdefault((v.kind, v.has_interval), []).append((i, v))
        self.reset()

    # -- state ---------------------------------------------------------------------------
    def reset(self) -> None:
        self.h = np.zeros(self.state_shape, np.float32)
        self.c = np.zeros(self.state_shape, np.float32)
        self.prev: int | None = None  # index of the last value fed; None = the zero input
        self.prev_pitch: int | None = None  # the last pitch of the line (performer's or own)
        self.tracker = EventTracker()
        self.answering = False
        self.busy_until = 0
        self.pending = None  # (tick due, index, h, c): the next value, drawn in advance
        self.position = 0  # elements since the answer began: the seed prunes in pairs
        self.last_was = None  # pitch of the previous element (None: a rest or nothing)
        self.listen_prev = None  # (pitch, bar) of the performer's last note
        self.chord = DEFAULT_CHORD
        self.fed = 0
        self.skipped = 0

    def snapshot(self):
        return (self.h.copy(), self.c.copy(), self.prev, self.prev_pitch, self.listen_prev, self.chord)

    def restore(self, snap) -> None:
        self.h, self.c = snap[0].copy(), snap[1].copy()
        self.prev, self.prev_pitch, self.listen_prev, self.chord = snap[2], snap[3], snap[4], snap[5]
        self.pending = None

    # -- one LSTM step ---------------------------------------------------------------------------
    def run(self):
        """The step that consumes the last value: logits of the next one and the state after."""
        x = self._x
        x.fill(0.0)
        if self.prev is not None:
            x[0, self.prev] = 1.0
        logits, h, c = self.sess.run(None, {"x": x, "h": self.h, "c": self.c})
        return logits[0], h, c

    def commit(self, index: int, h, c) -> None:
        self.h, self.c, self.prev = h, c, int(index)

    def feed(self, index: int) -> None:
        """Teacher forcing: the step whose target is ``index`` runs, then it is the past."""
        _, h, c = self.run()
        self.commit(index, h, c)

    # -- performer -------------------------------------------------------------------------
    def value_index(self, ev: Event) -> int | None:
        """The vocabulary index of a performer's event, or None when the model has no such value."""
        dur = ev.duration / TICKS_PER_BEAT
        bounds = None
        if ev.pitch == REST:
            kind = "R"
        else:
            if ev.chord is not None:
                self.chord = ev.chord
            kind = g.tone_type(ev.pitch, g.Harmony.from_chord(self.chord))
            bar = ev.onset // BAR_TICKS
            if self.listen_prev is not None and self.listen_prev[1] == bar:
                d = ev.pitch - self.listen_prev[0]
                bounds = (d + 3, d - 3)  # +/- a minor third, as the grammar writes it
            self.listen_prev = (ev.pitch, bar)
        best, best_cost = None, None
        for i, v in self._by_kind.get((kind, bounds is not None), ()):
            dd = abs(v.duration - dur)
            if dd > DURATION_TOLERANCE:
                continue
            di = 0 if bounds is None else abs(v.upper - bounds[0]) + abs(v.lower - bounds[1])
            if di > INTERVAL_TOLERANCE:
                continue
            cost = (di, dd)
            if best_cost is None or cost < best_cost:
                best, best_cost = i, cost
        return best

    def listen(self, step: Step) -> None:
        if self.answering:
            return
        for ev in self.tracker.step(step.tick, step.onsets, step.releases, step.chord):
            idx = self.value_index(ev)
            if ev.pitch != REST:
                self.prev_pitch = ev.pitch
            if idx is None:
                self.skipped += 1
                continue
            self.feed(idx)
            self.fed += 1
            self.pending = None

    def begin_answer(self, tick: int) -> None:
        for ev in self.tracker.flush_rest(tick):
            idx = self.value_index(ev)
            if ev.pitch != REST:
                self.prev_pitch = ev.pitch
            if idx is not None:
                self.feed(idx)
                self.fed += 1
        self.answering = True
        self.busy_until = tick
        self.pending = None
        self.position = 0
        self.last_was = None

    def end_answer(self, tick: int) -> None:
        self.answering = False
        self.pending = None
        self.listen_prev = None
        self.tracker.reset()
        self.tracker.start_rest(tick, self.chord)

    # -- machine -----------------------------------------------------------------------------
    def _draw(self, ctx: PlayContext, starting: bool):
        logits, h, c = self.run()
        idx = sample(logits, ctx.rng, ctx.temperature, ctx.top_p, self.start_mask if starting else None)
        return idx, h, c

    def _harmony(self, ctx: PlayContext, tick: int) -> g.Harmony:
        chord = ctx.chord if tick == ctx.tick else None
        if chord is None and ctx.chord_at is not None:
            chord = ctx.chord_at(tick)
        if chord is not None:
            self.chord = chord
        return g.Harmony.from_chord(self.chord)

    def play(self, ctx: PlayContext) -> list[NoteOut]:
        if ctx.tick < self.busy_until:
            return []
        for _ in range(MAX_ZERO_LENGTH):
            if self.pending is not None and self.pending[0] == ctx.tick and not ctx.starting:
                _, idx, h, c = self.pending
            else:
                idx, h, c = self._draw(ctx, ctx.starting)
            self.pending = None
            self.commit(idx, h, c)
            value = g.retype(self.values[idx])
            beats = g.round_duration(value.duration, ctx.rng.random() >= 0.5)
            self.position += 1
            if beats > 0:
                break
            # Rounded to nothing: in the seed it lands on its predecessor's offset and the
            # clean-up removes it, so it takes no time and the next value is drawn now.
        else:
            beats = g.GRID
        ticks = max(3, int(round(beats * TICKS_PER_BEAT)))
        self.busy_until = ctx.tick + ticks
        pitch = None
        if value.kind != "R":
            pitch = g.unparse_value(value, self._harmony(ctx, ctx.tick), self.prev_pitch, ctx.rng)
            pitch = fold_to_range(pitch, *ctx.pitch_range)
            self.prev_pitch = pitch
        # The seed's pruning: of elements (0,1), (2,3), ... the second note is dropped when it
        # repeats the first's pitch; its time stays silent.
        repeat = self.position % 2 == 0 and pitch is not None and pitch == self.last_was
        self.last_was = pitch
        # The next value now, while this one sounds.
        nidx, nh, nc = self._draw(ctx, False)
        self.pending = (self.busy_until, nidx, nh, nc)
        if pitch is None or repeat:
            return []
        return [NoteOut(int(pitch), VELOCITY, ticks)]
