"""ABC text as the folk family sees it: a fixed character vocabulary, tunes, corpora, and the
performer's phrase written as ABC so the char-level LSTM can listen to it.

Shared by training and the daemon, so it imports numpy only; music21 is imported inside the
one loader that needs its corpus paths.

The vocabulary is fixed (newline plus printable ASCII) rather than read off a corpus, as the
MIT lab does: a model trained on one corpus then still reads every other one, the card stores
the exact list, and a changed list is a new encoding version.
"""

from __future__ import annotations

import random
import re
import unicodedata
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np

from improvd import ImprovdError
from improvd.encoding import TICKS_PER_BEAT
from improvd.encoding.events import REST, Event

ENCODING_NAME = "abc-chars"
ENCODING_VERSION = 1

VOCAB = "\n" + "".join(chr(c) for c in range(32, 127))
CHAR_INDEX = {ch: i for i, ch in enumerate(VOCAB)}
TICKS_PER_WHOLE = 4 * TICKS_PER_BEAT  # a beat is a quarter note on the daemon's grid

HEADER_FIELDS = ("X", "T", "M", "L", "K")


# -- characters -------------------------------------------------------------------------------

def to_ascii(text: str) -> str:
    """Accents folded to ASCII, tabs to spaces, CRs dropped, anything else outside VOCAB dropped."""
    text = text.replace("\r\n", "\n").replace("\r", "\n").replace("\t", " ")
    text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii")
    return "".join(ch for ch in text if ch in CHAR_INDEX)


def encode(text: str) -> np.ndarray:
    try:
        return np.fromiter((CHAR_INDEX[ch] for ch in text), np.int64, len(text))
    except KeyError as e:
        raise ImprovdError(f"character {e.args[0]!r} is outside the abc-chars vocabulary: pass the text through to_ascii() first") from None


def decode(ids) -> str:
    return "".join(VOCAB[int(i)] for i in ids)


# -- tunes --------------------------------------------------------------------------------------

def split_tunes(text: str) -> list[str]:
    """Tunes are blank-line separated blocks that carry an X: field; free text between is dropped."""
    text = to_ascii(text)
    blocks = re.split(r"\n[ \t]*\n", text)
    out = []
    for b in blocks:
        lines = [ln.rstrip() for ln in b.strip("\n").split("\n")]
        while lines and not lines[0].startswith("X:"):
            lines.pop(0)
        if lines and any(ln.startswith("K:") for ln in lines):
            out.append("\n".join(lines))
    return out


def header(tune: str) -> dict:
    """The header fields of a tune (up to and including K:), first value of each."""
    out: dict = {}
    for ln in tune.split("\n"):
        m = re.match(r"^([A-Za-z]):\s*(.*)$", ln)
        if not m:
            break
        out.setdefault(m.group(1), m.group(2).strip())
        if m.group(1) == "K":
            break
    return out


_DECORATION_LETTERS = set("HIJLMNOPQRSTUVWYhijklmnopqrstuvwy~.")


def normalize_tune(tune: str) -> str:
    """Another collection's tune in the style of the lab's irish.abc: headers X T M L K only,
    no comments, chord or annotation strings, !decorations!, single-letter decorations or line
    continuations. Inline field lines in the body (M:, L:, K:) are kept: they change the notes."""
    lines = tune.split("\n")
    head, body, in_body = {}, [], False
    for ln in lines:
        ln = ln.split("%", 1)[0].rstrip()
        m = re.match(r"^([A-Za-z]):\s*(.*)$", ln)
        if not in_body:
            if m:
                head.setdefault(m.group(1), m.group(2).strip())
                if m.group(1) == "K":
                    in_body = True
            continue
        if m:
            if m.group(1) in ("M", "L", "K"):
                body.append(f"{m.group(1)}:{m.group(2).strip()}")
            continue
        body.append(_clean_body_line(ln))
    head.setdefault("X", "1")
    head.setdefault("T", "Untitled")
    head.setdefault("M", "4/4")
    head.setdefault("L", _default_unit(head["M"]))
    text = "\n".join(f"{k}:{head[k]}" for k in HEADER_FIELDS) + "\n"
    joined = "\n".join(b for b in body if b.strip())
    joined = re.sub(r"\\\s*\n", "", joined)
    return text + joined


def _clean_body_line(ln: str) -> str:
    ln = re.sub(r'"[^"]*"', "", ln)
    ln = re.sub(r"![^!\n]*!", "", ln)
    ln = re.sub(r"\+[^+\n]*\+", "", ln)
    out, depth = [], 0
    for ch in ln:
        if ch == "[":
            depth += 1
        elif ch == "]":
            depth = max(0, depth - 1)
        if depth == 0 and ch in _DECORATION_LETTERS:
            continue
        out.append(ch)
    return re.sub(r" {2,}", " ", "".join(out)).strip()


