"""``improvd render``: a MIDI file to audio through FluidSynth and a General MIDI soundfont.

FluidSynth is run as its command-line program (Debian's fluidsynth package): it is the
renderer musicians already have, and no Python binding is needed for a one-shot file render.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from improvd import ImprovdError

SOUNDFONTS = ("/usr/share/sounds/sf2/FluidR3_GM.sf2", "/usr/share/sounds/sf2/default-GM.sf2",
              "/usr/share/soundfonts/default.sf2", "/usr/share/sounds/sf2/TimGM6mb.sf2")
FORMATS = {".wav": "wav", ".flac": "flac", ".ogg": "oga", ".oga": "oga", ".aiff": "aiff"}


def is_soundfont(path: Path) -> bool:
    """A SoundFont 2 (or 3) file: a RIFF chunk of form 'sfbk'. FluidSynth itself only warns on
    anything else and renders with its default soundfont, so the check must be ours."""
    try:
        with open(path, "rb") as f:
            head = f.read(12)
    except OSError:
        return False
    return len(head) == 12 and head[:4] == b"RIFF" and head[8:12] == b"sfbk"


def find_soundfont(given: str | None = None) -> Path:
    if given:
        p = Path(given)
        if not p.exists():
            raise ImprovdError(f"soundfont {p} does not exist: pass a .sf2 file or install fluid-soundfont-gm")
        if not p.is_file() or not is_soundfont(p):
            raise ImprovdError(f"soundfont {p} is not a SoundFont (.sf2/.sf3): pass a General MIDI .sf2 file")
        return p
    for cand in SOUNDFONTS:
        if Path(cand).exists():
            return Path(cand)
    raise ImprovdError("no General MIDI soundfont found: apt-get install fluid-soundfont-gm (or pass --soundfont FILE.sf2)")


def render(midi: Path, out: Path, soundfont: str | None = None, rate: int = 44100, gain: float = 0.7) -> Path:
    exe = shutil.which("fluidsynth")
    if exe is None:
        raise ImprovdError("render needs FluidSynth: apt-get install fluidsynth fluid-soundfont-gm")
    if not Path(midi).exists():
        raise ImprovdError(f"MIDI file {midi} does not exist: check the path")
    fmt = FORMATS.get(Path(out).suffix.lower())
    if fmt is None:
        raise ImprovdError(f"output {out}: unknown audio type; use .wav, .flac or .ogg")
    sf = find_soundfont(soundfont)
    tmp = Path(out).with_name(f".{Path(out).name}.part")
    cmd = [exe, "-ni", "-q", "-F", str(tmp), "-T", fmt, "-r", str(rate), "-g", str(gain), str(sf), str(midi)]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    fell_back = "not a SoundFont" in r.stderr  # it would have rendered with another soundfont
    if r.returncode != 0 or fell_back or not tmp.exists() or tmp.stat().st_size == 0:
        tmp.unlink(missing_ok=True)
        why = (r.stderr or r.stdout).strip().splitlines()
        raise ImprovdError(f"FluidSynth could not render {midi} ({why[-1] if why else 'no output'}): check the file with `improvd plot`")
    tmp.replace(out)
    return Path(out)
