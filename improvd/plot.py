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
    import mido

    from improvd.midi.files import read_midi

    perf = read_midi(midi_path)
    if not perf.notes:
        raise ImprovdError(f"MIDI file {midi_path} has no notes to draw")
    names = {}
    try:
        for i, tr in enumerate(mido.MidiFile(str(midi_path)).tracks):
            names[i] = tr.name or f"track {i}"
    except Exception:
        pass
    tracks = sorted({n.track for n in perf.notes})
    colour = {t: COLOURS[i % len(COLOURS)] for i, t in enumerate(tracks)}
    span = max(n.end for n in perf.notes)
    fig, ax = plt.subplots(figsize=(min(24, 4 + span / 3), 4.5), dpi=110)
    for n in perf.notes:
        ax.add_patch(plt.Rectangle((n.start, n.pitch - 0.4), max(0.02, n.end - n.start), 0.8,
                                   color=colour[n.track], alpha=0.35 + 0.65 * n.velocity / 127, linewidth=0))
    lo = min(n.pitch for n in perf.notes) - 2
    hi = max(n.pitch for n in perf.notes) + 2
    ax.set_xlim(0, span * 1.01)
    ax.set_ylim(lo, hi)
    beat = perf.beat_seconds
    for b in range(int(span / beat / 4) + 2):
        ax.axvline(b * 4 * beat, color="#999", lw=0.5, alpha=0.5)
    ax.set_xlabel("seconds (lines: bars)")
    ax.set_ylabel("MIDI pitch")
    from matplotlib.ticker import MaxNLocator
    ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_title(title or Path(midi_path).name)
    ax.legend(handles=[Patch(color=colour[t], label=names.get(t, f"track {t}")) for t in tracks], loc="upper right")
    fig.tight_layout()
    out = Path(out)
    fig.savefig(out)
    plt.close(fig)
    return out
