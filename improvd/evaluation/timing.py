"""``improvd evaluate timing``: the tempo tracker on real playing, beside off-the-shelf baselines.

Two corpora (../shared/data/timing, SOURCES.md there):
- wjazzd_onsets/: Weimar Jazz Database solos as played, each with its annotated average tempo.
  The tracker's causal tempo after 4 bars, after 8 bars and at the end, scored Acc1 (within 4 %)
  and Acc2 (also at x2, x1/2, x3, x1/3). The solos carry no bar lines, so "after N bars" is the
  first onset plus N x 4 beats at the annotated tempo.
- asap/: classical piano performances with annotated beats and downbeats. The tracker's beats
  are emitted causally (each from the onsets up to its own time, as ``BeatGrid`` plays them)
  and scored with mir_eval: beat F-measure (70 ms window), CMLt, AMLt, downbeat F-measure.
  The tracker is told the piece's first time signature, as a performer tells the daemon
  --meter 6/8; not the tempo, not where the first beat is.

Baselines, run on the same items in the same run: librosa's tempo estimate and (ASAP) its
offline beat tracker on an onset envelope made from the MIDI onsets, and
pretty_midi.PrettyMIDI.estimate_tempo.

Split: an item is "valid" when int(sha1("improvd-timing/" + name), 16) % 4 == 0, else "train";
the name is a solo's base name, or a piece folder of ASAP (every performance of a piece lands on
the same side). The tracker's settings were tuned on "train" only. The corpora's own held-back
part is not in the folder and is not looked for.

mir_eval, librosa and pretty_midi are imported here only (the [timing] extra): the daemon
itself needs none of them.
"""

from __future__ import annotations

import csv
import hashlib
import math
import os
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from improvd import ImprovdError
from improvd.tempo import BeatGrid, TempoTracker, TrackerSettings, parse_meter

DEFAULT_DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "timing"
SPLIT_SALT = "improvd-timing/"
TEMPO_TOLERANCE = 0.04  # Acc1/Acc2: MIREX's 4 %
ACC2_FACTORS = (1.0, 2.0, 0.5, 3.0, 1.0 / 3.0)
ENVELOPE_SR, ENVELOPE_HOP = 22050, 512  # librosa's default frame rate (43 frames a second)
WJAZZD_CHECKPOINTS = (4, 8)  # bars


@dataclass(frozen=True)
class Notes:
    """Note-ons in time order: what the tracker is fed."""

    times: np.ndarray  # seconds
    pitches: np.ndarray
    velocities: np.ndarray
    durations: np.ndarray  # seconds (for pretty_midi's baseline only: the tracker never sees them)


@dataclass(frozen=True)
class Solo:
    name: str
    notes: Notes
    bpm: float  # annotated average tempo


@dataclass(frozen=True)
class Performance:
    name: str  # the MIDI file, relative to asap/
    piece: str  # the piece folder: the split's unit
    notes: Notes
    beats: np.ndarray  # annotated beat times (s), downbeats included
    downbeats: np.ndarray
    signature: str | None  # the first time signature annotated, e.g. "6/8"

    @property
    def beats_per_bar(self) -> int:
        return parse_meter(self.signature or "4/4")[0]


def split_of(name: str) -> str:
    """'valid' or 'train', stable across machines and independent of the corpora's held-back rule."""
    return "valid" if int(hashlib.sha1((SPLIT_SALT + name).encode()).hexdigest(), 16) % 4 == 0 else "train"


def _notes(rows: list[tuple[float, int, int, float]]) -> Notes:
    rows.sort(key=lambda r: (r[0], r[1]))
    a = np.array(rows, dtype=float).reshape(-1, 4)
    return Notes(a[:, 0].copy(), a[:, 1].astype(int), a[:, 2].astype(int), a[:, 3].copy())


