"""Where training pieces come from: the shared corpora, a user's folder, music21's corpus.

Every loader returns ``[(name, events)]`` of improvd.encoding.events.Event, so a family
trains on any source its encoding can read.
"""

from __future__ import annotations

import json
from pathlib import Path

from improvd import ImprovdError
from improvd.chords import Progression, detect_chord
from improvd.encoding import BAR_TICKS, TICKS_PER_BEAT
from improvd.evaluation.data import shared  # noqa: F401  (the families' default data: one rule for where it is)
from improvd.progress import track


def load_wjazzd(path: Path) -> list:
    from improvd.encoding.jazz import events_from_wjazzd

    out = []
    with open(path) as f:
        lines = f.readlines()
    for i, line in track(list(enumerate(lines, 1)), f"reading {path.name}", unit="solos"):
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
            out.append((f"melid{rec.get('melid', i)}", events_from_wjazzd(rec)))
        except (json.JSONDecodeError, KeyError, ValueError, TypeError) as e:
            raise ImprovdError(f"{path}:{i} is not a solo record ({e}): each line must be a JSON object with 'events' rows [pitch, duration, onset_in_bar, root_pc, type]") from None
    return out


def _chords_for(midi: Path, chords_file: Path | None):
    side = midi.with_suffix(".chords")
    src = side if side.exists() else chords_file
    if src is None:
        return None
    return Progression.parse(Path(src).read_text(), BAR_TICKS)


