"""The 88-key piano roll of the RNN-RBM: one binary frame per grid step, shared by training and
the daemon so both agree on what a frame is.

Unit i is MIDI pitch 21 + i (A0..C8). A frame lasts ``frame_ticks`` ticks of the engine's
12-ticks-per-beat grid: 12 for the JSB benchmark (one quarter note, as in Boulanger-Lewandowski
et al. 2012), 6 for Nottingham (one eighth note). A pitch is ON in a frame when it sounds at
the frame's first tick or starts inside the frame, so a short note between two grid points is
not lost; held and repeated notes are not told apart (the benchmark pickles do not either).

numpy only: mido and music21 are imported inside the loaders that need them.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from improvd import ImprovdError
from improvd.encoding import TICKS_PER_BEAT

ENCODING_NAME = "pianoroll88"
ENCODING_VERSION = 1
LOWEST = 21
UNITS = 88
HIGHEST = LOWEST + UNITS - 1

JSB_FRAME_TICKS = TICKS_PER_BEAT  # quarter-note frames
NOTTINGHAM_FRAME_TICKS = TICKS_PER_BEAT // 2  # eighth-note frames


def card_encoding() -> dict:
    return {"name": ENCODING_NAME, "version": ENCODING_VERSION, "lowest": LOWEST, "units": UNITS}


# -- frames ------------------------------------------------------------------------------------
def frame(pitches) -> np.ndarray:
    """One 88-unit frame; pitches outside the piano are dropped (nothing can sound there)."""
    v = np.zeros(UNITS, np.float32)
    for p in pitches:
        i = int(p) - LOWEST
        if 0 <= i < UNITS:
            v[i] = 1.0
    return v


def pitches_of(v: np.ndarray) -> list[int]:
    return [int(i) + LOWEST for i in np.flatnonzero(np.asarray(v) > 0.5)]


def to_roll(steps) -> np.ndarray:
    """A list of steps (each a list of MIDI pitches) as a [T, 88] float32 roll."""
    roll = np.zeros((len(steps), UNITS), np.float32)
    for t, step in enumerate(steps):
        for p in step:
            i = int(p) - LOWEST
            if 0 <= i < UNITS:
                roll[t, i] = 1.0
    return roll


def from_roll(roll: np.ndarray) -> list[list[int]]:
    return [pitches_of(v) for v in np.asarray(roll)]


def notes_to_roll(notes, frame_ticks: int, end: int | None = None) -> np.ndarray:
    """(start_tick, end_tick, pitch) triples on the 12-per-beat grid to a roll of ``frame_ticks`` frames."""
    notes = [(int(s), max(int(e), int(s) + 1), int(p)) for s, e, p in notes]
    if not notes:
        return np.zeros((0, UNITS), np.float32)
    span = max(end or 0, max(e for _, e, _ in notes))
    n_frames = -(-span // frame_ticks)
    roll = np.zeros((n_frames, UNITS), np.float32)
    for s, e, p in notes:
        i = p - LOWEST
        if not 0 <= i < UNITS:
            continue
        first = s // frame_ticks  # the frame it starts in
        last = (e - 1) // frame_ticks  # the last frame whose first tick it still covers
        roll[first:last + 1, i] = 1.0
    return roll


def roll_to_notes(roll: np.ndarray, frame_ticks: int) -> list[tuple[int, int, int]]:
    """A roll back to (start_tick, end_tick, pitch): consecutive ON frames tie into one note."""
    roll = np.asarray(roll) > 0.5
    out = []
    for i in range(roll.shape[1]):
        col = roll[:, i]
        t = 0
        while t < len(col):
            if col[t]:
                s = t
                while t < len(col) and col[t]:
                    t += 1
                out.append((s * frame_ticks, t * frame_ticks, i + LOWEST))
            else:
                t += 1
    out.sort()
    return out


# -- loaders: each returns [(name, roll)] -----------------------------------------------------
def load_json(path: str | Path, split: str | None = "train") -> list:
    """The benchmark format: {"train": [...], "valid": [...]}, chorale = list of steps of pitches."""
    path = Path(path)
    try:
        raw = json.loads(path.read_text())
    except FileNotFoundError:
        raise ImprovdError(f"piano-roll file {path} does not exist: check the path") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ImprovdError(f"piano-roll file {path} is not valid JSON ({e}): expected {{\"train\": [[[pitch, ...], ...], ...], ...}}") from None
    if isinstance(raw, list):
        raw = {"all": raw}
    if not isinstance(raw, dict):
        raise ImprovdError(f"piano-roll file {path} is not a JSON object of splits: expected {{\"train\": [...], \"valid\": [...]}}")
    if split is None:
        split = "train" if "train" in raw else next(iter(raw), "")
    if split not in raw:
        raise ImprovdError(f"piano-roll file {path} has no split {split!r}: use one of {sorted(raw)}")
    out = []
    for k, piece in enumerate(raw[split]):
        try:
            out.append((f"{path.stem}:{split}:{k}", to_roll(piece)))
        except (TypeError, ValueError):
            raise ImprovdError(f"piano-roll file {path} split {split} piece {k} is not a list of steps of MIDI pitches: fix or drop it") from None
    return out


def load_midi_file(path: str | Path, frame_ticks: int = JSB_FRAME_TICKS) -> np.ndarray:
    """All non-drum notes of a MIDI file on the 12-per-beat grid, sampled every ``frame_ticks``."""
    from improvd.midi.files import read_midi

    perf = read_midi(path)
    notes = [(perf.to_grid(n.start), perf.to_grid(n.end), n.pitch) for n in perf.notes if n.channel != 9]
    if not notes:
        raise ImprovdError(f"MIDI file {path} has no notes (drums aside): nothing to encode")
    return notes_to_roll(notes, frame_ticks)


def load_midi_folder(path: str | Path, frame_ticks: int = JSB_FRAME_TICKS) -> list:
    path = Path(path)
    files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.suffix.lower() in (".mid", ".midi"))
    if not files:
        raise ImprovdError(f"{path} holds no .mid files: point at a MIDI file or a folder of them")
    from improvd.progress import track

    return [(f.stem, load_midi_file(f, frame_ticks)) for f in track(files, f"reading {path.name}", unit="files")]


def score_to_roll(score, frame_ticks: int, chords: bool = True) -> np.ndarray:
    """A music21 score (melody, parts, chord symbols) to a roll; chord symbols sound as close
    root-position voicings from C3 up, held until the next symbol, as the NMD MIDI renders them."""
    from music21 import harmony

    notes = []
    symbols = []
    for el in score.flatten().notesAndRests:
        if el.isRest:
            continue
        s = int(round(float(el.offset) * TICKS_PER_BEAT))
        if isinstance(el, harmony.ChordSymbol):
            symbols.append((s, el))
            continue
        e = s + max(1, int(round(float(el.quarterLength) * TICKS_PER_BEAT)))
        for p in el.pitches:
            notes.append((s, e, int(p.midi)))
    if not notes:
        return np.zeros((0, UNITS), np.float32)
    end = max(e for _, e, _ in notes)
    if chords and symbols:
        symbols.sort(key=lambda x: x[0])
        for k, (s, cs) in enumerate(symbols):
            e = symbols[k + 1][0] if k + 1 < len(symbols) else end
            if e <= s:
                continue
            try:
                pcs = [p.pitchClass for p in cs.pitches]
            except Exception:
                continue
            if not pcs:
                continue
            root = cs.root().pitchClass if cs.root() is not None else pcs[0]
            base = 48 + root  # C3 + root
            voiced, last = [], base - 1
            for pc in [root] + [q for q in pcs if q != root]:
                m = last + 1 + ((pc - (last + 1)) % 12)
                voiced.append(m)
                last = m
            for m in voiced:
                notes.append((s, e, m))
    return notes_to_roll(notes, frame_ticks, end)


def load_abc_folder(path: str | Path, frame_ticks: int = NOTTINGHAM_FRAME_TICKS, limit: int | None = None) -> list:
    """Every tune of every .abc file under ``path`` (Nottingham: chord symbols included)."""
    from music21 import converter

    path = Path(path)
    files = [path] if path.is_file() else sorted(path.rglob("*.abc"))
    if not files:
        raise ImprovdError(f"{path} holds no .abc files: point at an ABC file or a folder of them")
    from improvd.progress import track

    out = []
    for f in track(files, f"parsing {path.name} (music21)", unit="files"):  # music21: minutes for Nottingham
        try:
            parsed = converter.parse(str(f), format="abc")
        except Exception as e:
            raise ImprovdError(f"ABC file {f} cannot be parsed by music21 ({str(e)[:80]}): fix or remove it") from None
        scores = list(parsed.scores) if hasattr(parsed, "scores") else [parsed]
        for k, sc in enumerate(scores):
            roll = score_to_roll(sc, frame_ticks)
            if len(roll):
                out.append((f"{f.stem}:{k}", roll))
            if limit and len(out) >= limit:
                return out
    return out


def load_music21_bach(frame_ticks: int = JSB_FRAME_TICKS, limit: int | None = None) -> list:
    """music21's bundled Bach chorales (all parts), quarter-note frames like the JSB benchmark."""
    from music21 import corpus

    from improvd.progress import track

    chorales = corpus.chorales.Iterator(returnType="stream")
    out = []
    for k, sc in enumerate(track(chorales, "parsing music21:bach chorales", total=min(len(chorales), limit or len(chorales)),
                                 unit="chorales")):
        roll = score_to_roll(sc, frame_ticks, chords=False)
        if len(roll):
            out.append((f"bach:{k}", roll))
        if limit and len(out) >= limit:
            break
    return out


