"""The folk family at run time: a character-level LSTM over ABC text, one ONNX step per char.

The performer's completed notes are written as ABC (improvd.encoding.abc.AbcWriter) and fed
through the LSTM (teacher forcing; the state stays warm). An answer is sampled as ABC text and
parsed as it streams (improvd.abcstream) into notes on the grid. A note costs several chars,
so whole bars are sampled ahead and kept in a small look-ahead buffer; the work is spread over
ticks with a fixed char budget per tick, so the clock is never held up.

Constraints (the same ones `evaluate` reports as "constrained"): header lines in the order X T
(Z) M L K with M: one of C, C| or n/2 n/4 n/8, L: 1/4 1/8 or 1/16 and K: a tonic abc2midi
reads; the body written in the corpus's own alphabet (note letters, z and signs; '!' only
after a bar line and before a newline, as the lab's line ends; no field, chord symbol or new
tune), and every char masked to what keeps the tune renderable by abc2midi with no error and
no warning (``BarSampler``, ``Form``): no note past the end of its bar, bar lines only where
the bar is full or, at a double bar or repeat, where its short length is what the next bar (a
pickup) or the repeated section's pickup completes; a section after a repeated one opens with
|:; [1 is closed by :| and followed by [2; tuplets, slurs, chords, broken pairs and ties are
well formed and closed inside the bar; a tune ends only where all of it is closed, and near
``max_chars`` closes at the first bar that can. A dead end the masks did not foresee samples
the bar again from its start (``BAR_RETRIES`` at most). Live, the same sampler writes the
answer, its first bar the rest of the bar the performer was in.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
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
CLOSING_CHARS = 300  # a tune this close to max_chars closes at the first bar that can
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
                    constrained: bool = False, top_p: float = 1.0) -> str:
        """A tune from ``primer`` (the lab starts from 'X'), up to the blank line that ends it.

        Constrained, the header and every char of the body pass the masks of ``BarSampler``:
        one pass, never a whole tune sampled again."""
        return self._sample_once(rng, temperature, primer, max_chars, constrained, top_p)[0]

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
            bars.closing = len(text) > max_chars - CLOSING_CHARS
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
        if name == "M":  # C, C| or n/d with d 2, 4 or 8: what abc2midi and the corpus share
            return bool(re.fullmatch(r"C\|?|([2-9]|1[0-2])/[248]", value))
        if name == "L":
            return value in ("1/4", "1/8", "1/16")
        if name == "K":
            enc.parse_key(value)
            if not re.match(r"[A-G]", value):
                return False  # abc2midi reads no key from "K:c" or "K:none"
    except Exception:
        return False
    if name == "T" and not re.match(r"[A-Za-z0-9(']", value):
        return False  # abc2midi reads "T:| ..." as a repeat
    return bool(value) or name not in "TMLK"


@dataclass
class Segment:
    text: str
    notes: list  # AbcNote, onsets on the parser's clock
    ended: bool = False


# -- bars and repeats as abc2midi counts them ----------------------------------------------------

# The bar tokens the sampler writes: the lab corpus's own (| :| |] [1 [2 :|[2) and the few
# that make its repeats explicit. "[|", "|2", ":|:", "[1,2" and the like are never written.
BAR_TOKENS = ("|", "||", "|]", "|:", ":|", "::", "|1", "[1", "[2", ":|2")
_DOUBLE = ("||", "|]")


@dataclass
class Form:
    """Where a tune body stands in its bars and repeats, the way abc2midi checks them.

    abc2midi wants every bar full (M: long in L: units), but it keeps a short bar closed by a
    double bar or a repeat open and lets the next bar complete it: the last bar of a section
    and the pickup of the next one add up to one bar, and so do the bar before a ``:|`` and the
    first bar of the section it repeats. Only the tune's very first bar may be short on its
    own (an anacrusis). A ``:|`` goes back to the last ``|:`` (the tune start before any); one
    with neither is "assumed", with a warning, so a section that follows a repeated section
    is opened with ``|:`` here (the corpus leaves it out). ``[2`` continues from the bar before
    ``[1``. Lengths are ticks on the parser's clock."""

    full: Fraction | None  # one bar; None: free meter, nothing to count
    need: Fraction | None = None  # the first bar's length when fixed (an answer starting mid-bar)
    first: bool = True  # no bar with notes closed yet: the tune's first bar may be a pickup
    carry: Fraction = Fraction(0)  # short bar left open by a double bar: the next bar completes it
    pickup: Fraction = Fraction(0)  # first bar of the current repeat section, when short
    section_first: bool = True  # that first bar is not closed yet
    rep_open: bool = False  # an explicit |: waits for its :|
    repeated: bool = False  # a :| was played: the tune start no longer opens a repeat
    ending: int = 0  # inside [1 or [2
    ending_carry: Fraction = Fraction(0)  # the carry before [1: where [2 takes up
    need_open: bool = False  # the next section opens with |:
    want_e2: bool = False  # [1 closed with :|: [2 comes next
    slurs: int = 0
    bar_start: Fraction = Fraction(0)  # parser clock of the last bar line

    def copy(self) -> "Form":
        return replace(self)

    @property
    def target(self) -> Fraction | None:
        """Most the bar being written may hold (its carry included)."""
        return self.need if self.need is not None else self.full

    def close(self, tok: str, content: Fraction) -> "Form | None":
        """The form after bar token ``tok`` closes ``content`` ticks of notes; None where
        abc2midi would warn or fail on it."""
        if tok not in BAR_TOKENS:
            return None
        f = self.copy()
        full = self.full
        total = self.carry + content
        if self.slurs:
            return None  # slurs close inside their bar (one left open blocks every repeat and the end)
        if self.want_e2:
            if tok == "[2" and content == 0:
                f.want_e2, f.ending, f.carry = False, 2, self.ending_carry
                return f
            return None
        if tok == "[2" or (tok == ":|2" and self.ending != 1):
            return None
        if self.need_open and tok != "|:":
            return None
        if content == 0 and tok in ("|", "||", "|]") and self.need is not None and self.carry == 0:
            return f  # an answer opening on the bar line the performer's phrase ended with
        if content == 0 and tok not in ("|:", "[1"):
            return None  # an empty bar: nothing between two bar lines
        if full is not None and total > self.target:
            return None
        can_repeat = self.rep_open or not self.repeated
        if tok in ("|", "|1"):
            if tok == "|1" and (self.ending or not can_repeat):
                return None
            if full is not None:
                if self.need is not None:
                    if total != self.need:
                        return None
                elif total != full and not (self.first and self.carry == 0):
                    return None
            f._closed(content, open_ended=False)
            if tok == "|1":
                f.ending, f.ending_carry = 1, f.carry
            return f
        if tok == "[1":
            if self.ending or not can_repeat or self.section_first or content:
                return None
            f.ending, f.ending_carry = 1, self.carry
            return f
        if tok in _DOUBLE:
            if self.rep_open or self.ending == 1 or (self.first and full is not None and total != full):
                return None
            f._closed(content)
            if self.ending == 2:
                f.ending, f.need_open = 0, True
            return f
        if tok == "|:":
            if self.rep_open or self.ending == 1:
                return None
            if content:
                if self.first and full is not None and total != full:
                    return None
                f._closed(content)
            f.rep_open, f.need_open, f.section_first, f.pickup, f.ending = True, False, True, Fraction(0), 0
            return f
        # :| :: :|2
        if not can_repeat or self.ending == 2 or self.section_first or self.need is not None:
            return None
        if tok == "::" and self.ending == 1:
            return None
        if full is not None and total + self.pickup != full and not (self.pickup == 0 and total == full):
            return None
        f._closed(content)
        f.repeated, f.rep_open = True, False
        if self.ending == 1:
            if tok == ":|2":
                f.ending, f.carry = 2, self.ending_carry
            else:
                f.want_e2 = True
        elif tok == "::":
            f.rep_open, f.section_first, f.pickup = True, True, Fraction(0)
        else:
            f.need_open = True
        return f

    def _closed(self, content: Fraction, open_ended: bool = True) -> None:
        """A bar closed; ``open_ended``: by a double bar or repeat, which leaves a short bar
        open for the next one to complete (a single bar line closes a pickup for good)."""
        total = self.carry + content
        if self.section_first and content:
            self.pickup = content if self.full is not None and content < self.full else Fraction(0)
            self.section_first = False
        self.first = False
        self.need = None
        self.carry = total if open_ended and self.full is not None and total < self.full else Fraction(0)

    def token_possible(self, prefix: str, content: Fraction) -> bool:
        return any(t.startswith(prefix) and self.close(t, content) is not None for t in BAR_TOKENS)

    def can_end(self) -> bool:
        """A tune may end here (after a bar token, nothing written since): every |: closed,
        [1 followed by [2, no slur open."""
        return not (self.rep_open or self.ending == 1 or self.want_e2 or self.slurs)


# Characters by what the parser is reading (True = forbidden), on top of _BODY_BAN.
def _only(chars: str) -> np.ndarray:
    m = np.ones(len(enc.VOCAB), bool)
    for ch in chars:
        m[enc.CHAR_INDEX[ch]] = False
    return m


_NOTE_START = "ABCDEFGabcdefg^_=z"
_MASK_BRACKET = _only("ABCDEFGabcdefg^_=12")  # after '[': a chord or an ending
_MASK_CHORD = _only("ABCDEFGabcdefg^_=]")
_MASK_CHORD_FULL = _only("]")
_MASK_AFTER_BROKEN = _only("ABCDEFGabcdefg^_=z")
_MASK_ACCIDENTAL = _only("ABCDEFGabcdefg")
_MASK_LINE_END = _only("\n")
_MASK_TUPLET_OPEN = _only("23456789")
_DIGITS = np.array([ch.isdigit() for ch in enc.VOCAB])
_NOTE_ONLY_CHARS = np.array([ch in "ABCDEFGabcdefg^_=z[(" for ch in enc.VOCAB])


def _mask_of(chars: str) -> np.ndarray:
    return ~_only(chars)


_M_DIGITS_SLASH = _mask_of("0123456789/")
_M_DIGITS = _mask_of("0123456789")
_M_OCTAVE = _mask_of(",'")
_M_BROKEN = _mask_of("<>")
_M_TIE = _mask_of("-")
_M_CLOSE_SLUR = _mask_of(")")
_M_NOTES = _mask_of(_NOTE_START + "[(")
_M_SPACE_NL = _mask_of(" \n")
_M_BAR_END = _mask_of("]")
_M_COLON = _mask_of(":")
_M_BAR = _mask_of("|:[")


def _peek_pitch(p: AbcStream, tok) -> int:
    """The pitch the note token being read stands for now, without touching the parser."""
    up = tok.letter.upper()
    base = 60 if tok.letter.isupper() else 72
    if tok.acc:
        alter = {"^": 1, "^^": 2, "__": -2, "_": -1, "=": 0}[tok.acc]
    else:
        octave = tok.octave + (0 if tok.letter.isupper() else 1)
        slot = up if p.propagate == "pitch" else (up, octave)
        alter = p._bar_acc.get(slot, p.key.alter(up))
    return base + enc.LETTER_PC[up] + 12 * tok.octave + alter


def _token_ticks(p: AbcStream, length: str, least: bool) -> Fraction:
    """A note of ``length`` read now; ``least``: the shortest it may still become ("A" may
    grow a "/")."""
    v = p.unit_ticks * _abc_length(length) * p._next_factor
    if p._tuplet:
        v *= p._tuplet[0]
    if least and (length == "" or length.endswith("/")):
        v /= 2
    return v


def _tuplet_q(p: AbcStream, spec: str) -> Fraction:
    """Time of a tuplet "(p" in notes of its own length: (3 takes 2, (2 takes 3, ..."""
    try:
        n = int(spec.split(":")[0])
    except ValueError:
        return Fraction(1)
    compound = p.meter is not None and p.meter.numerator % 3 == 0 and p.meter.numerator > 3
    return Fraction({2: 3, 3: 2, 4: 3, 6: 2, 8: 3}.get(n, 3 if compound else 2))


def _abc_length(text: str) -> Fraction:
    from improvd.abcstream import _length

    return _length(text)


def first_violation(body: str, key: str = "D", meter: str = "4/4", unit: str = "1/8", tune: bool = True,
                    first_bar: Fraction | None = None) -> int | None:
    """Index of the first char of ABC body text the constrained sampler would never write
    (``BarSampler``'s masks and checks, no model), None when it would write all of it; a tune
    ending ("\\n\\n") is checked where the text has one."""
    parser = AbcStream(key=key, meter=meter, unit=unit)
    bars = BarSampler(None, parser, allow_end=tune, first_bar=first_bar, min_notes_to_end=0)
    text = ""
    for i, ch in enumerate(body):
        if ch not in enc.CHAR_INDEX or bars._mask(text)[enc.CHAR_INDEX[ch]]:
            return i
        trial = bars._try(None, ch)
        if trial is None:
            return i
        bars.parser, bars.form, _got = trial
        text += ch
    return None


class BarSampler:
    """Samples ABC body text through a streaming parser, a char at a time, each char masked to
    what keeps the tune renderable: the corpus's alphabet, well-formed notes, chords, tuplets,
    ties, slurs and bar tokens, no note past the end of the bar (M: and L:, pickups and their
    complements, see ``Form``), bar tokens only where the bar's length and the repeats allow
    them, and the end of a tune only where every structure is closed. A char the model draws
    that breaks one of these is masked and the draw made again. Should no char fit (a dead end
    the masks did not foresee), the bar is sampled again from its start (``BAR_RETRIES`` at most).

    ``next_bar`` returns one bar at a time (what the daemon buffers)."""

    def __init__(self, lm: CharLM, parser: AbcStream, allow_end: bool, first_bar: Fraction | None = None,
                 min_notes_to_end: int = 8, tune_start: bool | None = None):
        self.lm, self.parser = lm, parser
        self.allow_end = allow_end
        self.first_bar = first_bar  # length the first bar must have (the answer starts mid-bar)
        self.min_notes = min_notes_to_end
        self.bars_done = 0
        self.gave_up = 0
        self.rejected = 0  # draws masked after the fact
        self.closing = False  # set near the length limit: close at the first bar that can
        self.carry = ""  # the char that completed the last bar: it opens the next one
        self.carry_out: list = []
        self._job = None
        full = parser.bar_ticks
        # a whole tune (allow_end) starts with a free pickup; the daemon's answer does not
        start = allow_end if tune_start is None else tune_start
        need = first_bar if first_bar is not None else (None if start else full)
        self.form = Form(full, need=need, first=start, bar_start=parser.bar_start)
        # (start on the parser's clock, LM state before it) of each accepted bar: an answer cut
        # short rolls the LM back to the first bar that never sounded
        self.starts: list = []

    def _start(self):
        return {"snap": self.lm.snapshot(), "parser": self.parser.clone(), "text": self.carry,
                "out": list(self.carry_out), "tries": 0, "steps": 0, "form": self.form.copy()}

    def next_bar(self, rng, temperature: float, top_p: float = 1.0, budget: int = 10_000) -> Segment | None:
        """Sample until one bar is accepted (or the budget of chars runs out: None, resumable)."""
        if self._job is None:
            self._job = self._start()
        job = self._job
        spent = 0
        while spent < budget:
            mask = self._mask(job["text"])
            while True:
                if mask.all():
                    idx = None
                    break
                idx = self.lm.draw(rng, temperature, top_p, mask)
                trial = self._try(job, enc.VOCAB[idx])
                if trial is not None:
                    break
                self.rejected += 1
                mask = mask.copy()
                mask[idx] = True
            spent += 1
            if idx is None:  # a dead end: the bar again from its start
                if job["tries"] >= BAR_RETRIES:
                    # never seen in the evaluation's samples; a tune ends here, an answer
                    # goes on with the bar as it is and its bar accounting started afresh
                    self.gave_up += 1
                    self.form = Form(self.form.full, first=True, bar_start=self.parser.bar_start)
                    return self._accept(job, "", AbcMark("end" if self.allow_end else "bar", ""), forced=True)
                self._retry(job)
                continue
            ch = enc.VOCAB[idx]
            parser, form, got = trial
            self.parser, self.form = parser, form
            self.lm.step(idx)
            job["steps"] += 1
            job["text"] += ch
            job["out"] += got
            done = [m for m in got if isinstance(m, AbcMark) and m.kind in ("bar", "end", "tune")]
            if done:
                return self._accept(job, ch, done[0])
            if job["steps"] >= 200:  # a bar that never closes (free meter): hand it on
                return self._accept(job, ch, AbcMark("bar", ""), forced=True)
        return None

    # -- checks ---------------------------------------------------------------------------------
    def _try(self, job, ch: str):
        """(parser, form, marks) after ``ch``, or None where ``ch`` leads nowhere valid."""
        before = self.parser
        if before._mode == "note" and before._tok is not None and before._tok.letter and before._chord is None \
                and before._tied is not None and before._tied.tie and ch not in ",'" \
                and _peek_pitch(before, before._tok) != before._tied.pitch:
            return None  # a tied note ends on the tie's pitch
        p = before.clone()
        form = self.form
        mode_before = p._mode
        got = p.feed(ch)
        for m in got:
            if not isinstance(m, AbcMark):
                continue
            if m.kind == "bar":
                if p._tied is not None and m.text != "|":
                    return None
                content = p.bar_start - form.bar_start
                form = form.close(m.text, content)
                if form is None:
                    return None
                form.bar_start = p.bar_start
            elif m.kind in ("end", "tune"):
                if m.kind == "tune" or not self.allow_end or p.n_notes < self.min_notes:
                    return None
                before = self.parser
                if (not form.can_end() or p.t != form.bar_start or before._tied is not None
                        or (before._held is not None and before._held.tie)):
                    return None
        # slurs and ends of lines
        if mode_before == "paren" and not ch.isdigit():
            if form.slurs:
                return None
            form = form.copy()
            form.slurs += 1
        elif ch == ")" and mode_before in ("body", "line_start", "note", "chord_len", "bar", "bar_ending", "tuplet"):
            if not form.slurs:
                return None
            form = form.copy()
            form.slurs -= 1
        if ch == "\n" and form.ending == 2 and not form.need_open:
            form = form.copy()
            form.need_open = True  # a new line after [2: the next section, repeated, opens with |:
        full = form.full
        mode = p._mode
        if mode in ("bar", "bar_ending"):
            if p._tuplet:
                return None  # a tuplet cut by a bar line
            if p._tied is not None and p._buf != "|":
                return None  # a tie crosses a plain bar line only
            content = p.t - form.bar_start
            if not form.token_possible(p._buf, content):
                return None
            return p, form, got
        if mode == "bracket" and not p._buf:
            content = p.t - form.bar_start
            if form.token_possible("[", content):
                return p, form, got  # "[1", "[2": the digit is checked next
            if form.want_e2 or form.need_open or (full is not None and self._room(p, form, Fraction(0)) < self._least(p)):
                return None
            return p, form, got
        if (form.want_e2 or form.need_open) and mode not in ("body", "line_start", "deco!"):
            return None  # notes before the [2 or the |: that must come first
        got_state = (p, form, got)
        if mode == "field?":  # a letter at a line start: a note once the next char shows it
            p = p.clone()
            p.feed(" ")
            mode = p._mode
        # ties: the next note is the same pitch
        tied = p._tied if p._tied is not None and p._tied.tie else (
            p._held if p._held is not None and p._held.tie else None)
        tok = p._tok if mode == "note" else None
        if p._tied is not None and p._held is not None and p._held.pitch != p._tied.pitch:
            return None
        if tied is not None:
            if p._chord is not None or mode in ("bracket", "chord", "chord_len"):
                return None
            if tok is not None and tok.letter:
                if tok.letter in "zx":
                    return None
                diff = tied.pitch - _peek_pitch(p, tok)
                if diff % 12 or (diff and (tok.length or tok.acc)) or (diff > 0 and tok.letter.isupper()) or (
                        diff < 0 and tok.letter.islower()):
                    return None  # C, and c' only, and no accidental on a tied note
        if full is None:
            return got_state
        if p._broken:  # "A>": room for the next note at its new length
            n = len(p._broken)
            factor = Fraction(1, 2 ** n) if p._broken[0] == ">" else 2 - Fraction(1, 2 ** n)
            if p._tuplet or self._room(p, form, Fraction(0)) < self._least(p) * factor:
                return None
        if mode == "paren" or (mode == "note" and tok is not None and not tok.letter):
            if self._room(p, form, Fraction(0)) < self._least(p):
                return None  # a note must follow: no room for it
        elif mode == "tuplet":
            if self._room(p, form, Fraction(0)) < self._least(p) * _tuplet_q(p, p._buf):
                return None  # (3: three notes must follow
        if self._room(p, form, _token_ticks(p, tok.length, True) if tok is not None and tok.letter and p._chord is None
                      else Fraction(0)) < 0:
            return None
        if mode in ("body", "line_start") and not p._tuplet and not p._broken:
            room = self._room(p, form, Fraction(0))
            if 0 < room < self._least(p):
                return None  # what is left of the bar is shorter than any note
        if p._tuplet:  # the tuplet's notes still to come must fit in the bar
            reading = 1 if (tok is not None and tok.letter) or p._chord is not None or mode in ("chord", "chord_len") else 0
            left = p._tuplet[1] - reading
            pending = _token_ticks(p, tok.length, True) if tok is not None and tok.letter and p._chord is None else Fraction(0)
            if left > 0 and self._room(p, form, pending) < left * self._least(p):
                return None
        return got_state

    @staticmethod
    def _least(p: AbcStream) -> Fraction:
        """The shortest note that may come next ("A/")."""
        return _token_ticks(p, "", True)

    def _room(self, p: AbcStream, form: Form, pending: Fraction) -> Fraction:
        """Ticks left in the bar once what the parser holds (and ``pending``) is placed."""
        used = form.carry + (p.t - form.bar_start) + pending
        if self.closing and (form.rep_open or form.ending == 1) and not form.section_first and form.pickup:
            used += form.pickup  # near the length limit: the bar :| can close
        if p._held is not None and p._held.onset is None:
            held = p._held.ticks
            if p._broken:
                n = len(p._broken)
                short = Fraction(1, 2 ** n)
                held = held * (2 - short) if p._broken[0] == ">" else held * short
            used += held
        if p._chord is not None or p._mode in ("chord", "chord_len"):
            notes = p._chord if p._chord is not None else p._chord_notes
            if notes:
                length = p._chord_len if p._mode == "chord_len" else ""
                used += p.unit_ticks * notes[0][1] * _abc_length(length) * p._next_factor * (
                    p._tuplet[0] if p._tuplet else 1)
            elif p._tok is not None and p._tok.letter:
                used += _token_ticks(p, p._tok.length, True)
        return form.target - used

    def _closing_mask(self, p: AbcStream) -> np.ndarray | None:
        """A tune near its length limit closes at the first bar where it can: the bar token
        that closes its repeat (or the tune) is forced as soon as the bar's length allows it,
        then the blank line that ends the tune."""
        form, mode = self.form, p._mode
        if mode == "bar":
            after = form.close(p._buf, p.t - form.bar_start)
            if after is not None and after.can_end() and p._buf in (":|", "|]", "||"):
                return _MASK_LINE_END.copy()
            return None
        if mode not in ("body", "note", "line_start") or p._broken or p._tuplet or p._tied is not None:
            return None
        if mode == "note" and (p._tok is None or not p._tok.letter):
            return None
        if p.t == form.bar_start and form.can_end() and p.n_notes >= self.min_notes and form.need_open:
            return _MASK_LINE_END.copy()  # a repeated section closed: the tune ends here
        if mode == "line_start" and p.t == form.bar_start and form.can_end() and p.n_notes >= self.min_notes:
            return _MASK_LINE_END.copy()
        q = p.clone()
        q.feed(" ")
        if q._held is not None and q._held.tie:
            return None
        content = q.position - form.bar_start
        if content <= 0:
            return None
        tok = ":|" if (form.rep_open or form.ending == 1) else "|]"
        if form.close(tok, content) is None:
            return None
        return _only(tok[0])

    def _mask(self, text: str) -> np.ndarray:
        """What the parser's state rules out before any char is tried (True = forbidden)."""
        p = self.parser
        mode = p._mode
        if self.closing and self.allow_end and self.form.full is not None:
            forced = self._closing_mask(p)
            if forced is not None:
                return forced
        prev = text[-1:] or (enc.VOCAB[self.lm.last] if self.lm is not None and self.lm.last is not None else "")
        mask = _BODY_BAN.copy()
        mask[enc.CHAR_INDEX['"']] = True  # no chord symbols: abc2midi refuses most the model writes
        if mode == "deco!" or prev == "!":
            return _MASK_LINE_END.copy()  # '!' ends a line (the lab's style)
        if prev not in "|:]":
            mask[_BANG] = True  # '!' ends a line after a bar line, nowhere else
        if mode == "bracket":
            if p._buf:  # "[A": a chord goes on (never an inline field "[A:")
                m = _MASK_CHORD.copy()
                m[enc.CHAR_INDEX["," if p._buf.isupper() else "'"]] = False
                m[enc.CHAR_INDEX["]"]] = True
                return m
            return _MASK_BRACKET.copy()
        if p._chord is not None or mode == "chord":
            notes = len(p._chord or ()) + (1 if mode == "note" and p._tok is not None and p._tok.letter else 0)
            if mode == "note" and p._tok is not None and p._tok.letter:
                # one length for the whole chord, after "]" (abc2midi warns on unequal notes)
                m = _MASK_CHORD.copy() if notes < 4 else _MASK_CHORD_FULL.copy()
                if not p._tok.length and not p._tok.octave:
                    m[enc.CHAR_INDEX["," if p._tok.letter.isupper() else "'"]] = False
                if notes < 2:
                    m[enc.CHAR_INDEX["]"]] = True
                return m
            if mode == "note":  # an accidental inside a chord
                return _MASK_ACCIDENTAL.copy()
            m = _MASK_CHORD.copy()
            if notes < 2:
                m[enc.CHAR_INDEX["]"]] = True
            return m
        if mode == "note" and p._tok is not None:
            tok = p._tok
            if not tok.letter:
                m = _MASK_ACCIDENTAL.copy()
                if len(tok.acc) == 1 and tok.acc != "=":
                    m[enc.CHAR_INDEX[tok.acc]] = False
                return m
            length = tok.length
            if "/" in length and length != "/":
                mask[_M_DIGITS_SLASH] = True  # "A3/2", "A/4", "A//": no more
                if length.endswith("/") and length.count("/") == 1:
                    for d in "248":
                        mask[enc.CHAR_INDEX[d]] = False
            elif length == "/":
                mask[_M_DIGITS] = True
                for d in "248":
                    mask[enc.CHAR_INDEX[d]] = False
            else:
                if len(length) >= 2 or length == "":
                    mask[enc.CHAR_INDEX["0"]] = True
                if len(length) >= 2:
                    mask[_M_DIGITS] = True
            mask[_M_BAR_END] = True  # "]" closes chords only
            if p._tuplet:
                mask[enc.CHAR_INDEX["("]] = True  # no tuplet or slur starts inside a tuplet
            if p._tuplet or p._next_factor != 1:
                mask[_M_DIGITS_SLASH] = True  # a tuplet's notes, or a broken pair's, one length
            if length:
                mask[_M_BROKEN] = True
            if tok.letter in "zx":
                mask[_M_OCTAVE | _M_TIE | _M_BROKEN] = True
            elif length or tok.octave:
                mask[_M_OCTAVE] = True  # one octave mark at most: C, and c'
            else:
                mask[enc.CHAR_INDEX["'" if tok.letter.isupper() else ","]] = True
            if p._broken or p._tuplet:
                mask[_M_BROKEN] = True
            return mask
        if mode == "chord_len":
            mask[_M_TIE | _M_BAR_END] = True  # no tied chords
            if "/" in p._chord_len:
                mask[_M_DIGITS_SLASH] = True
            elif len(p._chord_len) >= 1:
                mask[_M_DIGITS] = True
            if p._chord_len == "":
                mask[enc.CHAR_INDEX["0"]] = True
            if p._chord_len:
                mask[_M_BROKEN] = True
            return mask
        if p._broken:  # "A>": the next note
            return _MASK_AFTER_BROKEN.copy()
        if mode == "tuplet":
            mask[_M_DIGITS_SLASH | _M_COLON] = True
            mask[_M_SPACE_NL] = True
            mask[_M_BAR] = True
            mask[enc.CHAR_INDEX["("]] = True
            mask[enc.CHAR_INDEX[")"]] = True
            mask[enc.CHAR_INDEX["!"]] = True
            mask[_M_BAR_END] = True
            mask[_M_TIE | _M_BROKEN] = True
            return mask
        if mode == "paren":
            if p._tuplet:
                return _MASK_CHORD_FULL | True
            m = _MASK_TUPLET_OPEN.copy()
            m[_M_NOTES] = False
            m[enc.CHAR_INDEX["("]] = True
            return m
        if mode in ("bar", "bar_ending"):
            mask[enc.CHAR_INDEX["/"]] = True
            if p._tied is not None:
                return mask | _only("ABCDEFGabcdefg|")  # a tie: the tied note after the bar line
            if mode == "bar_ending":
                mask[_M_DIGITS] = True
                mask[enc.CHAR_INDEX[","]] = True
                mask[_M_TIE] = True
            mask[_M_TIE | _M_BROKEN] = True
            mask[enc.CHAR_INDEX[")"]] = True
            return mask
        if mode == "field?":
            mask[_M_COLON] = True
            return mask
        # body, line start
        if prev in (" ", "\n", "") or mode == "line_start":
            mask[enc.CHAR_INDEX[" "]] = True  # one space at most, none at a line start
        if p._tuplet:
            mask[enc.CHAR_INDEX["("]] = True
            mask[enc.CHAR_INDEX["["]] = True
        mask[_M_DIGITS] = True
        mask[enc.CHAR_INDEX["/"]] = True
        mask[_M_BAR_END] = True
        mask[_M_OCTAVE] = True  # "," and "'" belong to a note
        if p._tied is not None or (p._held is not None and p._held.tie):
            return mask | _only("ABCDEFGabcdefg|")  # the tied note next, across a bar line at most
        held = p._held
        if held is None or held.pitch is None or held.tie or held.pitches or prev == " ":
            mask[_M_TIE] = True
        if held is None or held.tie or p._tuplet or held.pitches or held.ticks != p.unit_ticks:
            mask[_M_BROKEN] = True
        if prev == "\n" and (not self.allow_end or p.n_notes < self.min_notes):
            mask[_NL] = True  # no blank line: the tune (or the answer) goes on
        return mask

    def _accept(self, job, ch: str, mark: AbcMark, forced: bool = False) -> Segment:
        text, out = job["text"], job["out"]
        # the char that completed the bar belongs to the next bar
        keep = text[:-1] if (mark.kind == "bar" and not forced) else text
        notes = [n for n in out if isinstance(n, AbcNote)]
        self.carry = ch if (mark.kind == "bar" and not forced) else ""
        self.carry_out = []
        self.starts.append((job["parser"].t, job["snap"]))
        self.bars_done += 1
        self._job = None
        return Segment(keep, notes, ended=mark.kind in ("end", "tune"))

    def _retry(self, job) -> None:
        self.lm.restore(job["snap"])
        self.parser = job["parser"].clone()
        self.form = job["form"].copy()
        job["text"] = self.carry
        job["out"] = list(self.carry_out)
        job["tries"] += 1
        job["steps"] = 0


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

    def home_scale(self) -> frozenset:
        """The tune's key (the settings', or the one found from the phrase): motifs of the call
        are answered in it."""
        try:
            return enc.parse_key(self.key_name).pitch_classes
        except Exception:  # a key the parser cannot read: the call's own key then
            return frozenset()

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
        if self.history_text.endswith("|"):
            parser.feed("|")  # the phrase's last bar line: the answer may go on with it ("|]", "||", "|:")
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
