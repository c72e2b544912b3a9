"""The RNN-RBM at run time: the recurrence as one ONNX step per frame, the conditional RBM
sampled here in numpy with some keys CLAMPED on.

Harmonizing is conditional Gibbs sampling: the performer's sounding pitches are held at 1 in
every sweep, so the hidden units see them and the other keys are drawn from
p(v_free | v_clamped, past). The biases of the current frame's RBM come from the RNN state of
the frame before; each finished frame (the performer's pitches and the machine's own, one
88-key vector) goes into the ONNX step, which returns the next frame's biases.
"""

from __future__ import annotations

import math
import zipfile
from pathlib import Path

import numpy as np

from improvd.encoding import pianoroll as enc
from improvd.models.base import NoteOut, PlayContext, Step, StepModel
from improvd.models.card import ModelCard, ModelError, check_encoding, open_session, sha256_of

MAX_CATCH_UP = 64  # frames fed at most when the clock jumps (a long gap is silence anyway)


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def gibbs_clamped(W: np.ndarray, bv: np.ndarray, bh: np.ndarray, k: int, rng: np.random.Generator,
                  clamp: np.ndarray | None = None, allow: np.ndarray | None = None,
                  temperature: float = 1.0, average_last: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """k block-Gibbs sweeps from zeros (as the tutorial generates), clamped units held at 1 and
    units outside ``allow`` held at 0 in every sweep.

    Returns the last sample and the Gibbs marginal of each unit: p(v_i = 1 | h) averaged over
    the last ``average_last`` sweeps (all of them when 0), a smoother ranking than one draw."""
    inv_t = 1.0 / max(float(temperature), 1e-3)
    Wt = W * inv_t if inv_t != 1.0 else W
    bvt, bht = bv * inv_t, bh * inv_t
    nv = W.shape[0]
    v = np.zeros(nv, W.dtype)
    on = clamp if clamp is not None else np.zeros(nv, bool)
    off = ~allow if allow is not None else np.zeros(nv, bool)
    off = off & ~on
    v[on] = 1.0
    start = k - (average_last or k)
    marg = np.zeros(nv, np.float64)
    uh = rng.random((k, W.shape[1]))  # all the uniforms in two calls, not 2k
    uv = rng.random((k, nv))
    for s in range(k):
        ph = _sigmoid(v @ Wt + bht)
        h = (uh[s] < ph).astype(W.dtype)
        pv = _sigmoid(Wt @ h + bvt)
        v = (uv[s] < pv).astype(W.dtype)
        v[on] = 1.0
        v[off] = 0.0
        if s >= start:
            marg += pv
    marg /= max(1, k - start)
    marg[on] = 1.0
    marg[off] = 0.0
    return v, marg


def voice_lead(marg: np.ndarray, sample: np.ndarray, clamp: np.ndarray, allow: np.ndarray,
               previous: list[int], max_voices: int, threshold: float = 0.25) -> list[int]:
    """Added pitches for a harmony: candidates are the unclamped keys in range that the sample
    turned on or whose marginal passes ``threshold``; each scores its marginal discounted by its
    distance (semitones) to the nearest pitch of the previous harmony, so voices move little.
    Two candidates a semitone apart are not both taken (a cluster is rarely what was meant).

    When none is taken, the keys within half of the best marginal (none a semitone from the
    melody) are the candidates: an unsure RBM (a fresh state, or one fed silence) gave no voice
    on about 5 % of onsets, and that note's harmony came only with the next frame, up to a beat
    late (the harmonize reaction's 137-196 ms outliers)."""
    # Plain Python over 88 keys, not numpy: on the reaction's path, each distinct numpy call
    # costs tens of microseconds when its code has gone cold (after a pause in the playing);
    # this took 1.0 ms after 0.2 s idle with numpy, 0.3 ms so (the same choices, checked).
    mg, on, ok = marg.tolist(), clamp.tolist(), allow.tolist()
    clamped = [i for i, c in enumerate(on) if c]
    free = [i for i in range(len(mg)) if ok[i] and not on[i]]
    taken = sample.tolist()
    prev = [p - enc.LOWEST for p in previous]
    chosen = _lead([i for i in free if taken[i] > 0.5 or mg[i] >= threshold], mg, clamped, prev, max_voices)
    if not chosen:
        pool = [i for i in free if not any(abs(i - j) == 1 for j in clamped)]  # _lead never takes these
        if pool:
            best = max(mg[i] for i in pool)
            chosen = _lead([i for i in pool if mg[i] >= 0.5 * best], mg, clamped, prev, max_voices)
    return sorted(i + enc.LOWEST for i in chosen)


def _lead(cand: list[int], marg: list[float], clamped: list[int], prev: list[int], max_voices: int) -> list[int]:
    """Unit indices taken from ``cand`` by voice_lead's score and its no-semitone rule."""
    if prev:
        score = [marg[i] * math.exp(-min(abs(i - j) for j in prev) / 7.0) for i in cand]
    else:
        score = [marg[i] for i in cand]
    chosen: list[int] = []
    for x in sorted(range(len(cand)), key=lambda x: -score[x]):  # stable: ties keep key order
        i = cand[x]
        if len(chosen) >= max_voices:
            break
        if any(abs(i - j) == 1 for j in chosen) or any(abs(i - j) == 1 for j in clamped):
            continue
        chosen.append(i)
    return chosen


class RnnRbmModel(StepModel):
    family = "rnnrbm"
    # Not call-response (issue 15): a chorale model answers a melodic call with free-running
    # four-part frames that took nothing of the call or the chart (relevance about 0 on all six
    # measures). What it is good at, it does while the performer plays: harmonize, with their
    # pitches clamped. Asked for call-response it is refused at start with one line that names
    # the fix (check_mode: "use one of harmonize, duet").
    modes = ("harmonize", "duet")

    def __init__(self, card: ModelCard, card_path: Path, gibbs_steps: int | None = None):
        super().__init__(card, card_path)
        check_encoding(card, enc.ENCODING_NAME, enc.ENCODING_VERSION, card_path,
                       expect={"lowest": enc.LOWEST, "units": enc.UNITS})
        self.sess = open_session(card, card_path)
        npz_name = next((f for f in card.files if f.endswith(".npz")), None)
        if npz_name is None:
            raise ModelError(f"model {card_path} lists no parameter file (.npz) in its card: re-export it with `improvd export`")
        npz = card_path.with_name(npz_name)
        if not npz.exists():
            raise ModelError(f"parameter file {npz} is missing beside its card: copy it or re-export the model")
        if sha256_of(npz) != card.files[npz_name]:
            raise ModelError(f"parameter file {npz} does not match its card (sha256): the file is corrupt or from another run; re-export it")
        try:
            with np.load(npz) as z:
                self.W = np.ascontiguousarray(z["W"], np.float64)
                self.bv0 = np.asarray(z["bv0"], np.float64)
                self.bh0 = np.asarray(z["bh0"], np.float64)
                self.u0 = np.asarray(z["u0"], np.float32)[None, :]
        except (KeyError, ValueError, OSError, zipfile.BadZipFile, EOFError) as e:
            raise ModelError(f"parameter file {npz} is unreadable or lacks W/bv0/bh0/u0 ({str(e)[:80]}): re-export the model") from None
        if self.W.ndim != 2 or self.W.shape[0] != enc.UNITS:
            raise ModelError(f"model {card_path} has W of shape {self.W.shape}, pianoroll88 needs ({enc.UNITS}, hidden): re-export it")
        if self.bv0.shape != (enc.UNITS,) or self.bh0.shape != (self.W.shape[1],) or self.u0.ndim != 2:
            raise ModelError(f"parameter file {npz} has biases of shapes {self.bv0.shape}, {self.bh0.shape} for W {self.W.shape}: re-export the model")
        if not all(np.isfinite(a).all() for a in (self.W, self.bv0, self.bh0, self.u0)):
            raise ModelError(f"parameter file {npz} holds NaN or infinite weights: re-export the model")
        self.frame_ticks = int((card.grid or {}).get("frame_ticks", enc.JSB_FRAME_TICKS))
        self.k = int(gibbs_steps or (card.sampling or {}).get("gibbs_steps", 25))
        self._range_key = None
        self.reset()

    # -- state -----------------------------------------------------------------------------------
    def reset(self) -> None:
        self.u = self.u0.copy()
        self.bv, self.bh = self.bv0.copy(), self.bh0.copy()
        self.frame_index: int | None = None  # the frame whose RBM the biases belong to
        self.performer: set[int] = set()  # the performer's pitches in the current frame
        self.own: set[int] = set()  # what the machine sounded in the current frame
        self.sounding: list[int] = []  # the harmony it wants sounding now
        self.answering = False
        self._ready = None

    def snapshot(self):
        return (self.u.copy(), self.bv.copy(), self.bh.copy(), self.frame_index, set(self.performer),
                set(self.own), list(self.sounding))

    def restore(self, snap) -> None:
        u, bv, bh, fi, perf, own, sounding = snap
        self.u, self.bv, self.bh = u.copy(), bv.copy(), bh.copy()
        self.frame_index, self.performer, self.own, self.sounding = fi, set(perf), set(own), list(sounding)

    def _run(self, pitches) -> tuple:
        """One ONNX step from the current state: (u, bv, bh) of the next frame, not yet taken."""
        u, bv, bh = self.sess.run(None, {"v_t": enc.frame(pitches)[None, :], "u_prev": self.u})
        return u, bv[0].astype(np.float64), bh[0].astype(np.float64)

    def _step(self, pitches) -> None:
        self.u, self.bv, self.bh = self._run(pitches)

    def _advance_to(self, tick: int) -> None:
        """Close every frame before the one holding ``tick``: each goes into the recurrence."""
        f = tick // self.frame_ticks
        if self.frame_index is None:
            self.frame_index = f
            return
        if f <= self.frame_index:
            return
        gap = f - self.frame_index
        closing = self.performer | self.own
        ready, self._ready = self._ready, None
        if ready is not None and ready[0] is self.u and ready[1] == closing:
            self.u, self.bv, self.bh = ready[2]  # stepped on the frame's last tick, from this very state
        else:
            self._step(closing)
        held = self.performer & set(self._held_now)
        for _ in range(min(gap - 1, MAX_CATCH_UP)):  # frames nobody spoke in: what stayed held
            self._step(held | set(self.sounding))
        self.frame_index = f
        self.performer = set(held)
        self.own = set(self.sounding)

    _held_now: frozenset = frozenset()
    _ready: tuple | None = None  # (state it was stepped from, frame content, its step): see listen

    # -- performer ---------------------------------------------------------------------------------
    def listen(self, step: Step) -> None:
        self._advance_to(step.tick)
        self._held_now = step.held
        self.performer |= set(step.held)
        self.performer |= {p for p, _ in step.onsets}
        if (step.tick + 1) % self.frame_ticks == 0 and self.frame_index is not None:
            # The frame's last tick: its ONNX step now, on the clock's time, taken when the
            # frame closes if nothing changed it meanwhile (nothing does before the close: the
            # next play() or listen() closes it first). Otherwise the harmonize reaction to a
            # note-on in this last tick paid the step (1-2.6 ms, up to 9.6 ms on a loaded machine,
            # measured) before its first harmony note could leave.
            closing = self.performer | self.own
            self._ready = (self.u, closing, self._run(closing))

    def begin_answer(self, tick: int) -> None:
        self.answering = True

    def end_answer(self, tick: int) -> None:
        self.answering = False
        self.sounding = []

    # -- machine -------------------------------------------------------------------------------------
    def _allow(self, pitch_range) -> np.ndarray:
        key = tuple(pitch_range)
        if key != self._range_key:
            lo, hi = key
            keys = np.arange(enc.UNITS) + enc.LOWEST
            self._allow_mask = (keys >= lo) & (keys <= hi)
            self._range_key = key
        return self._allow_mask

    def harmonize(self, held, rng: np.random.Generator, max_voices: int = 4, pitch_range=(36, 96),
                  temperature: float = 1.0) -> list[int]:
        """Added pitches around ``held`` for the current frame's RBM (clamped Gibbs + voice-leading)."""
        clamp = np.zeros(enc.UNITS, bool)
        for p in held:
            if enc.LOWEST <= p <= enc.HIGHEST:
                clamp[p - enc.LOWEST] = True
        allow = self._allow(pitch_range)
        v, marg = gibbs_clamped(self.W, self.bv, self.bh, self.k, rng, clamp, allow, temperature, self.k // 2)
        return voice_lead(marg, v, clamp, allow, self.sounding, max_voices)

    def free_frame(self, rng: np.random.Generator, max_voices: int, pitch_range, temperature: float = 1.0) -> list[int]:
        allow = self._allow(pitch_range)
        v, marg = gibbs_clamped(self.W, self.bv, self.bh, self.k, rng, None, allow, temperature, self.k // 2)
        on = np.flatnonzero(v > 0.5)
        on = on[np.argsort(-marg[on], kind="stable")][:max_voices]
        return sorted(int(i) + enc.LOWEST for i in on)

    def play(self, ctx: PlayContext) -> list[NoteOut]:
        self._advance_to(ctx.tick)
        on_grid = ctx.tick % self.frame_ticks == 0
        onset = ctx.onset
        if onset:
            # harmonize: the notes wanted SOUNDING now; the engine keeps those returned again
            if not ctx.held:
                self.sounding = []
                return []
            self.performer |= set(ctx.held)
            if on_grid or onset or not self.sounding:
                self.sounding = self.harmonize(ctx.held, ctx.rng, ctx.max_voices, ctx.pitch_range, ctx.temperature)
                self.own |= set(self.sounding)
            return [NoteOut(p, 72, self.frame_ticks) for p in self.sounding]
        # duet: a new frame at each grid point, each note lasting one frame
        if not on_grid:
            return []
        self.sounding = self.free_frame(ctx.rng, ctx.max_voices, ctx.pitch_range, ctx.temperature)
        self.own |= set(self.sounding)
        return [NoteOut(p, 80, self.frame_ticks) for p in self.sounding]
