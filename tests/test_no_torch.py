"""The daemon never imports torch (nor music21): a stage machine needs neither."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

PROBE = r"""
import sys
from improvd.config import load_settings
from improvd.midi.files import read_midi
from improvd.replay import replay
from improvd.models import load_model, bundled_models
import improvd.live, improvd.cli, improvd.bench
perf = read_midi(sys.argv[1])
for card in bundled_models():
    m = load_model(card.stem)
    for mode in m.modes:
        replay(perf, load_settings(None, {"model": card.stem, "mode": mode, "seed": 1, "bars": 1}, environ={}), model=m)
bad = sorted(n for n in ("torch", "music21", "matplotlib", "onnx") if n in sys.modules)
print(",".join(bad) or "clean")
"""


def test_runtime_imports_no_training_stack():
    r = subprocess.run([sys.executable, "-c", PROBE, str(REPO / "examples" / "blues_calls.mid")],
                       capture_output=True, text=True, timeout=300, cwd=REPO)
    assert r.returncode == 0, r.stderr[-2000:]
    assert r.stdout.strip().splitlines()[-1] == "clean"