# --------------------------------------------------------------------------- loading
def find_corpora(data: list[str]) -> dict[str, Path]:
    """The corpus folders under --data: the timing folder itself, or either subfolder alone."""
    roots = [Path(d) for d in data] or [DEFAULT_DATA]
    found: dict[str, Path] = {}
    for root in roots:
        if (root / "solos.csv").exists():
            found["wjazzd"] = root
        elif (root / "metadata.csv").exists():
            found["asap"] = root
        else:
            if (root / "wjazzd_onsets" / "solos.csv").exists():
                found["wjazzd"] = root / "wjazzd_onsets"
            if (root / "asap" / "metadata.csv").exists():
                found["asap"] = root / "asap"
    if not found:
        raise ImprovdError(f"no timing corpus under {', '.join(map(str, roots))}: pass --data with the folder holding "
                           "wjazzd_onsets/ (solos.csv) and asap/ (metadata.csv), or one of them")
    return found


def wjazzd_items(folder: Path, split: str) -> list[tuple[str, float]]:
    """(base name, annotated bpm) of the solos on one side of the split that have a CSV here."""
    with open(folder / "solos.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    return [(r["base_name"], float(r["avgtempo"])) for r in rows
            if split_of(r["base_name"]) == split and (folder / f"{r['base_name']}.csv").exists()]


def load_solo(folder: Path, name: str, bpm: float) -> Solo:
    rows = []
    with open(folder / f"{name}.csv", newline="") as f:
        for r in csv.DictReader(f):
            rows.append((float(r["onset_s"]), int(float(r["pitch"])), 64, float(r["duration_s"])))
    return Solo(name, _notes(rows), bpm)


def asap_items(folder: Path, split: str) -> list[tuple[str, str, str]]:
    """(performance MIDI, annotation file, piece folder) on one side of the split that are here."""
    with open(folder / "metadata.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    return [(r["midi_performance"], r["performance_annotations"], r["folder"]) for r in rows
            if split_of(r["folder"]) == split and (folder / r["midi_performance"]).exists()
            and (folder / r["performance_annotations"]).exists()]


def load_performance(folder: Path, midi: str, annotations: str, piece: str) -> Performance:
    import mido

    rows, now = [], 0.0
    held: dict[tuple[int, int], int] = {}
    for msg in mido.MidiFile(folder / midi):
        now += msg.time
        if msg.type == "note_on" and msg.velocity > 0:
            held[(msg.channel, msg.note)] = len(rows)
            rows.append([now, msg.note, msg.velocity, 0.0])
        elif msg.type in ("note_off", "note_on"):
            i = held.pop((msg.channel, msg.note), None)
            if i is not None:
                rows[i][3] = now - rows[i][0]
    beats, downbeats, signature = [], [], None
    for line in (folder / annotations).read_text().splitlines():
        parts = line.split("\t")
        if len(parts) < 3:
            continue
        t, fields = float(parts[0]), parts[2].split(",")
        beats.append(t)
        if fields[0] == "db":
            downbeats.append(t)
        if signature is None and len(fields) > 1 and "/" in fields[1]:
            signature = fields[1]
    return Performance(midi, piece, _notes([tuple(r) for r in rows]), np.array(beats), np.array(downbeats), signature)


# --------------------------------------------------------------------------- the tracker, causally
def follow_tempo(notes: Notes, checkpoints: list[float], settings: TrackerSettings | None = None) -> list[tuple[float, float]]:
    """(bpm, heard_bpm) at each checkpoint time, from the notes before it; then at the last note."""
    tracker = TempoTracker(settings=settings)
    out, pending = [], sorted(checkpoints)
    for t, p, v in zip(notes.times, notes.pitches, notes.velocities):
        while pending and pending[0] <= t:
            e = tracker.estimate(pending.pop(0))
            out.append((e.bpm, e.heard_bpm))
        tracker.onset(t, p, v)
    for when in pending + [float(notes.times[-1])]:
        e = tracker.estimate(when)
        out.append((e.bpm, e.heard_bpm))
    return out