def _default_unit(meter: str) -> str:
    m = parse_meter(meter)
    return "1/16" if m is not None and m < Fraction(3, 4) else "1/8"


# -- corpora -------------------------------------------------------------------------------------

def _read(path: Path) -> str:
    try:
        return Path(path).read_bytes().decode("utf-8", errors="replace")
    except OSError as e:
        raise ImprovdError(f"cannot read ABC file {path} ({e.strerror}): check the path") from None


def load_abc_file(path: Path, normalize: bool = False) -> list[str]:
    tunes = split_tunes(_read(path))
    return [normalize_tune(t) for t in tunes] if normalize else tunes


def load_irish(path: Path) -> list[str]:
    """The lab's corpus as it is (its own style is the reference style)."""
    tunes = load_abc_file(path)
    if not tunes:
        raise ImprovdError(f"{path} holds no ABC tunes (blank-line separated, each with X: and K:): check the file")
    return tunes


def load_folder(folder: Path, normalize: bool = True) -> list[str]:
    """Every tune of every .abc file under ``folder`` (a user's collection, Nottingham, ...)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise ImprovdError(f"ABC folder {folder} does not exist: pass a folder of .abc files")
    out = []
    for p in sorted(folder.rglob("*.abc")):
        out += load_abc_file(p, normalize)
    if not out:
        raise ImprovdError(f"ABC folder {folder} holds no tunes in *.abc files: check the folder")
    return out


def load_nottingham(root: Path, split: str) -> list[str]:
    return load_folder(Path(root) / split)


def load_music21_abc(names=("oneills1850", "ryansMammoth")) -> list[str]:
    """music21's bundled ABC collections (O'Neill's 1850, Ryan's Mammoth), normalized."""
    try:
        from music21 import corpus
    except ImportError:
        raise ImprovdError("the music21 ABC corpora need music21: pip install music21") from None
    out = []
    for p in sorted(corpus.getPaths(fileExtensions=("abc",))):
        if any(n in Path(p).parts for n in names):
            out += load_abc_file(Path(p), normalize=True)
    return out


def split_valid(tunes: list[str], fraction: float = 0.1, seed: int = 0) -> tuple[list[str], list[str]]:
    """Train/valid split by whole tune, stable for a seed."""
    idx = list(range(len(tunes)))
    random.Random(seed).shuffle(idx)
    n_valid = max(1, int(round(len(tunes) * fraction)))
    valid = set(idx[:n_valid])
    return [t for i, t in enumerate(tunes) if i not in valid], [t for i, t in enumerate(tunes) if i in valid]


def join_tunes(tunes: list[str]) -> str:
    """The training text: tunes separated by one blank line, as in irish.abc."""
    return "\n\n".join(tunes) + "\n\n"


# -- keys, meters, units -------------------------------------------------------------------------

_TONIC_FIFTHS = {"C": 0, "G": 1, "D": 2, "A": 3, "E": 4, "B": 5, "F": -1}
_MODE_SHIFT = {"maj": 0, "ion": 0, "mix": -1, "dor": -2, "min": -3, "aeo": -3, "m": -3, "phr": -4, "loc": -5, "lyd": 1}
_SHARP_ORDER = "FCGDAEB"
LETTER_PC = {"C": 0, "D": 2, "E": 4, "F": 5, "G": 7, "A": 9, "B": 11}


@dataclass(frozen=True)
class Key:
    """A key signature: the alteration (-1, 0, +1, ...) each letter carries."""

    name: str
    accidentals: tuple  # ((letter, alter), ...) for altered letters only
    tonic_pc: int = 0

    def alter(self, letter: str) -> int:
        return dict(self.accidentals).get(letter.upper(), 0)

    @property
    def fifths(self) -> int:
        return sum(a for _l, a in self.accidentals)

    @property
    def pitch_classes(self) -> frozenset:
        """The seven pitch classes the signature leaves its letters on."""
        natural = {"C": 0, "D": 2, "E": 4, "F": 5, "G": 7, "A": 9, "B": 11}
        return frozenset((pc + self.alter(letter)) % 12 for letter, pc in natural.items())


def parse_key(text: str) -> Key:
    """K: field value: tonic (+ # or b), optional mode (any prefix of the mode's name), optional
    explicit accidentals (^f _b =c); HP/Hp for Highland pipes; none/empty for C."""
    s = text.strip()
    s = re.split(r"\s(?:clef|middle|transpose|octave|stafflines)=", s)[0].strip()
    if s in ("", "none"):
        return Key("C", (), 0)
    if s == "HP":
        return Key("HP", (), 9)
    if s == "Hp":
        return Key("Hp", (("F", 1), ("C", 1)), 9)
    m = re.match(r"^([A-Ga-g])([#b]?)\s*([A-Za-z]*)\s*(.*)$", s)
    if not m:
        raise ImprovdError(f"K:{text} is not a key this parser reads (e.g. K:G, K:D Major, K:Ador): fix the K: field")
    tonic, acc, mode, rest = m.group(1).upper(), m.group(2), m.group(3).lower(), m.group(4)
    fifths = _TONIC_FIFTHS[tonic] + (7 if acc == "#" else -7 if acc == "b" else 0)
    shift = 0
    if mode:
        key3 = mode[:3] if mode not in ("m",) else "m"
        if key3 not in _MODE_SHIFT:
            if mode.startswith("exp"):
                key3 = "maj"
            else:
                raise ImprovdError(f"K:{text} has mode {mode!r}, not one of major, minor, dorian, mixolydian, phrygian, lydian, locrian: fix the K: field")
        shift = _MODE_SHIFT[key3]
    n = fifths + shift
    alters = {}
    if n > 0:
        for letter in _SHARP_ORDER[:min(n, 7)]:
            alters[letter] = 1 + (1 if n > 7 + _SHARP_ORDER.index(letter) else 0)
    elif n < 0:
        for letter in _SHARP_ORDER[::-1][:min(-n, 7)]:
            alters[letter] = -1 - (1 if -n > 7 + _SHARP_ORDER[::-1].index(letter) else 0)
    if not re.fullmatch(r"(\s*(\^\^|\^|__|_|=)[A-Ga-g])*\s*", rest) and not mode.startswith("exp"):
        raise ImprovdError(f"K:{text} has trailing text {rest!r} that is not a list of accidentals: fix the K: field")
    for am in re.finditer(r"(\^\^|\^|__|_|=)([A-Ga-g])", rest):
        alters[am.group(2).upper()] = {"^^": 2, "^": 1, "__": -2, "_": -1, "=": 0}[am.group(1)]
    tonic_pc = (LETTER_PC[tonic] + (1 if acc == "#" else -1 if acc == "b" else 0)) % 12
    return Key(s, tuple(sorted((k, v) for k, v in alters.items() if v)), tonic_pc)


def parse_meter(text: str) -> Fraction | None:
    """M: value as a fraction of a whole note (C = 4/4, C| = 2/2); None for free meter."""
    s = text.strip()
    if s == "C":
        return Fraction(1)
    if s == "C|":
        return Fraction(1)
    if s in ("", "none"):
        return None
    m = re.fullmatch(r"\(?([\d+]+)\)?\s*/\s*(\d+)", s)
    if not m:
        return None
    num = sum(int(x) for x in m.group(1).split("+") if x)
    return Fraction(num, int(m.group(2))) if int(m.group(2)) else None


def parse_unit(text: str) -> Fraction:
    m = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*", text)
    if not m or int(m.group(2)) == 0 or int(m.group(1)) == 0:
        raise ImprovdError(f"L:{text} is not a unit note length (e.g. L:1/8): fix the L: field")
    return Fraction(int(m.group(1)), int(m.group(2)))


# -- the performer's phrase as ABC -------------------------------------------------------------

def _spellings(pitch: int):
    """(letter, octave_index, alter) candidates for a MIDI pitch, natural first."""
    out = []
    for letter, pc in LETTER_PC.items():
        for alter in (0, 1, -1):
            if (pc + alter) % 12 == pitch % 12:
                octave = (pitch - alter - pc) // 12 - 1
                out.append((letter, octave, alter))
    return sorted(out, key=lambda s: abs(s[2]))


def _letter_text(letter: str, octave: int) -> str:
    """ABC for a letter in a scientific octave: C4 = C, C5 = c, C6 = c', C3 = C,."""
    if octave >= 5:
        return letter.lower() + "'" * (octave - 5)
    return letter + "," * (4 - octave)


def _length_text(ticks: int, unit_ticks: Fraction) -> str:
    f = Fraction(ticks) / unit_ticks
    if f == 1:
        return ""
    if f.denominator == 1:
        return str(f.numerator)
    if f.numerator == 1:
        return "/" if f.denominator == 2 else f"/{f.denominator}"
    return f"{f.numerator}/{f.denominator}"


@dataclass
class AbcWriter:
    """Writes a monophonic line of events as ABC body text, bar by bar, with key-signature
    spelling, accidentals that last to the bar line, ties across bar lines and rests.

    ``bar_origin`` is the absolute tick of a downbeat: bar lines fall at
    bar_origin + k * bar ticks. Stateful so the daemon can write events as they complete."""

    key: Key
    meter: Fraction = Fraction(1)
    unit: Fraction = Fraction(1, 8)
    bar_origin: int = 0

    def __post_init__(self):
        self.bar_ticks = int(self.meter * TICKS_PER_WHOLE)
        self.unit_ticks = self.unit * TICKS_PER_WHOLE
        self._bar_acc: dict = {}
        self._pos: int | None = None  # absolute tick written up to

    def _spell(self, pitch: int) -> str:
        cands = _spellings(pitch)
        for letter, octave, alter in cands:
            current = self._bar_acc.get((letter, octave), self.key.alter(letter))
            if current == alter:
                return _letter_text(letter, octave)
        prefer = 1 if self.key.fifths > 0 else -1 if self.key.fifths < 0 else 1
        cands.sort(key=lambda s: (abs(s[2]), s[2] != prefer))
        letter, octave, alter = cands[0]
        self._bar_acc[(letter, octave)] = alter
        mark = {1: "^", -1: "_", 0: "=", 2: "^^", -2: "__"}[alter]
        return mark + _letter_text(letter, octave)

    def write(self, events: list[Event]) -> str:
        """ABC for the events, bar lines included; events must follow each other in time.

        A rest shorter than half a unit after a note is the performer lifting a key before the
        next one, not a rest a folk tune would write: it is given to the note (legato)."""
        out = []
        short = self.unit_ticks / 2
        merged: list[Event] = []
        for ev in events:
            if ev.pitch == REST and ev.duration < short:
                if merged and merged[-1].pitch != REST:
                    last = merged[-1]
                    merged[-1] = Event(last.pitch, last.duration + ev.duration, last.onset, last.chord)
                continue  # else a gap the next onset still shows (a zero-length rest after an answer)
            merged.append(ev)
        for ev in merged:
            if ev.duration <= 0:
                continue
            if self._pos is None:
                self._pos = ev.onset
            if ev.onset > self._pos:  # a gap nobody reported: a rest
                out.append(self._piece(REST, self._pos, ev.onset - self._pos))
            start = max(ev.onset, self._pos)
            end = ev.onset + ev.duration
            if end > start:
                out.append(self._piece(ev.pitch, start, end - start))
                self._pos = end
        return "".join(out)

    def _piece(self, pitch: int, start: int, dur: int) -> str:
        """One note or rest, split (and tied) at bar lines, a bar line written at each crossing."""
        parts = []
        t, remaining = start, dur
        while remaining > 0:
            to_bar = self.bar_ticks - ((t - self.bar_origin) % self.bar_ticks)
            n = min(remaining, to_bar)
            sym = "z" if pitch == REST else self._spell(pitch)
            length = _length_text(n, self.unit_ticks)
            remaining -= n
            t += n
            tie = "-" if (remaining > 0 and pitch != REST) else ""
            parts.append(sym + length + tie)
            if (t - self.bar_origin) % self.bar_ticks == 0:
                parts.append("|")
                self._bar_acc = {}
        return "".join(parts)


def header_text(key: str = "D", meter: str = "4/4", unit: str = "1/8", title: str = "improvd", number: int = 1) -> str:
    """A tune header in the lab corpus's style (its Z: line included), ending at the body."""
    return f"X:{number}\nT:{title}\nZ: id:improvd-{number}\nM:{meter}\nL:{unit}\nK:{key}\n"


_MAJOR_PROFILE = np.array([6.35, 2.23, 3.48, 2.33, 4.38, 4.09, 2.52, 5.19, 2.39, 3.66, 2.29, 2.88])
_MINOR_PROFILE = np.array([6.33, 2.68, 3.52, 5.38, 2.60, 3.53, 2.54, 4.75, 3.98, 2.69, 3.34, 3.17])
_PC_NAMES = ["C", "Db", "D", "Eb", "E", "F", "F#", "G", "Ab", "A", "Bb", "B"]


def detect_key(events: list[Event]) -> str | None:
    """Krumhansl-Schmuckler key finding over duration-weighted pitch classes; None if too few notes."""
    hist = np.zeros(12)
    n = 0
    for e in events:
        if e.pitch != REST:
            hist[e.pitch % 12] += e.duration
            n += 1
    if n < 4:
        return None
    best, name = -np.inf, None
    for tonic in range(12):
        for prof, suffix in ((_MAJOR_PROFILE, " Major"), (_MINOR_PROFILE, " Minor")):
            r = np.corrcoef(hist, np.roll(prof, tonic))[0, 1]
            if r > best:
                best, name = r, _PC_NAMES[tonic] + suffix
    return name
