"""improvd: a real-time MIDI improvisation daemon.

The runtime package needs numpy, onnxruntime, mido, python-rtmidi and typer only; torch lives
in ``improvd.training`` (the repo's training/ folder), which only the offline commands import,
so a stage machine never loads it.
"""

import os

__version__ = "0.1.0"


class ImprovdError(Exception):
    """A failure the user can fix; the CLI prints its message as one line and exits 2."""


def file_info(path, what: str, error=ImprovdError, missing: str = "check the path",
              unreadable: str = "check the path") -> os.stat_result:
    """``stat()`` of a file the user named, or one line saying it is missing or unreadable:
    every bounded read (config, chord chart, MIDI file, model card) starts here, then checks
    the kind and size with its own limit."""
    try:
        return os.stat(path)
    except FileNotFoundError:
        raise error(f"{what} {path} does not exist: {missing}") from None
    except OSError as e:
        raise error(f"{what} {path} cannot be read ({e.strerror}): {unreadable}") from None