def follow_beats(notes: Notes, meter: int | str, settings: TrackerSettings | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Beats and downbeats as the daemon's grid would play them: each from onsets up to its time."""
    tracker = TempoTracker(meter=meter, settings=settings)
    grid = BeatGrid(tracker)
    beats = []
    for t, p, v in zip(notes.times, notes.pitches, notes.velocities):
        if grid.time is not None:
            beats += grid.advance(math.nextafter(t, -math.inf))
        tracker.onset(t, p, v)
        beats += grid.advance(t)
    beats += grid.advance(float(notes.times[-1]) + 2.0)  # the grid rings on a little after the last note
    times = np.array([b.time for b in beats])
    down = np.array([b.time for b in beats if b.downbeat])
    return times, down


# --------------------------------------------------------------------------- baselines
def onset_envelope(notes: Notes, end: float | None = None) -> np.ndarray:
    """An onset-strength envelope at librosa's default frame rate: each note-on an impulse."""
    fps = ENVELOPE_SR / ENVELOPE_HOP
    times = notes.times if end is None else notes.times[notes.times < end]
    n = int(math.ceil((float(times.max()) if len(times) else 0.0) * fps)) + 8
    env = np.zeros(n)
    np.add.at(env, np.rint(times * fps).astype(int), 1.0)
    return env


def librosa_tempo(notes: Notes, end: float | None = None) -> float:
    import librosa

    env = onset_envelope(notes, end)
    return float(librosa.feature.tempo(onset_envelope=env, sr=ENVELOPE_SR, hop_length=ENVELOPE_HOP)[0])


def librosa_beats(notes: Notes) -> np.ndarray:
    import librosa

    _, beats = librosa.beat.beat_track(onset_envelope=onset_envelope(notes), sr=ENVELOPE_SR,
                                       hop_length=ENVELOPE_HOP, units="time")
    return np.asarray(beats, dtype=float)


def pretty_midi_tempo(notes: Notes, end: float | None = None) -> float:
    import pretty_midi

    pm = pretty_midi.PrettyMIDI()
    inst = pretty_midi.Instrument(program=0)
    for t, p, v, d in zip(notes.times, notes.pitches, notes.velocities, notes.durations):
        if end is None or t < end:
            inst.notes.append(pretty_midi.Note(velocity=int(v), pitch=int(p), start=float(t), end=float(t + max(d, 0.01))))
    pm.instruments.append(inst)
    return float(pm.estimate_tempo())


# --------------------------------------------------------------------------- scores
def tempo_hits(estimate: float, reference: float) -> tuple[bool, bool]:
    """(Acc1, Acc2) for one estimate: within 4 % of the reference, or of x2, x1/2, x3, x1/3 of it."""
    def near(f: float) -> bool:
        return abs(estimate - f * reference) <= TEMPO_TOLERANCE * f * reference
    return near(1.0), any(near(f) for f in ACC2_FACTORS)


def beat_scores(reference: np.ndarray, estimated: np.ndarray) -> dict[str, float]:
    """mir_eval's beat F-measure, CMLt and AMLt, after its usual 5 s trim of both sides."""
    import mir_eval

    ref, est = mir_eval.beat.trim_beats(reference), mir_eval.beat.trim_beats(estimated)
    _cmlc, cmlt, _amlc, amlt = mir_eval.beat.continuity(ref, est)
    return {"F": mir_eval.beat.f_measure(ref, est), "CMLt": cmlt, "AMLt": amlt}


def downbeat_f(reference: np.ndarray, estimated: np.ndarray) -> float:
    import mir_eval

    return mir_eval.beat.f_measure(mir_eval.beat.trim_beats(reference), mir_eval.beat.trim_beats(estimated))


# --------------------------------------------------------------------------- one item each (run in workers)
TRACKER_ROWS = ("tracker bpm, causal: after 4 bars", "tracker bpm, causal: after 8 bars", "tracker bpm, causal: at the end")
HEARD_ROWS = ("tracker heard_bpm, causal: after 4 bars", "tracker heard_bpm, causal: after 8 bars",
              "tracker heard_bpm, causal: at the end")
NET_ROWS = ("tracker bpm, tempo_net toggled: after 4 bars", "tracker bpm, tempo_net toggled: after 8 bars",
            "tracker bpm, tempo_net toggled: at the end")
BASELINE_ROWS = ("librosa tempo: first 8 bars", "librosa tempo: whole solo",
                 "pretty_midi estimate_tempo: first 8 bars", "pretty_midi estimate_tempo: whole solo")
TEMPO_ROWS = TRACKER_ROWS + HEARD_ROWS + NET_ROWS + BASELINE_ROWS


def toggled(settings: TrackerSettings | None) -> TrackerSettings | None:
    """The same settings with the learned onset model switched (config tempo_net), for the rows
    beside the default's; None when the package holds no net."""
    import dataclasses

    from improvd import tempo_net

    s = settings or TrackerSettings()
    if tempo_net.bundled() is None:
        return None
    return dataclasses.replace(s, net=not s.net)


def toggled_label(settings: TrackerSettings | None) -> str:
    return "tempo_net = " + ("false" if (settings or TrackerSettings()).net else "true")


def score_solo(job: tuple) -> dict:
    folder, name, bpm, settings, baselines = job
    solo = load_solo(Path(folder), name, bpm)
    beat = 60.0 / bpm
    start = float(solo.notes.times[0])
    bars = [start + n * 4 * beat for n in WJAZZD_CHECKPOINTS]
    t0 = time.perf_counter()
    estimates = follow_tempo(solo.notes, bars, settings)
    tracker_s = time.perf_counter() - t0
    rows = dict(zip(TRACKER_ROWS, (e[0] for e in estimates))) | dict(zip(HEARD_ROWS, (e[1] for e in estimates)))
    other = toggled(settings)
    if other is not None:
        rows |= dict(zip(NET_ROWS, (e[0] for e in follow_tempo(solo.notes, bars, other))))
    if baselines:
        eight = bars[-1]
        rows |= dict(zip(BASELINE_ROWS, (librosa_tempo(solo.notes, eight), librosa_tempo(solo.notes),
                                         pretty_midi_tempo(solo.notes, eight), pretty_midi_tempo(solo.notes))))
    return {"name": name, "bpm": bpm, "estimates": rows, "notes": len(solo.notes.times), "tracker_s": tracker_s}


def score_performance(job: tuple) -> dict:
    folder, (midi, annotations, piece), settings, baselines = job
    perf = load_performance(Path(folder), midi, annotations, piece)
    t0 = time.perf_counter()
    beats, downbeats = follow_beats(perf.notes, perf.signature or 4, settings)
    tracker_s = time.perf_counter() - t0
    rows = {"tracker, causal": {**beat_scores(perf.beats, beats), "downbeat F": downbeat_f(perf.downbeats, downbeats)}}
    other = toggled(settings)
    if other is not None:
        nb, nd = follow_beats(perf.notes, perf.signature or 4, other)
        rows["tracker, tempo_net toggled"] = {**beat_scores(perf.beats, nb), "downbeat F": downbeat_f(perf.downbeats, nd)}
    if baselines:
        rows["librosa beat_track, offline"] = {**beat_scores(perf.beats, librosa_beats(perf.notes)), "downbeat F": float("nan")}
    return {"name": midi, "rows": rows, "notes": len(perf.notes.times), "tracker_s": tracker_s}


def _map(fn, jobs: list, workers: int) -> list:
    if workers <= 1 or len(jobs) < 2:
        return [fn(j) for j in jobs]
    import multiprocessing

    with multiprocessing.get_context("spawn").Pool(workers) as pool:
        return pool.map(fn, jobs, chunksize=1)


def _pick(items: list, n: int, seed: int) -> list:
    """The first n of the items in a seeded order (all when n is 0): a subset for a quick look."""
    if not n or n >= len(items):
        return items
    order = np.random.default_rng(seed).permutation(len(items))[:n]
    return [items[i] for i in sorted(order)]


def run_wjazzd(folder: Path, split: str, n: int = 0, seed: int = 0, settings: TrackerSettings | None = None,
               baselines: bool = True, workers: int = 1) -> dict:
    items = _pick(wjazzd_items(folder, split), n, seed)
    results = _map(score_solo, [(str(folder), name, bpm, settings, baselines) for name, bpm in items], workers)
    table = {}
    for row in TEMPO_ROWS:
        hits = [tempo_hits(r["estimates"][row], r["bpm"]) for r in results if row in r["estimates"]]
        if hits:
            table[row] = {"Acc1 %": 100 * np.mean([h[0] for h in hits]), "Acc2 %": 100 * np.mean([h[1] for h in hits]), "n": len(hits)}
    return {"split": split, "n": len(results), "table": table, "items": results,
            "notes": sum(r["notes"] for r in results), "tracker_s": sum(r["tracker_s"] for r in results)}


def run_asap(folder: Path, split: str, n: int = 0, seed: int = 0, settings: TrackerSettings | None = None,
             baselines: bool = True, workers: int = 1) -> dict:
    items = _pick(asap_items(folder, split), n, seed)
    results = _map(score_performance, [(str(folder), item, settings, baselines) for item in items], workers)
    table = {}
    for row in ("tracker, causal", "tracker, tempo_net toggled", "librosa beat_track, offline"):
        got = [r["rows"][row] for r in results if row in r["rows"]]
        if got:
            table[row] = {k: float(np.mean([g[k] for g in got])) for k in got[0]} | {"n": len(got)}
    return {"split": split, "n": len(results), "pieces": len({i[2] for i in items}), "table": table, "items": results,
            "notes": sum(r["notes"] for r in results), "tracker_s": sum(r["tracker_s"] for r in results)}


def _workers() -> int:
    return max(1, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1))


