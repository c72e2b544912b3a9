"""The live panel: what it shows, and that it appears only on a terminal."""

from __future__ import annotations

import io
import math

from rich.console import Console

from improvd.view import LiveView, Snapshot, render


def text_of(snapshot: Snapshot) -> str:
    console = Console(file=io.StringIO(), width=80, color_system=None)
    console.print(render(snapshot))
    return console.file.getvalue()


def test_the_panel_shows_state_tempo_chord_model_and_timing_within_80_columns():
    out = text_of(Snapshot("answering", 96.5, 0.82, "Dm7", "jazz", "call-response", 12, 30, 0.42, 0.15, 1, 0))
    for part in ("answering", "96.5 BPM followed (82% sure)", "Dm7", "jazz (call-response)", "12", "30", "0.420 ms", "0.150 ms"):
        assert part in out
    assert max(len(line) for line in out.splitlines()) <= 80


def test_no_figures_yet_shows_a_dash_not_nan():
    out = text_of(Snapshot("idle", 120.0, None, "", "rnnrbm", "harmonize", 0, 0, math.nan, math.nan, 0, 0))
    assert "nan" not in out and "-" in out


def test_no_panel_off_a_terminal():
    assert not LiveView.wanted(io.StringIO())
