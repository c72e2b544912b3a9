"""Replays that must not change while the code around them is reshaped.

Every file in tests/data and examples/ is replayed through every bundled model in every mode
it plays, with a fixed seed, and some of them again with other flags (a chord chart, the
metronome, the performer's mutate / loop / model-switch controls). The sha256 of what improvd
sent (every message with its time) and of the MIDI file written are kept in
tests/golden_replays.json. A refactoring keeps them byte for byte; a change that means to
alter what improvd plays says so by updating the file:

    IMPROVD_UPDATE_GOLDEN=1 python3 -m pytest -q tests/test_golden_replays.py
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import replace
from pathlib import Path

import mido
import pytest

from improvd.config import load_settings
from improvd.midi.files import read_midi
from improvd.models import load_model
from improvd.replay import replay, write_result

ROOT = Path(__file__).resolve().parents[1]
GOLDEN = Path(__file__).with_name("golden_replays.json")
INPUTS = sorted((ROOT / "tests" / "data").glob("*.mid")) + sorted((ROOT / "examples").glob("*.mid"))
PLAYS = [("jazz", "call-response"), ("jazz", "duet"), ("deepjazz", "call-response"), ("deepjazz", "duet"),
         ("folk", "call-response"), ("folk", "duet"), ("rnnrbm", "harmonize"), ("rnnrbm", "duet")]  # rnnrbm refuses call-response (#15)
CHART = "F7 | Bb7 | F7 | F7 | Bb7 | Bb7 | F7 | F7 | Gm7 | C7 | F7 | C7"


def with_controls(src: Path, dst: Path) -> Path:
    """``src`` with the performer's controls added on the way: mutate (CC23) after the first
    answer, the loop pedal (CC24) held for two bars, and before all that the model CC (CC26) to
    the second model."""
    mid = mido.MidiFile(src)
    beat = mid.ticks_per_beat
    track = mido.MidiTrack()
    events = [(8 * beat, 26, 127), (24 * beat, 23, 127), (24 * beat + 1, 23, 0), (40 * beat, 24, 127),
              (48 * beat, 24, 0)]
    last = 0
    for tick, control, value in events:
        track.append(mido.Message("control_change", control=control, value=value, time=tick - last))
        last = tick
    mid.tracks.append(track)
    mid.save(dst)
    return dst


def cases(tmp: Path) -> list[tuple[str, Path, dict]]:
    out = []
    for path in INPUTS:
        for model, mode in PLAYS:
            out.append((f"{path.name}:{model}:{mode}", path, {"model": model, "mode": mode}))
    blues = ROOT / "examples" / "blues_calls.mid"
    out.append(("blues:jazz:chart", blues, {"model": "jazz", "mode": "call-response", "chords": CHART}))
    out.append(("blues:jazz:metronome", blues, {"model": "jazz", "mode": "call-response", "metronome": "on"}))
    out.append(("blues:deepjazz:chart+count-in", blues, {"model": "deepjazz", "mode": "duet", "chords": CHART,
                                                         "metronome": "count-in"}))
    out.append(("blues:rnnrbm:harmonize-chart", blues, {"model": "rnnrbm", "mode": "harmonize", "chords": CHART, "voices": 3}))
    controls = with_controls(blues, tmp / "blues_controls.mid")
    out.append(("blues:jazz:controls", controls, {"model": "jazz", "mode": "call-response", "models": ["deepjazz"]}))
    return out


_models: dict = {}


def digest(path: Path, flags: dict, out: Path) -> dict:
    perf = read_midi(path)
    settings = load_settings(None, {"tempo": round(perf.tempo, 3), "seed": 7, **flags}, environ={})
    model = _models.get(settings.model) or _models.setdefault(settings.model, load_model(settings.model))
    model.reset()
    res = replay(perf, settings, model=model, controls=True)
    stream = "\n".join(f"{t:.9f} {m.hex()}" for t, m in res.machine)
    write_result(res, out)
    return {"sent": hashlib.sha256(stream.encode()).hexdigest()[:24],
            "file": hashlib.sha256(out.read_bytes()).hexdigest()[:24],
            "messages": len(res.machine)}


def test_replays_are_unchanged(tmp_path):
    got = {name: digest(path, flags, tmp_path / "out.mid") for name, path, flags in cases(tmp_path)}
    if os.environ.get("IMPROVD_UPDATE_GOLDEN"):
        GOLDEN.write_text(json.dumps(got, indent=1, sort_keys=True) + "\n")
        pytest.skip(f"golden replays written to {GOLDEN.name}")
    want = json.loads(GOLDEN.read_text())
    assert set(got) == set(want), "the set of golden cases changed: update the file on purpose"
    changed = {name: (want[name], got[name]) for name in got if got[name] != want[name]}
    assert not changed, f"{len(changed)} of {len(got)} replays changed: {sorted(changed)[:8]}"
    assert sum(v["messages"] for v in got.values()) > 1000  # the replays played something
