"""improvd: a real-time MIDI improvisation daemon.

The runtime package needs numpy, onnxruntime, mido, python-rtmidi and typer only; torch lives
in the separate ``training`` package so a stage machine never loads it.
"""

__version__ = "0.1.0"


class ImprovdError(Exception):
    """A failure the user can fix; the CLI prints its message as one line and exits 2."""