def load(spec: str, split: str | None = "train", frame_ticks: int | None = None, limit: int | None = None) -> list:
    """One data argument: a .json piano-roll file, a MIDI file or folder, an ABC file or folder,
    or ``music21:bach``. ``split`` picks the JSON split; folders named train/valid are used as
    given (pass the split folder itself)."""
    if spec.startswith("music21:"):
        name = spec.split(":", 1)[1]
        if name != "bach":
            raise ImprovdError(f"music21 corpus {name!r} is not supported here: use music21:bach")
        return load_music21_bach(frame_ticks or JSB_FRAME_TICKS, limit)
    p = Path(spec)
    if not p.exists():
        raise ImprovdError(f"data {spec} does not exist: give a .json piano-roll file, a MIDI/ABC file or folder, or music21:bach")
    if p.suffix.lower() == ".json":
        items = load_json(p, split)
    elif p.suffix.lower() == ".abc" or (p.is_dir() and any(p.rglob("*.abc"))):
        if p.is_dir() and split and (p / split).is_dir():
            p = p / split
        items = load_abc_folder(p, frame_ticks or NOTTINGHAM_FRAME_TICKS, limit)
    else:
        if p.is_dir() and split and (p / split).is_dir():
            p = p / split
        items = load_midi_folder(p, frame_ticks or JSB_FRAME_TICKS)
    return items[:limit] if limit else items


