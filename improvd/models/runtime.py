"""onnxruntime, imported one way for the whole process: telemetry off before the library loads,
and one execution provider, chosen once at start (--provider) and logged.

Why here and not at each import: onnxruntime 1.2x+ on Linux starts Microsoft's 1DS telemetry
as its library loads (a device id and an event database under ~/.cache/Microsoft, an HTTP
client linked in). The switch is an environment variable read at load time, so it must be set
before the first ``import onnxruntime``; every improvd module and the trainer go through ort().
"""

from __future__ import annotations

import logging
import os

from improvd import ImprovdError

CHOICES = ("cpu", "cuda", "auto")
_NAMES = {"cpu": "CPUExecutionProvider", "cuda": "CUDAExecutionProvider"}
# onnxruntime and onnxruntime-gpu install the same import package, so pip cannot hold both and
# the gpu extra cannot replace the default dependency by itself: swap the builds by hand.
GPU_FIX = "pip uninstall -y onnxruntime onnxruntime-gpu && pip install onnxruntime-gpu"
_choice = "cpu"
_used = None  # what the last session opened really runs on

log = logging.getLogger("improvd")


def ort():
    """The onnxruntime module with telemetry off (env switch before load, events off after)."""
    os.environ["ORT_DISABLE_TELEMETRY"] = "1"
    import onnxruntime

    onnxruntime.disable_telemetry_events()
    # Fatal only on onnxruntime's own logger: its errors reach us as exceptions, which improvd
    # turns into one line; a CUDA fallback is caught by check_session() below, not by log text.
    onnxruntime.set_default_logger_severity(4)
    return onnxruntime


def use_provider(choice: str) -> str:
    """Set the process's provider (cpu, cuda or auto) before any model loads; refuse one this
    onnxruntime cannot offer, with the fix. The daemon's ready line says what it got (describe())."""
    global _choice
    if choice not in CHOICES:
        raise ImprovdError(f"provider {choice!r} is unknown: use one of {', '.join(CHOICES)}")
    rt = ort()
    have = rt.get_available_providers()
    both = _both_builds_installed()
    if both and choice != "cuda":  # cuda: refused below with the same fix
        log.warning("onnxruntime and onnxruntime-gpu are both installed and overwrite each other's files "
                    "(pip install 'improvd[gpu]' does that); keep one: %s", GPU_FIX)
    if choice == "cuda" and _NAMES["cuda"] not in have:
        why = "onnxruntime and onnxruntime-gpu are both installed, and the CPU build's files won" if both else \
            f"this onnxruntime {rt.__version__} is the CPU build (it has {', '.join(have)})"
        raise ImprovdError(f"provider cuda is not available: {why}: {GPU_FIX}, or use --provider cpu")
    _choice = choice
    return _choice


def _both_builds_installed() -> bool:
    from importlib import metadata

    found = 0
    for name in ("onnxruntime", "onnxruntime-gpu"):
        try:
            metadata.distribution(name)
            found += 1
        except metadata.PackageNotFoundError:
            pass
    return found == 2


def session_providers() -> list[str]:
    """What to pass to InferenceSession: CUDA first with the CPU for the ops it lacks, or the CPU alone."""
    if _choice == "cpu":
        return [_NAMES["cpu"]]
    return [_NAMES["cuda"], _NAMES["cpu"]]


def check_session(sess, where) -> None:
    """onnxruntime falls back to the CPU without raising when CUDA cannot start; --provider cuda
    asked for the GPU, so that is refused rather than run slower than promised in silence."""
    global _used
    got = sess.get_providers()[0]
    _used = "cuda" if got == _NAMES["cuda"] else "cpu"
    if _choice == "cuda" and got != _NAMES["cuda"]:
        raise ImprovdError(f"provider cuda: onnxruntime could not start CUDA for {where} (no GPU visible, or the CUDA "
                           "and cuDNN libraries onnxruntime-gpu needs are missing): fix the CUDA install or use --provider cpu")


def describe() -> str:
    """For the daemon's ready line, so a stage log says what ran the models (auto resolved)."""
    return f"onnxruntime {ort().__version__}, provider {_NAMES[used()]}" + (" (auto)" if _choice == "auto" else "")


def used() -> str:
    """cpu or cuda: what the models opened so far run on (auto resolved), for reports."""
    return _used or ("cpu" if _choice == "auto" else _choice)
