"""A streaming ABC parser: characters go in one at a time, as the folk model samples them, and
notes come out (pitch, onset and duration in ticks on the 12-ticks-per-beat grid) as soon as
the text shows they are complete.

Written by hand because music21 (and every other ABC library at hand) parses whole strings
only: the daemon cannot wait for a whole tune before it plays the first note. music21 stays
the reference: the tests parse real tunes with both and compare pitches and durations, and
whole generated tunes are validated with music21.

A token is complete only when a character that cannot extend it arrives ("A" may still become
"A3/2", "A>" changes A's length, "A-" ties it to the next note), so a note is emitted when the
next token begins. ``feed`` never blocks: a half-written token just waits for more characters.
Handled: header fields (X T M L K; defaults per the ABC 2.1 standard), key signatures and
accidentals that last to the bar line, lengths (A3, A/, A//, A3/2), broken rhythm (> < >> <<),
tuplets ((3abc, (p:q:r), ties (-), rests (z x, Z bars), bar lines and repeats (| || |] [| |: :|
:: [1 [2 |1 :|2), chords [CEG], inline fields [K:..] [M:..] [L:..] and field lines in the body,
chord symbols in quotes (reported), annotations, decorations (!..! +..+ . ~ H L M O P S T u v),
grace notes {..} (skipped), slurs, comments, line continuations. Repeats are reported as marks,
not expanded (music21 keeps them unexpanded too).
"""

from __future__ import annotations

import copy
import re
from dataclasses import dataclass
from fractions import Fraction

from improvd.encoding.abc import LETTER_PC, TICKS_PER_WHOLE, Key, parse_key, parse_meter, parse_unit

NOTE_LETTERS = set("ABCDEFGabcdefg")
REST_LETTERS = set("zx")
DECORATIONS = set(".~HLMOPSTuvJR")
BAR_CHARS = set("|:")


@dataclass(frozen=True)
class AbcNote:
    pitch: int | None  # MIDI pitch (the highest of a chord), None for a rest
    onset: int  # ticks from the start of the tune body
    duration: int  # ticks
    pitches: tuple = ()  # every pitch of a [chord], empty for a single note or rest


@dataclass(frozen=True)
class AbcMark:
    kind: str  # bar | chord | field | end | tune
    text: str
    onset: int = 0


@dataclass
class _Tok:
    acc: str = ""
    letter: str = ""
    octave: int = 0
    length: str = ""


@dataclass
class _Pending:
    """A note whose length may still change (broken rhythm) or that may be tied onward."""

    pitch: int | None
    pitches: tuple
    ticks: Fraction
    tie: bool = False
    onset: Fraction | None = None