def save_json(splits: dict, path: str | Path, frame_ticks: int) -> Path:
    """Rolls in the benchmark format, so a corpus music21 took minutes to parse loads in a
    second next time (and travels to a GPU box that has no music21)."""
    out = {"format": "piano-roll as lists of sounding MIDI pitches per step", "frame_ticks": int(frame_ticks)}
    for name, items in splits.items():
        out[name] = [from_roll(r) for _, r in items]
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(out, separators=(",", ":")) + "\n")
    return path


def default_frame_ticks(spec: str) -> int:
    """The frame length the benchmark of ``spec`` uses: eighths for ABC folk tunes, quarters else
    (a JSON file written by ``save_json`` says its own)."""
    p = Path(spec)
    if p.suffix.lower() == ".json" and p.is_file():
        try:
            ft = json.loads(p.read_text()).get("frame_ticks")
        except (json.JSONDecodeError, UnicodeDecodeError, AttributeError):
            ft = None
        if isinstance(ft, int) and ft > 0:
            return ft
    if p.suffix.lower() == ".abc" or (p.is_dir() and any(p.rglob("*.abc"))):
        return NOTTINGHAM_FRAME_TICKS
    return JSB_FRAME_TICKS


def write_midi(roll: np.ndarray, path: str | Path, frame_ticks: int = JSB_FRAME_TICKS, tempo: float = 100.0,
               velocity: int = 80, name: str = "rnnrbm") -> Path:
    """A roll as a one-track MIDI file (ties of consecutive frames become one note)."""
    import mido

    from improvd.midi.files import write_midi as _write

    beat = 60.0 / tempo
    timed = []
    for s, e, p in roll_to_notes(roll, frame_ticks):
        timed.append((s / TICKS_PER_BEAT * beat, mido.Message("note_on", note=p, velocity=velocity)))
        timed.append((e / TICKS_PER_BEAT * beat, mido.Message("note_off", note=p, velocity=0)))
    _write(path, [(name, timed)], tempo)
    return Path(path)
