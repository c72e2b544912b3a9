"""`improvd evaluate timing` runs on a tiny corpus in each format and prints its tables, tracker
rows beside the baselines' (the figures are not asserted: they are the evaluation's to report)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("librosa")
pytest.importorskip("mir_eval")
pytest.importorskip("pretty_midi")

from improvd.evaluation.timing import find_corpora, split_of  # noqa: E402


def valid_names(prefix: str, count: int) -> list[str]:
    names = (f"{prefix}{i}" for i in range(1000))
    return [n for n in names if split_of(n) == "valid"][:count]


def write_corpus(root: Path) -> None:
    rng = np.random.default_rng(0)
    jazz = root / "wjazzd_onsets"
    jazz.mkdir()
    rows = ["base_name,avgtempo,instrument,performer,title,recording_year"]
    for name, bpm in zip(valid_names("Solo_", 2), (160.0, 210.0)):
        beat = 60.0 / bpm
        lines = ["pitch,onset_s,duration_s"]
        for b in range(48):
            for sub in (0.0, 0.62):
                if rng.random() < 0.8:
                    lines.append(f"{int(rng.integers(60, 80))},{3.0 + (b + sub) * beat + rng.normal(0, 0.01):.4f},{0.4 * beat:.4f}")
        (jazz / f"{name}.csv").write_text("\n".join(lines) + "\n")
        rows.append(f"{name},{bpm},ts,Someone,Tune,1960")
    (jazz / "solos.csv").write_text("\n".join(rows) + "\n")

    import mido

    asap = root / "asap"
    meta = ["composer,title,folder,midi_performance,performance_annotations"]
    for piece in valid_names("Composer/Piece_", 1):
        folder = asap / piece
        folder.mkdir(parents=True)
        mid = mido.MidiFile(ticks_per_beat=480)
        track = mido.MidiTrack()
        mid.tracks.append(track)
        track.append(mido.MetaMessage("set_tempo", tempo=500000))
        beats, events = [], []
        t = 1.0
        for b in range(64):
            beats.append(t)
            pitches = (40, 52, 64) if b % 3 == 0 else (55, 67)
            for p in pitches:
                events += [(t, "note_on", p, 80), (t + 0.3, "note_off", p, 0)]
            events += [(t + 0.25, "note_on", 72, 60), (t + 0.4, "note_off", 72, 0)]
            t += 60.0 / (100.0 + 10 * np.sin(b / 8))
        now = 0.0
        for when, kind, p, v in sorted(events):
            ticks = int(round(mido.second2tick(when - now, 480, 500000)))
            track.append(mido.Message(kind, note=p, velocity=v, time=ticks))
            now += mido.tick2second(ticks, 480, 500000)
        mid.save(folder / "Player01.mid")
        ann = [f"{b:.6f}\t{b:.6f}\t{'db,3/4,0' if i == 0 else ('db' if i % 3 == 0 else 'b')}" for i, b in enumerate(beats)]
        (folder / "Player01_annotations.txt").write_text("\n".join(ann) + "\n")
        meta.append(f"Composer,Piece,{piece},{piece}/Player01.mid,{piece}/Player01_annotations.txt")
    (asap / "metadata.csv").write_text("\n".join(meta) + "\n")


def test_evaluate_timing_prints_both_tables(tmp_path):
    write_corpus(tmp_path)
    out = subprocess.run([sys.executable, "-m", "improvd", "evaluate", "timing", "--data", str(tmp_path)],
                         capture_output=True, text=True, timeout=120, env={**os.environ, "COLUMNS": "160"})
    assert out.returncode == 0, out.stderr[-2000:]
    text = out.stdout
    assert "WJazzD tempo, valid split: 2 solos" in text and "ASAP beats, valid split: 1 performances of 1 pieces" in text
    for row in ("tracker bpm, causal: after 8 bars", "tracker heard_bpm, causal: at the end", "librosa tempo: first 8 bars",
                "pretty_midi estimate_tempo: whole solo", "tracker, causal", "librosa beat_track, offline"):
        assert row in text


def test_either_corpus_folder_alone_is_accepted(tmp_path):
    write_corpus(tmp_path)
    assert set(find_corpora([str(tmp_path)])) == {"wjazzd", "asap"}
    assert list(find_corpora([str(tmp_path / "asap")])) == ["asap"]
    assert list(find_corpora([str(tmp_path / "wjazzd_onsets")])) == ["wjazzd"]