def load_midi_piece(path: Path, chords_file: Path | None = None, melody: int | None = None):
    """Melody = skyline of track ``melody`` or of the highest-pitched busy track; chords from a
    .chords file beside it, a track named 'chord(s)', or detected every two beats from the
    other tracks."""
    from improvd.encoding.events import melody_events
    from improvd.midi.files import Performance, read_midi

    perf = read_midi(path)
    notes = [n for n in perf.notes if n.channel != 9]
    if not notes:
        raise ImprovdError(f"MIDI file {path} has no notes (drums aside): nothing to learn from")
    by_track: dict[int, list] = {}
    for n in notes:
        by_track.setdefault(n.track, []).append(n)
    busy = {t: ns for t, ns in by_track.items() if len(ns) >= 16} or by_track
    if melody is not None:
        if melody not in by_track:
            raise ImprovdError(f"MIDI file {path} has no notes on track {melody}: tracks with notes are {sorted(by_track)}")
        busy[melody] = by_track[melody]
    melody_track = melody if melody is not None else max(busy, key=lambda t: sum(n.pitch for n in busy[t]) / len(busy[t]))
    prog = _chords_for(path, chords_file)
    if prog is not None:
        chord_at = prog.at
    else:
        import mido
        names = {}
        try:
            mid = mido.MidiFile(str(path))
            for ti, tr in enumerate(mid.tracks):
                names[ti] = (tr.name or "").lower()
        except Exception:
            pass
        chord_tracks = [t for t, nm in names.items() if "chord" in nm] or [t for t in by_track if t != melody_track]
        window = 2 * TICKS_PER_BEAT
        held: dict[int, list] = {}
        for n in notes:
            if n.track in chord_tracks:
                s, e = perf.to_grid(n.start), perf.to_grid(n.end)
                for w in range(s // window, max(s // window + 1, (e - 1) // window + 1)):
                    held.setdefault(w, []).append(n.pitch)
        detected = {w: detect_chord(ps) for w, ps in held.items()}

        def chord_at(tick, _d=detected, _w=window):
            w = tick // _w
            while w >= 0:
                if _d.get(w) is not None:
                    return _d[w]
                w -= 1
            return None
    mel = Performance(tuple(busy[melody_track]), perf.tempo, perf.beat_seconds, perf.path)
    events = melody_events(mel, chord_at)
    return (path.stem, events)


def load_music21(name: str, limit: int | None = None) -> list:
    """music21's bundled corpus (e.g. ``bach``): top part as melody, chords from the others or
    from its chord symbols. Lets ``improvd train`` work with no shared data at all."""
    from music21 import corpus, harmony

    from improvd.encoding.events import REST, Event

    paths = corpus.getComposer(name) or [p for p in corpus.getPaths() if name in str(p)]
    if not paths:
        raise ImprovdError(f"music21 corpus {name!r} is empty: try music21:bach or music21:essenFolksong")
    out = []
    # music21 parses each file for about half a second: minutes for a composer, so count them
    # first and show each one done
    for p in track(paths[: limit or None], f"parsing music21:{name}", unit="files"):
        try:
            score = corpus.parse(p)
        except Exception:
            continue
        works = score.scores if hasattr(score, "scores") and len(score.scores) else [score]
        for w in works:
            parts = list(w.parts) if w.parts else [w]
            top = parts[0].flatten()
            symbols = [(int(round(float(cs.offset) * TICKS_PER_BEAT)), cs) for cs in top.getElementsByClass(harmony.ChordSymbol)]
            lower = {}
            for part in parts[1:]:
                for n in part.flatten().notes:
                    s = int(round(float(n.offset) * TICKS_PER_BEAT))
                    for pch in n.pitches:
                        lower.setdefault(s // TICKS_PER_BEAT, []).append(pch.midi)

            def chord_at(tick, _sym=symbols, _low=lower):
                if _sym:
                    best = None
                    for t, cs in _sym:
                        if t <= tick:
                            best = cs
                    if best is not None and best.pitches:
                        return detect_chord([x.midi for x in best.pitches])
                return detect_chord(_low.get(tick // TICKS_PER_BEAT, []))

            events, last_end = [], None
            for n in top.notesAndRests:
                s = int(round(float(n.offset) * TICKS_PER_BEAT))
                d = max(1, int(round(float(n.quarterLength) * TICKS_PER_BEAT)))
                if n.isRest:
                    events.append(Event(REST, d, s, chord_at(s)))
                elif n.isChord:
                    events.append(Event(max(p.midi for p in n.pitches), d, s, chord_at(s)))
                else:
                    events.append(Event(n.pitch.midi, d, s, chord_at(s)))
            if len(events) >= 8:
                out.append((f"{Path(str(p)).stem}", events))
    return out


def load_event_pieces(specs: list, default: Path, chords_file: Path | None = None, limit: int | None = None) -> list:
    """``specs``: paths (.jsonl, .mid, folders of .mid; ``song.mid@11`` names the melody track)
    or ``music21:NAME``; the default if empty."""
    if not specs:
        if not default.exists():
            raise ImprovdError(f"default training data {default} is not here: pass --data FILE|FOLDER or --data music21:bach")
        specs = [str(default)]
    pieces = []
    for spec in specs:
        if str(spec).startswith("music21:"):
            pieces += load_music21(str(spec)[8:], limit)
            continue
        melody = None
        if "@" in str(spec) and str(spec).rsplit("@", 1)[1].isdigit():
            spec, melody = str(spec).rsplit("@", 1)[0], int(str(spec).rsplit("@", 1)[1])
        p = Path(spec)
        if not p.exists():
            raise ImprovdError(f"training data {p} does not exist: pass a .jsonl, a .mid, a folder of .mid files or music21:NAME")
        if p.is_dir():
            files = sorted(list(p.rglob("*.mid")) + list(p.rglob("*.midi")))
            if not files:
                raise ImprovdError(f"folder {p} holds no .mid files")
            for f in track(files[: limit or None], f"reading {p}", unit="files"):
                pieces.append(load_midi_piece(f, chords_file))
        elif p.suffix == ".jsonl":
            pieces += load_wjazzd(p)
        elif p.suffix.lower() in (".mid", ".midi"):
            pieces.append(load_midi_piece(p, chords_file, melody))
        else:
            raise ImprovdError(f"training data {p}: unknown kind {p.suffix!r}; use .jsonl, .mid or a folder")
    if limit:
        pieces = pieces[:limit]
    return pieces
