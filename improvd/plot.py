"""Piano-roll pictures of MIDI files: the performer and improvd in two colours (matplotlib)."""

from __future__ import annotations

from pathlib import Path

from improvd import ImprovdError

COLOURS = ("#2b6cb0", "#dd6b20", "#38a169", "#805ad5", "#d53f8c")


def piano_roll(midi_path: str | Path, out: str | Path, title: str | None = None) -> Path:
    """One row per pitch, one bar per note, a colour per track (legend: the track names)."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        from matplotlib.patches import Patch
    except ImportError:
        raise ImprovdError("plotting needs matplotlib: pip install matplotlib") from None
    import numpy as np
    from matplotlib.collections import PolyCollection
    from matplotlib.colors import to_rgba

    from improvd.midi.files import read_midi

    perf = read_midi(midi_path)
    if not perf.notes:
        raise ImprovdError(f"MIDI file {midi_path} has no notes to draw")
    names = dict(enumerate(perf.track_names))
    tracks = sorted({n.track for n in perf.notes})
    colour = {t: COLOURS[i % len(COLOURS)] for i, t in enumerate(tracks)}
    span = max(0.1, max(n.end for n in perf.notes))
    fig, ax = plt.subplots(figsize=(min(24, 4 + span / 3), 4.5), dpi=110)
    # one collection for all notes: a patch per note took minutes on a 100k-note file
    start = np.array([n.start for n in perf.notes])
    width = np.maximum(0.02, np.array([n.end - n.start for n in perf.notes]))
    low = np.array([n.pitch - 0.4 for n in perf.notes])
    boxes = np.stack([np.stack([start, low], 1), np.stack([start + width, low], 1),
                      np.stack([start + width, low + 0.8], 1), np.stack([start, low + 0.8], 1)], 1)
    faces = [to_rgba(colour[n.track], 0.35 + 0.65 * n.velocity / 127) for n in perf.notes]
    ax.add_collection(PolyCollection(boxes, facecolors=faces, linewidths=0))
    lo = min(n.pitch for n in perf.notes) - 2
    hi = max(n.pitch for n in perf.notes) + 2
    ax.set_xlim(0, span * 1.01)
    ax.set_ylim(lo, hi)
    beat = perf.beat_seconds
    bars = int(span / beat / 4) + 2
    if bars <= 400:  # more bar lines than that are a grey wash, and slow
        for b in range(bars):
            ax.axvline(b * 4 * beat, color="#999", lw=0.5, alpha=0.5)
    ax.set_xlabel("seconds (lines: bars)")
    ax.set_ylabel("MIDI pitch")
    from matplotlib.ticker import MaxNLocator
    ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_title(title or Path(midi_path).name)
    shown = tracks[:8]
    handles = [Patch(color=colour[t], label=names.get(t) or f"track {t}") for t in shown]
    if len(tracks) > len(shown):
        handles.append(Patch(color="#ccc", label=f"{len(tracks) - len(shown)} more tracks"))
    ax.legend(handles=handles, loc="upper right")
    fig.tight_layout()
    out = Path(out)
    try:
        fig.savefig(out)
    except OSError as e:  # a missing folder, no permission
        raise ImprovdError(f"piano roll {out} cannot be written ({e.strerror}): write it into an existing folder") from None
    except ValueError:  # matplotlib knows no such picture type
        raise ImprovdError(f"piano roll {out}: {out.suffix or 'no extension'} is not a picture type matplotlib writes: use .png, .svg or .pdf") from None
    finally:
        plt.close(fig)
    return out
