"""Shared paths and helpers for the improvd tests."""

from __future__ import annotations

import sys
from pathlib import Path

import mido
import pytest

TESTS = Path(__file__).resolve().parent
REPO = TESTS.parent
PHRASES = TESTS / "data"
SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
METHENY = SHARED / "jazz" / "original_metheny.mid"

if str(TESTS) not in sys.path:
    sys.path.insert(0, str(TESTS))  # jackkit, phrases


@pytest.fixture
def metheny() -> Path:
    if not METHENY.exists():
        pytest.skip("the Metheny MIDI file is not in ../shared/data/jazz")
    return METHENY


def file_events(path) -> dict[str, list[tuple[float, str, int, int]]]:
    """A MIDI file as {track name: [(seconds, type, note, velocity)]}, note_on v0 read as note_off."""
    mid = mido.MidiFile(str(path))
    out: dict = {}
    tempo = 500000
    # written files keep their single tempo in track 0; read the tracks' times with it
    for msg in mid.tracks[0]:
        if msg.type == "set_tempo":
            tempo = msg.tempo
            break
    for i, tr in enumerate(mid.tracks):
        name, t, evs = f"track{i}", 0, []
        for msg in tr:
            t += msg.time
            if msg.type == "track_name":
                name = msg.name
            elif msg.type in ("note_on", "note_off"):
                kind = "note_on" if msg.type == "note_on" and msg.velocity > 0 else "note_off"
                evs.append((mido.tick2second(t, mid.ticks_per_beat, tempo), kind, msg.note, msg.velocity))
        out[name] = evs
    return out


def hanging(events) -> list[int]:
    """Pitches left sounding: a note-on without a later note-off (events in time order)."""
    on: dict[int, int] = {}
    for _t, kind, note, _v in events:
        if kind == "note_on":
            on[note] = on.get(note, 0) + 1
        elif on.get(note):
            on[note] -= 1
    return sorted(p for p, n in on.items() if n)

# Property tests explore the same examples on every run (300-odd each), so CI is repeatable;
# HYPOTHESIS_PROFILE=explore searches afresh, with more examples, when hunting bugs.
from hypothesis import settings as _hsettings

_hsettings.register_profile("repeatable", derandomize=True)
_hsettings.register_profile("explore", max_examples=3000)
_hsettings.load_profile(__import__("os").environ.get("HYPOTHESIS_PROFILE", "repeatable"))
