"""The folk family at run time: a character-level LSTM over ABC text, one ONNX step per char.

The performer's completed notes are written as ABC (improvd.encoding.abc.AbcWriter) and fed
through the LSTM (teacher forcing; the state stays warm). An answer is sampled as ABC text and
parsed as it streams (improvd.abcstream) into notes on the grid. A note costs several chars,
so whole bars are sampled ahead and kept in a small look-ahead buffer; the work is spread over
ticks with a fixed char budget per tick, so the clock is never held up.

Constraints (the same ones `evaluate` reports as "constrained"): header lines in the order X T
(Z) M L K with parseable M:/L:/K: values; the body written in the corpus's own alphabet
(note letters, z and signs, anything inside chord quotes; '!' only after a bar line, as the
lab's line ends; no field or new tune), no blank line before 8 notes (never in an answer); and
every bar checked by the streaming parser the moment its bar line is complete: a bar that
overfills M:, or falls short anywhere but at a line start (a pickup) or a line end (the bar
that completes it), is sampled again from its start (at most ``BAR_RETRIES`` times). Offline,
a whole tune whose bars could not be fitted is sampled again (``sample_tune``); live, the bar
is played as it is.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np

from improvd.abcstream import AbcMark, AbcNote, AbcStream
from improvd.encoding import abc as enc
from improvd.encoding import fold_to_range
from improvd.encoding.events import REST, EventTracker
from improvd.models.base import NoteOut, PlayContext, Step, StepModel
from improvd.models.card import ModelCard, ModelError, check_encoding, open_session
from improvd.sampling import sample

BAR_RETRIES = 10
HEADER_RETRIES = 5
FEED_BUDGET = 24  # performer chars fed per tick
SAMPLE_BUDGET = 6  # answer chars sampled per tick (a bar is ~10-20 chars, 48 ticks)
LOOKAHEAD_TICKS = 48  # keep this much of the answer sampled ahead

_NL = enc.CHAR_INDEX["\n"]
_LETTERS = np.array([ch.isalpha() for ch in enc.VOCAB])
# Outside quotes the body is written in the lab corpus's own alphabet: note letters, z, and
# the signs of lengths, bars, tuplets, ties, accidentals and chords. Other letters are
# decorations or fields there, and what music21 reads from them is not what the stream reads.
_BODY_CHARS = set("ABCDEFGabcdefgz0123456789 /<>()[]|:^_=,'-!\"\n")
_BODY_BAN = np.array([ch not in _BODY_CHARS for ch in enc.VOCAB])
_BANG = enc.CHAR_INDEX["!"]
_HEADER_ORDER = {"X": "T", "T": "TZM", "Z": "M", "M": "L", "L": "K"}


class CharLM:
    """The ONNX step graph and its (h, c); ``logits`` always predicts the next char."""

    def __init__(self, sess, state_shape, vocab: str):
        self.sess = sess
        self.state_shape = state_shape
        self.vocab = vocab
        self.reset()

    def reset(self) -> None:
        self.h = np.zeros(self.state_shape, np.float32)
        self.c = np.zeros(self.state_shape, np.float32)
        self.logits = None
        self.last = None

    def step(self, idx: int) -> np.ndarray:
        out = self.sess.run(None, {"char": np.array([idx], np.int64), "h": self.h, "c": self.c})
        self.logits, self.h, self.c = out[0][0], out[1], out[2]
        self.last = idx
        return self.logits

    def feed(self, text: str) -> None:
        for ch in text:
            self.step(enc.CHAR_INDEX[ch])

    def snapshot(self):
        return (self.h, self.c, self.logits, self.last)  # arrays are replaced, never mutated

    def restore(self, snap) -> None:
        self.h, self.c, self.logits, self.last = snap

    def sample_next(self, prev: int, rng, temperature: float = 1.0, top_p: float = 1.0, mask=None) -> int:
        """Feed ``prev`` and draw the next char: one full step, as the benchmark times it."""
        logits = self.step(prev)
        return sample(logits, rng, temperature, top_p, mask)

    def draw(self, rng, temperature: float, top_p: float = 1.0, mask=None) -> int:
        return sample(self.logits, rng, temperature, top_p, mask)

    # -- whole tunes ------------------------------------------------------------------------------
    def sample_tune(self, rng, temperature: float = 1.0, primer: str = "X:", max_chars: int = 1500,
                    constrained: bool = False, top_p: float = 1.0, attempts: int = 4) -> str:
        """A tune from ``primer`` (the lab starts from 'X'), up to the blank line that ends it.

        Constrained, a tune whose bars the sampler could not fit to its M: (a bar still wrong
        after BAR_RETRIES tries: the model writes a jig under M:2/4) is dropped and sampled
        again from the primer, ``attempts`` tunes at most; the last one is returned."""
        for _ in range(max(1, attempts) if constrained else 1):
            text, gave_up = self._sample_once(rng, temperature, primer, max_chars, constrained, top_p)
            if not gave_up:
                break
        return text

    def _sample_once(self, rng, temperature, primer, max_chars, constrained, top_p):
        self.reset()
        primer = enc.to_ascii(primer) or "X:"
        self.feed(primer)
        if not constrained:
            text = primer
            while len(text) < max_chars:
                ch = self.vocab[self.draw(rng, temperature, top_p)]
                if ch == "\n" and text.endswith("\n"):
                    break
                text += ch
                self.step(enc.CHAR_INDEX[ch])
            return text.rstrip("\n"), 0
        if "K" in enc.header(primer) and "\nK:" in "\n" + primer:
            text = primer  # a primer with a whole header: its body goes on
            parser = AbcStream()
            parser.feed_text(primer)
        else:
            text = _sample_header(self, rng, temperature, top_p, primer)
            head = enc.header(text)
            if "K" not in head:
                return text, 0
            parser = AbcStream(key=head["K"], meter=head.get("M"), unit=head.get("L"))
        bars = BarSampler(self, parser, allow_end=True)
        while len(text) < max_chars:
            seg = bars.next_bar(rng, temperature, top_p, budget=max_chars - len(text) + 8)
            if seg is None:
                break
            text += seg.text
            if seg.ended:
                break
        return text.rstrip("\n"), bars.gave_up


def _sample_header(lm: CharLM, rng, temperature, top_p, primer: str) -> str:
    """Header lines sampled one by one, each field letter forced into the lab's order and each
    M:, L:, K: value checked; a bad line is sampled again, then replaced by a default."""
    text = primer
    if "\n" not in text:
        # finish the primer's line; an X: line needs a number
        snap = lm.snapshot()
        for _try in range(HEADER_RETRIES):
            rest = _sample_line(lm, rng, temperature, top_p)
            if not text.startswith("X:") or (text + rest)[2:].strip().isdigit():
                break
            lm.restore(snap)
        else:
            lm.restore(snap)
            rest = "1\n"
            lm.feed(rest)
        text += rest
    defaults = {"T": "T:Untitled\n", "M": "M:4/4\n", "L": "L:1/8\n", "K": "K:D Major\n", "Z": "Z: id:improvd\n"}
    while True:
        lines = [ln for ln in text.split("\n") if ln]
        last = lines[-1][:1] if lines else "X"
        if last == "K":
            return text
        allowed = _HEADER_ORDER.get(last, "K")
        snap = lm.snapshot()
        line = None
        for _try in range(HEADER_RETRIES):
            mask = np.ones(len(enc.VOCAB), bool)
            for a in allowed:
                mask[enc.CHAR_INDEX[a]] = False
            letter = enc.VOCAB[lm.draw(rng, temperature, top_p, mask)]
            lm.step(enc.CHAR_INDEX[letter])
            lm.step(enc.CHAR_INDEX[":"])
            cand = letter + ":" + _sample_line(lm, rng, temperature, top_p)
            if _header_value_ok(cand):
                line = cand
                break
            lm.restore(snap)
        if line is None:
            line = defaults[allowed[-1]]
            lm.restore(snap)
            lm.feed(line)
        text += line


def _sample_line(lm: CharLM, rng, temperature, top_p, limit: int = 120) -> str:
    out = ""
    while len(out) < limit:
        ch = enc.VOCAB[lm.draw(rng, temperature, top_p)]
        lm.step(enc.CHAR_INDEX[ch])
        out += ch
        if ch == "\n":
            return out
    lm.step(_NL)
    return out + "\n"


def _header_value_ok(line: str) -> bool:
    name, value = line[0], line[2:].strip()
    try:
        if name == "M":
            return enc.parse_meter(value) is not None
        if name == "L":
            enc.parse_unit(value)
        if name == "K":
            enc.parse_key(value)
    except Exception:
        return False
    return bool(value) or name not in "TMLK"


@dataclass
class Segment:
    text: str
    notes: list  # AbcNote, onsets on the parser's clock
    ended: bool = False


class BarSampler:
    """Samples ABC body text bar by bar through a streaming parser; a bar the parser finds the
    wrong length is rolled back (LSTM state, parser, text) and sampled again."""

    def __init__(self, lm: CharLM, parser: AbcStream, allow_end: bool, first_bar: Fraction | None = None,
                 min_notes_to_end: int = 8):
        self.lm, self.parser = lm, parser
        self.allow_end = allow_end
        self.first_bar = first_bar  # length the first bar must have (the answer starts mid-bar)
        self.min_notes = min_notes_to_end
        self.bars_done = 0
        self.gave_up = 0
        self.carry = ""  # the char that completed the last bar: it opens the next one
        self.carry_out: list = []
        self._job = None
        # (start on the parser's clock, LM state before it) of each accepted bar: an answer cut
        # short rolls the LM back to the first bar that never sounded
        self.starts: list = []

    def _start(self):
        return {"snap": self.lm.snapshot(), "parser": self.parser.clone(), "text": self.carry,
                "out": list(self.carry_out), "tries": 0, "steps": 0}

    def next_bar(self, rng, temperature: float, top_p: float = 1.0, budget: int = 10_000) -> Segment | None:
        """Sample until one bar is accepted (or the budget of chars runs out: None, resumable)."""
        if self._job is None:
            self._job = self._start()
        job = self._job
        spent = 0
        while spent < budget:
            mask = self._mask(job["text"])
            idx = self.lm.draw(rng, temperature, top_p, mask)
            ch = enc.VOCAB[idx]
            self.lm.step(idx)
            spent += 1
            job["steps"] += 1
            job["text"] += ch
            got = self.parser.feed(ch)
            job["out"] += got
            done = [m for m in got if isinstance(m, AbcMark) and m.kind in ("bar", "end", "tune")]
            if not done and job["steps"] < 200:
                continue
            mark = done[0] if done else AbcMark("bar", "")
            if mark.kind != "bar" or self._bar_ok(job, mark) or not done:
                return self._accept(job, ch, mark)
            if job["tries"] >= BAR_RETRIES:
                self.gave_up += 1  # the model keeps writing another meter than the header's
                return self._accept(job, ch, mark)
            self._retry(job)
        return None

    def _bar_ok(self, job, mark: AbcMark) -> bool:
        p = self.parser
        full = p.bar_ticks
        if full is None:
            return True
        body = job["text"][:-1]
        n0 = len(job["parser"].bar_lengths)
        length = p.bar_lengths[-1] if len(p.bar_lengths) > n0 else Fraction(0)
        if length == 0:
            return True  # a bar line right after another (|[1, ::), nothing in between
        target = self.first_bar if (self.bars_done == 0 and self.first_bar is not None) else full
        if length > target:
            return False
        if length == target:
            return True
        pickup = self.bars_done == 0 or "\n" in body  # first bar of the tune or of a line
        line_end = job["text"][-1:] in ("!", "\n")  # the bar that closes a line closes a section
        return pickup or line_end

    def _accept(self, job, ch: str, mark: AbcMark) -> Segment:
        text, out = job["text"], job["out"]
        # the char that completed the bar belongs to the next bar
        keep = text[:-1] if mark.kind == "bar" else text
        notes = [n for n in out if isinstance(n, AbcNote)]
        self.carry = ch if mark.kind == "bar" else ""
        self.carry_out = []
        self.starts.append((job["parser"].t, job["snap"]))
        self.bars_done += 1
        self._job = None
        return Segment(keep, notes, ended=mark.kind in ("end", "tune"))

    def _retry(self, job) -> None:
        self.lm.restore(job["snap"])
        self.parser = job["parser"].clone()
        job["parser"] = self.parser.clone()
        job["text"] = self.carry
        job["out"] = list(self.carry_out)
        job["tries"] += 1
        job["steps"] = 0

    def _mask(self, text: str):
        if self.parser._mode == "quote":
            return None  # a chord symbol: free text up to the closing quote
        prev = text[-1:] or (enc.VOCAB[self.lm.last] if self.lm.last is not None else "")
        mask = _BODY_BAN.copy()
        if prev not in "|:]":
            mask[_BANG] = True  # '!' ends a line after a bar line (the lab's style), nowhere else
        if prev == "\n" and (not self.allow_end or self.parser.n_notes < self.min_notes):
            mask[_NL] = True  # no blank line: the tune (or the answer) goes on
        return mask


class FolkModel(StepModel):
    family = "folk"
    modes = ("call-response", "duet")

    def __init__(self, card: ModelCard, card_path: Path):
        super().__init__(card, card_path)
        check_encoding(card, enc.ENCODING_NAME, enc.ENCODING_VERSION, card_path)
        if card.encoding.get("vocab") != enc.VOCAB:
            raise ModelError(f"model {card_path} has a different character vocabulary than abc-chars v1: re-export it with this improvd")
        self.sess = open_session(card, card_path)
        shape = next(s.shape for s in card.inputs if s.name == "h")
        self.lm = CharLM(self.sess, (int(shape[0]), 1, int(shape[2])), enc.VOCAB)
        d = card.encoding.get("defaults", {})
        self.key_name = self.home_key = d.get("key", "D Major")  # home: what a reset starts from
        self.meter_name = d.get("meter", "4/4")
        self.unit_name = d.get("unit", "1/8")
        self.auto_key = False
        self.reset()

    def configure(self, settings) -> None:
        """Key and meter from the settings; key "auto" re-detects the key from each phrase. The
        ABC header changes with them, so the state starts afresh, and only then."""
        meter, auto = settings.meter or self.meter_name, settings.key == "auto"
        wanted = (meter, auto, None if auto else settings.key)
        if getattr(self, "_configured", None) == wanted:
            return
        self._configured = wanted
        self.meter_name, self.auto_key = meter, auto
        if not auto:
            self.home_key = settings.key
        self.reset()

    # -- state ---------------------------------------------------------------------------------
    def reset(self) -> None:
        """A fresh tune in the home key: a key detected from the last piece's phrases must not
        carry over (left in Ab major, the next call took 70-83 s of the bar sampler's retries)."""
        self.key_name = self.home_key
        self.lm.reset()
        self.tracker = EventTracker()
        self.queue = enc.header_text(self.key_name, self.meter_name, self.unit_name)
        self.writer = enc.AbcWriter(enc.parse_key(self.key_name), enc.parse_meter(self.meter_name) or Fraction(1),
                                    enc.parse_unit(self.unit_name), bar_origin=0)
        self.answering = False
        self.buffer: list = []  # (absolute onset tick, AbcNote) sampled ahead
        self.bars: BarSampler | None = None
        self.origin = 0
        self.horizon = 0
        self.history_text = ""
        self.phrase: list = []  # the performer's events since the last answer (key finding)

    def snapshot(self):
        self._drain(10_000)
        return (self.lm.snapshot(), self.history_text)

    def restore(self, snap) -> None:
        self.lm.restore(snap[0])
        self.history_text = snap[1]
        self.queue = ""
        self.buffer = []
        self.bars = None

    def _drain(self, budget: int) -> None:
        n = min(budget, len(self.queue))
        for ch in self.queue[:n]:
            self.lm.step(enc.CHAR_INDEX[ch])
        self.history_text += self.queue[:n]
        self.queue = self.queue[n:]

    # -- performer ---------------------------------------------------------------------------------
    def listen(self, step: Step) -> None:
        if not self.answering:
            events = self.tracker.step(step.tick, step.onsets, step.releases, step.chord)
            if events:
                self.queue += self.writer.write(events)
                self.phrase += events
        self._drain(FEED_BUDGET)

    def begin_answer(self, tick: int) -> None:
        events = self.tracker.flush_rest(tick)
        if events:
            self.queue += self.writer.write(events)
        bar = self.writer.bar_ticks
        phase = (tick - self.writer.bar_origin) % bar
        if self.writer._pos is not None and self.writer._pos < tick:
            self.queue += self.writer.write([enc.Event(REST, tick - self.writer._pos, self.writer._pos, None)])
        if not self.queue.endswith(("|", "|\n")) and phase == 0:
            self.queue += "|"  # the answer opens a bar
        self._retune()
        self._drain(10_000)
        self.answering = True
        self.origin = tick
        self.buffer = []
        parser = AbcStream(key=self.key_name, meter=self.meter_name, unit=self.unit_name)
        first = Fraction(bar - phase) if phase else None
        self.bars = BarSampler(self.lm, parser, allow_end=False, first_bar=first)
        self.horizon = tick

    def _retune(self) -> None:
        """Key "auto": the phrase just played names the key; a change is written into the tune
        as an inline K: line, as ABC tunes that modulate do, and the answer is read in it."""
        detected = enc.detect_key(self.phrase) if self.auto_key else None
        self.phrase = []
        if detected and detected != self.key_name:
            self.key_name = detected
            self.queue += f"\nK:{detected}\n"
            self.writer.key = enc.parse_key(detected)
            self.writer._bar_acc = {}

    def end_answer(self, tick: int) -> None:
        """The LM keeps what was heard: bars sampled ahead that never began to sound (and a
        half-sampled bar) are taken back out of its state, so the performer's next phrase
        follows the answer as played, not the answer as planned."""
        self.answering = False
        self.buffer = []
        if self.bars is not None:
            unheard = [snap for t0, snap in self.bars.starts if self.origin + t0 >= tick]
            if unheard:
                self.lm.restore(unheard[0])
            elif self.bars._job is not None:
                self.lm.restore(self.bars._job["snap"])  # drop the half-sampled bar
        self.bars = None
        self.tracker.reset()
        self.tracker.start_rest(tick, None)
        self.writer._pos = tick
        self.writer._bar_acc = {}

    # -- machine --------------------------------------------------------------------------------------
    def _fill(self, ctx: PlayContext, budget: int) -> None:
        """Sample bars until the buffer reaches LOOKAHEAD_TICKS past now, ``budget`` chars at most."""
        while budget > 0 and self.horizon < ctx.tick + LOOKAHEAD_TICKS:
            seg = self.bars.next_bar(ctx.rng, ctx.temperature, ctx.top_p, budget=budget)
            if seg is None:
                return
            budget -= max(1, len(seg.text))
            for n in seg.notes:
                self.buffer.append((self.origin + n.onset, n))
            self.horizon = self.origin + int(self.bars.parser.t)

    def play(self, ctx: PlayContext) -> list[NoteOut]:
        if not self.answering or self.bars is None:
            return []
        if ctx.starting or (not self.buffer and self.horizon <= ctx.tick):
            # the first bar of an answer is sampled now (about one bar of chars), so its first
            # note sounds when due; after that the per-tick budget keeps a bar ahead
            self._fill(ctx, 400)
            filled = True
        else:
            filled = False
        if self.buffer and self.buffer[0][0] < ctx.tick and self.horizon <= ctx.tick:
            # sampling fell behind the clock: shift what is sampled so it starts now
            shift = ctx.tick - self.buffer[0][0]
            self.origin += shift
            self.buffer = [(t + shift, n) for t, n in self.buffer]
            self.horizon += shift
        out = []
        while self.buffer and self.buffer[0][0] <= ctx.tick:
            t, n = self.buffer.pop(0)
            if t < ctx.tick or n.pitch is None:
                continue
            lo, hi = ctx.pitch_range
            pitches = n.pitches or (n.pitch,)
            for p in pitches[-ctx.max_voices:]:
                out.append(NoteOut(int(fold_to_range(p, lo, hi)), 90, int(n.duration)))
        if not filled:
            self._fill(ctx, SAMPLE_BUDGET)  # the next notes, while these sound
        return out