class AbcStream:
    """Feed characters; get notes and marks. Start in header mode (a whole tune from "X:") or,
    with ``key``/``meter``/``unit`` given, in body mode (the daemon's continuation of a line)."""

    def __init__(self, key: str | None = None, meter: str | None = None, unit: str | None = None,
                 propagate: str = "pitch"):
        # How far an explicit accidental carries to the bar line: "pitch" (all octaves, the ABC
        # 2.1 default), "octave" or "not" (ABC 1.x, and music21 on files with no %abc-2 line).
        if propagate not in ("pitch", "octave", "not"):
            raise ValueError(f"propagate must be pitch, octave or not, not {propagate!r}")
        self.propagate = propagate
        self.in_body = key is not None
        self.key: Key = parse_key(key or "C")
        self.meter = parse_meter(meter) if meter else Fraction(1)
        self.unit = parse_unit(unit) if unit else None
        self.fields: dict = {}
        self.t = Fraction(0)  # ticks, exact
        self.bar_start = Fraction(0)
        self.bar_lengths: list[Fraction] = []  # length of each completed bar
        self.n_notes = 0
        self.ended = False
        self._mode = "line_start"
        self._buf = ""
        self._tok: _Tok | None = None
        self._held: _Pending | None = None
        self._tied: _Pending | None = None
        self._broken = ""  # '>' or '<' repeated, between held note and the next
        self._next_factor = Fraction(1)
        self._tuplet: list = []  # [factor, notes left]
        self._bar_acc: dict = {}
        self._chord: list | None = None  # notes of a [chord] being read
        self._chord_notes: list = []
        self._chord_len = ""
        self._prev = ""
        self._out: list = []

    # -- public ---------------------------------------------------------------------------------
    @property
    def unit_ticks(self) -> Fraction:
        unit = self.unit
        if unit is None:
            unit = Fraction(1, 16) if self.meter is not None and self.meter < Fraction(3, 4) else Fraction(1, 8)
        return unit * TICKS_PER_WHOLE

    @property
    def bar_ticks(self) -> Fraction | None:
        return None if self.meter is None else self.meter * TICKS_PER_WHOLE

    @property
    def position(self) -> Fraction:
        """Ticks written so far, the held note counted (what a bar line now would close)."""
        extra = self._held.ticks if self._held is not None and self._held.onset is None else 0
        return self.t + extra

    def clone(self) -> "AbcStream":
        """An independent copy (the sampler rolls a rejected bar back to one)."""
        new = copy.copy(self)
        new.fields = dict(self.fields)
        new.bar_lengths = list(self.bar_lengths)
        new._bar_acc = dict(self._bar_acc)
        new._tuplet = list(self._tuplet)
        new._chord = list(self._chord) if self._chord is not None else None
        new._chord_notes = list(self._chord_notes)
        new._out = []
        for name in ("_tok", "_held", "_tied"):
            v = getattr(self, name)
            setattr(new, name, copy.copy(v) if v is not None else None)
        return new

    def feed(self, ch: str) -> list:
        """One character in; the notes and marks it completed out, oldest first."""
        self._out = []
        self._step(ch)
        self._prev = ch
        return self._out

    def feed_text(self, text: str) -> list:
        out = []
        for ch in text:
            out += self.feed(ch)
        return out

    def close(self) -> list:
        """The stream ended: whatever is still waiting is complete."""
        self._out = []
        self._finish_token()
        self._resolve_held()
        self._flush_tied()
        return self._out

    # -- dispatch ------------------------------------------------------------------------------
    def _step(self, ch: str) -> None:
        mode = self._mode
        if mode == "line_start":
            if ch == "\n":
                if self._prev == "\n":
                    self._end_tune()
                return
            if ch.isalpha():
                self._buf = ch
                self._mode = "field?"
                return
            self._mode = "body" if self.in_body else "text"
            self._step(ch)
            return
        if mode == "field?":
            if ch == ":":
                self._mode = "field"
                self._buf += ":"
                return
            held, self._buf = self._buf, ""
            self._mode = "body" if self.in_body else "text"
            self._step(held)
            self._prev = held
            self._step(ch)
            return
        if mode == "field":
            if ch == "\n":
                self._field(self._buf)
                self._buf = ""
                self._mode = "line_start"
                return
            self._buf += ch
            return
        if mode == "text":  # a non-field line in the header: free text, skipped
            if ch == "\n":
                self._mode = "line_start"
            return
        if mode == "comment":
            if ch == "\n":
                self._mode = "line_start"
            return
        if mode == "quote":
            if ch == '"':
                text = self._buf
                self._buf = ""
                self._mode = "body"
                if text[:1] in "ABCDEFG" and not text.startswith(("^", "_", "<", ">", "@")):
                    self._out.append(AbcMark("chord", text, int(round(self.position))))
                return
            self._buf += ch
            return
        if mode in ("deco!", "deco+"):
            if ch == mode[-1] or ch == "\n":
                self._mode = "body" if ch != "\n" else "line_start"
            return
        if mode == "grace":
            if ch == "}":
                self._mode = "body"
            return
        if mode == "inline":
            if ch == "]":
                self._field(self._buf, inline=True)
                self._buf = ""
                self._mode = "body"
                return
            self._buf += ch
            return
        if mode == "bracket":  # '[' seen: chord, inline field or ending
            self._bracket(ch)
            return
        if mode == "bar":
            if ch in BAR_CHARS or (ch == "]" and self._buf.endswith("|")):
                self._buf += ch
                return
            if ch.isdigit():
                self._buf += ch
                self._mode = "bar_ending"
                return
            self._finish_bar()
            self._step(ch)
            return
        if mode == "chord":
            self._chord_char(ch)
            return
        if mode == "chord_len":
            if ch.isdigit() or ch == "/":
                self._chord_len += ch
                return
            self._finish_chord(self._chord_len)
            self._step(ch)
            return
        if mode == "bar_ending":
            if ch.isdigit() or ch in ",-":
                self._buf += ch
                return
            self._finish_bar()
            self._step(ch)
            return
        if mode == "tuplet":
            if ch.isdigit() or ch == ":":
                self._buf += ch
                return
            self._start_tuplet(self._buf)
            self._buf = ""
            self._mode = "body"
            self._step(ch)
            return
        if mode == "paren":
            self._mode = "body"
            if ch.isdigit():
                self._mode = "tuplet"
                self._buf = ch
                return
            self._step(ch)  # a slur: nothing to do
            return
        if mode == "note":
            if self._extend_token(ch):
                return
            self._finish_token()
            self._step(ch)
            return
        self._body(ch)

    def _body(self, ch: str) -> None:
        if ch == "\n":
            self._mode = "line_start"
            return
        if ch in " \t`y\\":
            return
        if ch == "%":
            self._mode = "comment"
            return
        if ch == "-":
            target = self._held or self._tied
            if target is not None:
                target.tie = True
            return
        if ch in "<>":
            if self._held is not None:
                self._broken += ch
            return
        if ch in NOTE_LETTERS or ch in "^_=" or ch in REST_LETTERS or ch == "Z":
            self._resolve_held()
            self._tok = _Tok()
            self._mode = "note"
            self._extend_token(ch)
            return
        if ch in BAR_CHARS:
            self._resolve_held()
            self._buf = ch
            self._mode = "bar"
            return
        if ch == "[":
            self._resolve_held()
            self._buf = ""
            self._mode = "bracket"
            return
        if ch == "]":
            return
        if ch == '"':
            self._buf = ""
            self._mode = "quote"
            return
        if ch == "!":
            self._mode = "deco!"
            return
        if ch == "+":
            self._mode = "deco+"
            return
        if ch == "{":
            self._mode = "grace"
            return
        if ch == "(":
            self._mode = "paren"
            return
        # ')' ends a slur; decorations and anything else unknown carry no notes
        return

    # -- notes ----------------------------------------------------------------------------------
    def _extend_token(self, ch: str) -> bool:
        tok = self._tok
        if not tok.letter:
            if ch in "^_=" and len(tok.acc) < 2 and (not tok.acc or tok.acc == ch and ch != "="):
                tok.acc += ch
                return True
            if ch in NOTE_LETTERS or ((ch in REST_LETTERS or ch == "Z") and not tok.acc):
                tok.letter = ch
                return True
            return False  # an accidental alone: dropped
        if tok.letter in NOTE_LETTERS and not tok.length and ch in ",'":
            tok.octave += 1 if ch == "'" else -1
            return True
        if ch.isdigit() or ch == "/":
            tok.length += ch
            return True
        return False

    def _finish_token(self) -> None:
        if self._mode != "note" or self._tok is None:
            return
        tok, self._tok = self._tok, None
        self._mode = "body"
        if not tok.letter:
            return
        length = _length(tok.length)
        if self._chord is not None:
            if tok.letter.upper() in LETTER_PC:  # a rest inside [...] is not ABC: dropped, not fatal
                self._chord.append((self._pitch(tok), length))
            self._mode = "chord"
            return
        if tok.letter == "Z":
            bars = int(tok.length) if tok.length.isdigit() else 1
            ticks = (self.bar_ticks or TICKS_PER_WHOLE) * bars
            self._held = _Pending(None, (), Fraction(ticks))
            return
        pitch = None if tok.letter in REST_LETTERS else self._pitch(tok)
        self._held = _Pending(pitch, (), self.unit_ticks * length * self._factor())

    def _factor(self) -> Fraction:
        f = self._next_factor
        self._next_factor = Fraction(1)
        if self._tuplet:
            f *= self._tuplet[0]
            self._tuplet[1] -= 1
            if self._tuplet[1] <= 0:
                self._tuplet = []
        return f

    def _pitch(self, tok: _Tok) -> int:
        letter = tok.letter
        base = 60 if letter.isupper() else 72
        octave = tok.octave + (0 if letter.isupper() else 1)
        up = letter.upper()
        slot = up if self.propagate == "pitch" else (up, octave)
        if tok.acc:
            alter = {"^": 1, "^^": 2, "_": -1, "__": -2, "=": 0}[tok.acc]
            if self.propagate != "not":
                self._bar_acc[slot] = alter
        else:
            alter = self._bar_acc.get(slot, self.key.alter(up))
        return base + LETTER_PC[up] + 12 * tok.octave + alter

    def _resolve_held(self) -> None:
        """The held note can change no more: fix its length, place it, emit it unless tied on."""
        self._finish_token()
        held = self._held
        if held is None:
            return
        self._held = None
        if self._broken:
            n = len(self._broken)
            short = Fraction(1, 2 ** n)
            long = 2 - short
            if self._broken[0] == ">":
                held.ticks *= long
                self._next_factor = short
            else:
                held.ticks *= short
                self._next_factor = long
            self._broken = ""
        held.onset = self.t
        self.t += held.ticks
        tied = self._tied
        if tied is not None:
            if held.pitch is not None and held.pitch == tied.pitch and not held.pitches:
                tied.ticks += held.ticks
                tied.tie = held.tie
                if not tied.tie:
                    self._tied = None
                    self._emit(tied)
                return
            self._tied = None
            self._emit(tied)
        if held.tie and held.pitch is not None:
            self._tied = held
        else:
            self._emit(held)

    def _flush_tied(self) -> None:
        if self._tied is not None:
            t, self._tied = self._tied, None
            self._emit(t)

    def _emit(self, p: _Pending) -> None:
        on = int(round(p.onset))
        dur = max(1, int(round(p.onset + p.ticks)) - on)
        if p.pitch is not None:
            self.n_notes += 1
        self._out.append(AbcNote(p.pitch, on, dur, p.pitches))

    # -- brackets: chords, inline fields, endings ---------------------------------------------
    def _bracket(self, ch: str) -> None:
        if self._chord is None and not self._buf:
            if ch.isdigit():
                self._buf = "[" + ch
                self._mode = "bar_ending"
                return
            if ch == "|":
                self._buf = "[|"
                self._mode = "bar"
                return
            if ch.isalpha() and ch not in NOTE_LETTERS:
                self._buf = ch
                self._mode = "inline"
                return
            if ch in NOTE_LETTERS:
                self._buf = ch  # could be a chord or e.g. [A:...]: decide on the next char
                return
        if self._buf and self._chord is None:
            first, self._buf = self._buf, ""
            if ch == ":":
                self._buf = first + ":"
                self._mode = "inline"
                return
            self._chord = []
            self._tok = _Tok()
            self._extend_token(first)
            self._mode = "note"
            self._step(ch)
            return
        if self._chord is None:
            self._chord = []
        self._mode = "chord"
        self._chord_char(ch)

    def _chord_char(self, ch: str) -> None:
        if ch == "]":
            notes, self._chord = self._chord, None
            self._mode = "chord_len"
            self._chord_len = ""
            self._chord_notes = notes
            return
        if ch in NOTE_LETTERS or ch in "^_=":
            self._tok = _Tok()
            self._mode = "note"
            self._extend_token(ch)
            return
        # spaces, ties, decorations inside a chord: ignored

    def _finish_chord(self, length: str) -> None:
        notes = self._chord_notes
        self._chord_notes = []
        self._mode = "body"
        if not notes:
            return
        pitches = tuple(sorted(p for p, _l in notes))
        ticks = self.unit_ticks * notes[0][1] * _length(length) * self._factor()
        self._held = _Pending(pitches[-1], pitches, ticks)

    # -- bars and fields --------------------------------------------------------------------------
    def _finish_bar(self) -> None:
        text, self._buf = self._buf, ""
        self._mode = "body"
        self._resolve_held()
        self._bar_acc = {}
        length = self.t - self.bar_start
        if length > 0:
            self.bar_lengths.append(length)
        self.bar_start = self.t
        self._out.append(AbcMark("bar", text, int(round(self.t))))

    def _start_tuplet(self, spec: str) -> None:
        parts = spec.split(":")
        try:
            p = int(parts[0])
        except ValueError:
            return
        q = int(parts[1]) if len(parts) > 1 and parts[1] else None
        r = int(parts[2]) if len(parts) > 2 and parts[2] else p
        if q is None:
            compound = self.meter is not None and self.meter.numerator % 3 == 0 and self.meter.numerator > 3
            q = {2: 3, 3: 2, 4: 3, 6: 2, 8: 3}.get(p, 3 if compound else 2)
        if p > 0:
            self._tuplet = [Fraction(q, p), r]

    def _field(self, text: str, inline: bool = False) -> None:
        m = re.match(r"^\s*([A-Za-z])\s*:\s*(.*)$", text)
        if not m:
            return
        name, value = m.group(1), m.group(2).strip()
        if name == "X" and not inline:
            if self.in_body or self.fields:
                self._end_tune()
            self.fields = {"X": value}
            self.in_body = False
            self.ended = False
            self.bar_lengths = []
            self.n_notes = 0
            self.t = Fraction(0)
            self.bar_start = Fraction(0)
            self._out.append(AbcMark("tune", value))
            return
        if not self.in_body:
            self.fields.setdefault(name, value)
        if name == "K":
            self.key = parse_key(value)
            self._bar_acc = {}
            self.in_body = True
        elif name == "M":
            self.meter = parse_meter(value)
        elif name == "L":
            self.unit = parse_unit(value)
        else:
            return
        self._out.append(AbcMark("field", f"{name}:{value}", int(round(self.t))))

    def _end_tune(self) -> None:
        if self.ended:
            return
        self._finish_token()
        self._resolve_held()
        self._flush_tied()
        if self.in_body:
            length = self.t - self.bar_start
            if length > 0:
                self.bar_lengths.append(length)
            self.bar_start = self.t
            self.ended = True
            self._out.append(AbcMark("end", "", int(round(self.t))))


def _length(text: str) -> Fraction:
    if not text:
        return Fraction(1)
    m = re.match(r"^(\d*)(/*)(\d*)$", text)
    if not m:
        return Fraction(1)
    num = int(m.group(1)) if m.group(1) else 1
    slashes = len(m.group(2))
    if m.group(3):
        den = int(m.group(3)) * (2 ** max(0, slashes - 1))
    else:
        den = 2 ** slashes
    return Fraction(num, den) if num else Fraction(1)


def parse_text(text: str, **kw) -> tuple[list[AbcNote], "AbcStream"]:
    """Convenience: a whole text through the stream, one character at a time."""
    s = AbcStream(**kw)
    out = []
    for ch in text:
        out += s.feed(ch)
    out += s.close()
    return [n for n in out if isinstance(n, AbcNote)], s
