"""The chord-conditioned jazz LSTM at run time: one ONNX step per event, state owned here.

Events are (pitch or rest, duration): the model is asked only when its previous note ends,
and the step for the next event is computed as soon as the current one is chosen, so the
wire never waits for the model.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from improvd.encoding import jazz as enc
from improvd.encoding.events import REST, Event, EventTracker
from improvd.models.base import NoteOut, PlayContext, Step, StepModel
from improvd.models.card import ModelCard, check_encoding, open_session
from improvd.sampling import sample


def _log_softmax(logits: np.ndarray) -> np.ndarray:
    z = np.asarray(logits, np.float64)
    z = z - z.max()
    return z - np.log(np.exp(z).sum())


class JazzModel(StepModel):
    family = "jazz"

    def __init__(self, card: ModelCard, card_path: Path):
        super().__init__(card, card_path)
        check_encoding(card, enc.ENCODING_NAME, enc.ENCODING_VERSION, card_path, expect={
            "pitch_range": [enc.PITCH_LO, enc.PITCH_HI], "durations": list(enc.DURATIONS),
            "n_pitch": enc.N_PITCH, "n_dur": enc.N_DUR})
        self.sess = open_session(card, card_path)
        shape = next(s.shape for s in card.inputs if s.name == "h")
        self.state_shape = (int(shape[0]), 1, int(shape[2]))
        # candidate lines are scored side by side when the graph takes a batch (exported since stop 16)
        self._batched = not isinstance(self.sess.get_inputs()[0].shape[0], int)
        self.reset()
        self._run(0, None)  # warm-up: onnxruntime allocates on the first run, not on stage

    # -- state ---------------------------------------------------------------------------
    def reset(self) -> None:
        self.h = np.zeros(self.state_shape, np.float32)
        self.c = np.zeros(self.state_shape, np.float32)
        self.prev: Event | None = None
        self.tracker = EventTracker()
        self.answering = False
        self.busy_until = 0
        self.current: Event | None = None
        self.pending = None  # (event, h, c) precomputed for the next onset
        self.before_pending = None  # (h, c) to go back to if the pending event is dropped

    def snapshot(self):
        return (self.h.copy(), self.c.copy(), self.prev)

    def restore(self, snap) -> None:
        self.h, self.c, self.prev = snap[0].copy(), snap[1].copy(), snap[2]
        self.pending = None
        self.tracker.reset()

    def _run(self, onset: int, chord):
        pp, pd, pos, cond = enc.step_input(self.prev, onset, chord)
        out = self.sess.run(None, {
            "prev_pitch": np.array([pp], np.int64), "prev_dur": np.array([pd], np.int64),
            "pos": np.array([pos], np.int64), "cond": cond[None, :],
            "h": self.h, "c": self.c})
        return out[0][0], out[1][0], out[2], out[3]

    def _feed(self, event: Event) -> None:
        """Teacher forcing: the step whose target is ``event`` runs, then ``event`` is the past."""
        _, _, self.h, self.c = self._run(event.onset, event.chord)
        self.prev = event

    # -- performer -------------------------------------------------------------------------
    def listen(self, step: Step) -> None:
        if self.answering:
            return
        for ev in self.tracker.step(step.tick, step.onsets, step.releases, step.chord):
            self._feed(ev)

    def begin_answer(self, tick: int) -> None:
        for ev in self.tracker.flush_rest(tick):
            self._feed(ev)
        self.answering = True
        self.busy_until = tick
        self.pending = None
        self.current = None

    def end_answer(self, tick: int) -> None:
        if self.pending is not None:
            self.h, self.c = self.before_pending
            self.pending = None
        if self.current is not None and tick < self.current.onset + self.current.duration:
            # Cut short (barge-in or the answer's end): the model remembers what really sounded.
            self.prev = Event(self.current.pitch, max(1, tick - self.current.onset), self.current.onset, self.current.chord)
        self.answering = False
        self.current = None
        self.tracker.reset()
        self.tracker.start_rest(tick, self.prev.chord if self.prev else None)

    # -- machine -----------------------------------------------------------------------------
    def _range_mask(self, pitch_range) -> np.ndarray:
        key = tuple(pitch_range)
        if getattr(self, "_mask_key", None) != key:
            lo, hi = key
            pitches = np.array([enc.token_pitch(t) for t in range(enc.N_PITCH)])
            self._mask = (pitches < lo) | (pitches > hi)
            self._mask[0] = False
            self._mask_key = key
        return self._mask

    def _token_pitches(self) -> np.ndarray:
        if getattr(self, "_pitches", None) is None:
            self._pitches = np.array([enc.token_pitch(t) for t in range(enc.N_PITCH)])
        return self._pitches

    def _choose(self, onset: int, chord, ctx: PlayContext, starting: bool):
        before = (self.h, self.c)
        pl, dl, h, c = self._run(onset, chord)
        mask = self._range_mask(ctx.pitch_range)
        if starting or ctx.ban:
            mask = mask.copy()
        if starting:
            mask[0] = True  # an answer opens with a note, so it is heard when it is due
        if ctx.ban:
            banned = mask | np.isin(self._token_pitches(), list(ctx.ban))
            if not banned.all():
                mask = banned
        pt = sample(pl, ctx.rng, ctx.temperature, ctx.top_p, mask)
        # Rhythm is sampled on its own settings: narrowing it (top-p) crowds out rests and
        # long notes, and the answer turns into running 8ths.
        s = self.card.sampling
        base = float(s.get("temperature", 1.0)) or 1.0
        dt = sample(dl, ctx.rng, ctx.temperature / base * float(s.get("duration_temperature", base)),
                    float(s.get("duration_top_p", ctx.top_p)))
        ev = Event(enc.token_pitch(pt), enc.token_duration(dt), onset, chord)
        return ev, h, c, before

    # -- a fragment of the call, played by the voice in the model's stead ------------------------------
    def _line_up_to(self, tick: int, chord_at):
        """(h, c, prev, lead-in) of the model's line as it stands at ``tick``: the event
        sounding then cut short there, or a rest from the end of the last one up to it (not yet
        fed: ``lead-in``). The precomputed next event is left out, it never sounded."""
        h, c = self.before_pending if self.pending is not None else (self.h, self.c)
        prev, lead_in = self.prev, None
        current = self.current
        if current is not None and current.onset < tick < current.onset + current.duration:
            prev = Event(current.pitch, tick - current.onset, current.onset, current.chord)
        elif tick > self.busy_until and prev is not None:
            lead_in = Event(REST, min(tick - self.busy_until, enc.DURATIONS[-1]), self.busy_until, chord_at(self.busy_until))
        return h, c, prev, lead_in

    def take(self, ctx: PlayContext, note: NoteOut) -> bool:
        if not self.answering:
            return False
        chord_at = ctx.chord_at or (lambda t: ctx.chord)
        self.h, self.c, self.prev, lead_in = self._line_up_to(ctx.tick, chord_at)
        self.pending = None
        if lead_in is not None:
            self._feed(lead_in)
        ev = Event(note.pitch, max(1, note.duration), ctx.tick, ctx.chord)
        self._feed(ev)  # the step whose target is the fragment's note: the model has "played" it
        self.current = ev
        self.busy_until = ctx.tick + ev.duration
        return True

    def likelihood(self, ctx: PlayContext, notes) -> float | None:
        return self.likelihoods(ctx, [notes])[0]

    def likelihoods(self, ctx: PlayContext, lines: list) -> list[float | None]:
        """All candidate lines at once: one batched step for all of them per event (6 lines of
        5 events were 32 single steps, 13 ms on the tick an answer starts, where its first note
        is planned; batched, about 7 steps). A graph exported with a fixed batch of 1 (before
        stop 16) steps each line alone; both give the same numbers."""
        chord_at = ctx.chord_at or (lambda t: ctx.chord)
        todo = []  # per line: (h, c, prev, [(event, scored)])
        for notes in lines:
            if not notes:
                todo.append(None)
                continue
            h, c, prev, lead_in = self._line_up_to(notes[0].onset, chord_at)
            events = [] if lead_in is None else [(lead_in, False)]
            for n, after in zip(notes, list(notes[1:]) + [None]):
                gap = after.onset - n.onset if after is not None else n.duration
                length = max(1, min(n.duration, gap))
                events.append((Event(n.pitch, length, n.onset, chord_at(n.onset)), True))
                if gap > length:
                    events.append((Event(REST, gap - length, n.onset + length, chord_at(n.onset + length)), True))
            todo.append((h, c, prev, events))
        if not self._batched:
            return [None if t is None else self._score([t])[0] for t in todo]
        live = [i for i, t in enumerate(todo) if t is not None]
        out: list[float | None] = [None] * len(lines)
        for i, v in zip(live, self._score([todo[i] for i in live]) if live else []):
            out[i] = v
        return out

    def _score(self, lines: list) -> list[float]:
        """Mean log-probability a scored event of each line, its steps run side by side."""
        h = np.concatenate([t[0] for t in lines], axis=1)
        c = np.concatenate([t[1] for t in lines], axis=1)
        prev = [t[2] for t in lines]
        total, counted = [0.0] * len(lines), [0] * len(lines)
        for k in range(max(len(t[3]) for t in lines)):
            rows = [i for i, t in enumerate(lines) if k < len(t[3])]
            inputs = [enc.step_input(prev[i], lines[i][3][k][0].onset, lines[i][3][k][0].chord) for i in rows]
            pl, dl, h_out, c_out = self.sess.run(None, {
                "prev_pitch": np.array([x[0] for x in inputs], np.int64), "prev_dur": np.array([x[1] for x in inputs], np.int64),
                "pos": np.array([x[2] for x in inputs], np.int64), "cond": np.stack([x[3] for x in inputs]),
                "h": h[:, rows], "c": c[:, rows]})
            h[:, rows], c[:, rows] = h_out, c_out
            for j, i in enumerate(rows):
                ev, scored = lines[i][3][k]
                if scored:
                    total[i] += _log_softmax(pl[j])[enc.pitch_token(ev.pitch)] + _log_softmax(dl[j])[enc.duration_token(ev.duration)]
                    counted[i] += 1
                prev[i] = ev
        return [float(t / max(1, n)) for t, n in zip(total, counted)]

    def play(self, ctx: PlayContext) -> list[NoteOut]:
        if ctx.tick < self.busy_until:
            return []
        chord_at = ctx.chord_at or (lambda t: ctx.chord)
        if self.pending is not None and self.pending[0].onset == ctx.tick and not ctx.starting:
            ev, self.h, self.c = self.pending
        else:
            if self.pending is not None:
                self.h, self.c = self.before_pending
            ev, self.h, self.c, _ = self._choose(ctx.tick, ctx.chord, ctx, ctx.starting)
        self.pending = None
        self.prev = ev
        self.current = ev
        self.busy_until = ctx.tick + ev.duration
        # Precompute the next event now, while this one sounds.
        nxt = self.busy_until
        e2, h2, c2, before = self._choose(nxt, chord_at(nxt), ctx, False)
        self.pending, self.before_pending = (e2, h2, c2), before
        if ev.pitch == REST:
            return []
        return [NoteOut(ev.pitch, 90, ev.duration)]