def evaluate(model: str, data: list[str], split: str | None, n: int, seed: int, workers: int | None = None) -> dict:
    """The registry's evaluate signature; ``model`` is "timing", ``n`` items per corpus (0: all)."""
    from rich.console import Console
    from rich.table import Table

    try:
        import librosa  # noqa: F401
        import mir_eval  # noqa: F401
        import pretty_midi  # noqa: F401
    except ModuleNotFoundError as e:
        raise ImprovdError(f"evaluate timing needs {e.name}: pip install -e '.[timing]'") from None
    split = split or "valid"
    if split not in ("train", "valid"):
        raise ImprovdError(f"split {split!r}: the timing corpora here have train and valid (the rest is held back)")
    workers = workers or _workers()
    console = Console(width=max(110, Console().width))  # the tables' titles carry the split and n: keep them on a line
    out = {}
    for corpus, folder in find_corpora(data).items():
        t0 = time.perf_counter()
        if corpus == "wjazzd":
            r = run_wjazzd(folder, split, n, seed, workers=workers)
            title = (f"WJazzD tempo, {split} split: {r['n']} solos ({r['notes']} notes); "
                     "bars = first onset + 4 beats at the annotated tempo")
            table = Table(title=title, min_width=len(title) + 4)
            for c in ("", "Acc1 %", "Acc2 %", "n"):
                table.add_column(c, justify="left" if not c else "right")
            for row, v in r["table"].items():
                table.add_row(row.replace("tempo_net toggled", toggled_label(None)), f"{v['Acc1 %']:.1f}", f"{v['Acc2 %']:.1f}", str(v["n"]))
        else:
            r = run_asap(folder, split, n, seed, workers=workers)
            title = (f"ASAP beats, {split} split: {r['n']} performances of {r['pieces']} pieces "
                     f"({r['notes']} notes); mir_eval, 70 ms, first 5 s trimmed")
            table = Table(title=title, min_width=len(title) + 4)
            for c in ("", "beat F", "CMLt", "AMLt", "downbeat F", "n"):
                table.add_column(c, justify="left" if not c else "right")
            for row, v in r["table"].items():
                db = "n/a" if math.isnan(v["downbeat F"]) else f"{v['downbeat F']:.3f}"
                table.add_row(row.replace("tempo_net toggled", toggled_label(None)), f"{v['F']:.3f}", f"{v['CMLt']:.3f}", f"{v['AMLt']:.3f}", db, str(v["n"]))
        r["wall_s"] = time.perf_counter() - t0
        table.caption = (f"tracker: {r['tracker_s'] / max(r['notes'], 1) * 1e6:.0f} us a note on average "
                         f"(feeding and reading included); {r['wall_s']:.0f} s wall with {workers} workers")
        console.print(table)
        out[corpus] = r
    return out
