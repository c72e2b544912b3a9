"""``improvd evaluate MODEL --task response``: does an answer answer its call?

Issue 15 asked two things of call and response, and this module measures both on the valid
solos of the Weimar Jazz Database (the jazz card's ``valid_names``; the held-back split is
never looked for):

* **Relevance.** Consecutive phrases of a real solo are a call (phrase n, played to the daemon
  with the solo's own chords) and the soloist's own reply (phrase n+1). Each model answers the
  call through the daemon's own code path (:func:`improvd.replay.replay`: the engine, rules,
  scheduler and model of ``improvd run``, on a virtual clock, seeded). Six metrics say how much
  more a response resembles ITS OWN call than the calls of other solos: "own minus shuffled"
  for similarities, "shuffled minus own" for distances, so larger is always more responsive
  and a response that ignores its call scores about 0. The soloist's real next phrase is the
  human row the models are read against. Intervals are bootstrapped over solos (the unit that
  was sampled; phrases of one solo are not independent).
* **Degeneration.** After a long call (16 bars of a real solo, with its chart and without any),
  an 8-bar answer's distinct pitches, the share of its most common pitch and the share of its
  pitch 4-grams that repeat an earlier one, beside the same figures for the soloist's own next
  8 bars: a collapsed answer (``77 77 77 78 ...``) stands out of the human range at once.

Metrics and phrase extraction are pure functions over event lists (no model, no I/O), so the
tests pin them on tiny synthetic phrases; only :func:`answer` runs a model.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, replace
from typing import Callable

import numpy as np

from improvd import ImprovdError
from improvd.chords import Chord
from improvd.encoding import BAR_TICKS, TICKS_PER_BEAT
from improvd.encoding.events import REST, Event

PHRASE_REST = TICKS_PER_BEAT  # a silence of a beat or more ends a phrase
MIN_NOTES = 4
MAX_PHRASE_TICKS = 4 * BAR_TICKS
LONG_CALL_BARS = 16
LONG_ANSWER_BARS = 8
LONG_MIN_CALL_NOTES = 16  # a "long call" that is mostly silence says nothing about long calls
LONG_MIN_HUMAN_NOTES = 8
INTERVAL_LIMIT = 12  # signed interval bins -12..12; wider leaps count in the edge bins
BOOTSTRAP = 2000
LEVEL = 0.95
ANSWER_VELOCITY = 90  # WJazzD has no dynamics; the performer's velocity only feeds the velocity rule
TEMPO = 120.0


# -- phrases: pure functions over a solo's events ------------------------------------------------
def notes_of(events) -> tuple[Event, ...]:
    return tuple(e for e in events if e.pitch != REST)


def span(notes) -> int:
    """Ticks from the first onset to the last release."""
    return max(e.onset + e.duration for e in notes) - notes[0].onset if notes else 0


def split_phrases(events, rest: int = PHRASE_REST) -> list[tuple[Event, ...]]:
    """The solo's notes cut wherever a silence of ``rest`` ticks or more separates two notes
    (a written rest or a gap between one note's end and the next onset)."""
    notes = notes_of(events)
    phrases: list[list[Event]] = []
    end = None
    for e in notes:
        if end is None or e.onset - end >= rest:
            phrases.append([])
        phrases[-1].append(e)
        end = e.onset + e.duration if end is None else max(end, e.onset + e.duration)
    return [tuple(p) for p in phrases]


def is_phrase(notes, min_notes: int = MIN_NOTES, max_ticks: int = MAX_PHRASE_TICKS) -> bool:
    """A call or a reply: enough notes to have a shape, short enough to be one phrase."""
    return len(notes) >= min_notes and span(notes) <= max_ticks


def phrase_pairs(events) -> list[tuple[tuple[Event, ...], tuple[Event, ...]]]:
    """(phrase n, phrase n+1) for every two consecutive phrases that both qualify."""
    ph = split_phrases(events)
    return [(a, b) for a, b in zip(ph, ph[1:]) if is_phrase(a) and is_phrase(b)]


def chords_from(chord_at: Callable[[int], Chord | None], start: int, length: int) -> tuple:
    """The chord sounding at each tick of ``[start, start + length)``."""
    return tuple(chord_at(t) for t in range(start, start + max(1, length)))


@dataclass(frozen=True)
class Exchange:
    """One call and one response to it. ``chords[k]`` is the chord under tick ``start + k`` of
    the response (what the chord-tone metric reads); onsets are absolute ticks."""

    solo: str
    call: tuple
    response: tuple
    start: int
    chords: tuple


# -- features and metrics: pure functions ---------------------------------------------------------
def pitch_class_histogram(notes) -> np.ndarray:
    """Duration-weighted: a held note says more about the key than a passing one."""
    h = np.zeros(12)
    for e in notes:
        h[e.pitch % 12] += e.duration
    return h / h.sum() if h.sum() else h


def onset_histogram(notes) -> np.ndarray:
    """Where in the bar the notes start, 48 bins: the phrase's groove."""
    h = np.zeros(BAR_TICKS)
    for e in notes:
        h[e.onset % BAR_TICKS] += 1
    return h / h.sum() if h.sum() else h


def interval_histogram(notes) -> np.ndarray:
    """Signed intervals between consecutive notes, -12..12: the melodic shape."""
    h = np.zeros(2 * INTERVAL_LIMIT + 1)
    ordered = sorted(notes, key=lambda e: (e.onset, e.pitch))
    for a, b in zip(ordered, ordered[1:]):
        h[int(np.clip(b.pitch - a.pitch, -INTERVAL_LIMIT, INTERVAL_LIMIT)) + INTERVAL_LIMIT] += 1
    return h / h.sum() if h.sum() else h


def histogram_intersection(a: np.ndarray, b: np.ndarray) -> float:
    """Shared mass of two normalised histograms: 1 identical, 0 disjoint; NaN if either is empty."""
    if not a.sum() or not b.sum():
        return math.nan
    return float(np.minimum(a, b).sum())


def mean_pitch(notes) -> float:
    return float(np.mean([e.pitch for e in notes])) if notes else math.nan


def density(notes) -> float:
    """Notes per beat over the phrase's span."""
    s = span(notes)
    return len(notes) * TICKS_PER_BEAT / s if notes and s > 0 else math.nan


def tone_matrix(chords) -> np.ndarray:
    """[ticks, 12] booleans: is this pitch class a tone of the chord sounding at this tick."""
    m = np.zeros((max(1, len(chords)), 12), bool)
    for k, c in enumerate(chords):
        if c is not None:
            m[k, list(c.tones)] = True
    return m


def offsets_and_classes(notes, start: int) -> tuple[np.ndarray, np.ndarray]:
    return (np.array([max(0, e.onset - start) for e in notes], int), np.array([e.pitch % 12 for e in notes], int))


def tone_share(notes: tuple[np.ndarray, np.ndarray], tones: np.ndarray) -> float:
    """Share of notes (offsets, pitch classes) on a chord tone of ``tones`` at their offset;
    the last chord holds beyond the end."""
    offsets, classes = notes
    if not len(offsets):
        return math.nan
    return float(tones[np.minimum(offsets, len(tones) - 1), classes].mean())


def chord_tone_share(response, start: int, chords) -> float:
    """Share of the response's notes that are chord tones of the chord under them, the chords
    read from ``chords`` (one a tick) by the note's offset from ``start``."""
    return tone_share(offsets_and_classes(response, start), tone_matrix(chords))


@dataclass(frozen=True)
class Metric:
    """A comparison of a response with a call. ``of_response(exchange)`` and ``of_call(exchange)``
    extract what is compared (once per exchange: the shuffled baseline compares each response
    with every other call, n^2 comparisons of the same few hundred phrases), ``compare(r, c)``
    scores it: a similarity (higher = closer) or a distance."""

    name: str
    unit: str
    similarity: bool
    of_response: Callable[[Exchange], object]
    of_call: Callable[[Exchange], object]
    compare: Callable[[object, object], float]

    def score(self, response: Exchange, call: Exchange) -> float:
        """``response``'s response against ``call``'s call (and the chords after it)."""
        return self.compare(self.of_response(response), self.of_call(call))


def _log_ratio(a: float, b: float) -> float:
    return abs(math.log(a / b)) if a > 0 and b > 0 else math.nan


METRICS = (
    Metric("pitch classes", "", True, lambda e: pitch_class_histogram(e.response), lambda e: pitch_class_histogram(e.call),
           histogram_intersection),
    Metric("register", " st", False, lambda e: mean_pitch(e.response), lambda e: mean_pitch(e.call), lambda a, b: abs(a - b)),
    Metric("density", "", False, lambda e: density(e.response), lambda e: density(e.call), _log_ratio),
    Metric("groove (onset in bar)", "", True, lambda e: onset_histogram(e.response), lambda e: onset_histogram(e.call),
           histogram_intersection),
    Metric("intervals", "", True, lambda e: interval_histogram(e.response), lambda e: interval_histogram(e.call),
           histogram_intersection),
    # the chords that sound under this response after call j: its own for j == i, another
    # solo's for the shuffled pairing (aligned by the offset from the response's start)
    Metric("chord tones", "", True, lambda e: offsets_and_classes(e.response, e.start), lambda e: tone_matrix(e.chords),
           tone_share),
)


def relevance_values(exchanges: list[Exchange], metric: Metric) -> np.ndarray:
    """Per exchange: how much more its response resembles its own call than the calls of other
    solos (the mean over all of them, i.e. the expectation under a random pairing). NaN where
    the response or every other call gives no value (an empty answer)."""
    responses = [metric.of_response(e) for e in exchanges]
    calls = [metric.of_call(e) for e in exchanges]
    solos = [e.solo for e in exchanges]
    out = np.full(len(exchanges), math.nan)
    for i, r in enumerate(responses):
        own = metric.compare(r, calls[i])
        if math.isnan(own):
            continue
        others = [v for j, c in enumerate(calls) if solos[j] != solos[i] and not math.isnan(v := metric.compare(r, c))]
        if not others:
            continue
        shuffled = float(np.mean(others))
        out[i] = own - shuffled if metric.similarity else shuffled - own
    return out


@dataclass(frozen=True)
class Interval:
    mean: float
    low: float
    high: float
    n: int  # values that counted
    groups: int  # solos they came from


def bootstrap_mean(values, groups, rng: np.random.Generator, n_boot: int = BOOTSTRAP,
                   level: float = LEVEL) -> Interval:
    """The mean of ``values`` and a percentile interval from resampling whole groups (solos)
    with replacement: the phrases of one solo share a player, a tune and a tempo, so they are
    not independent draws and resampling them one by one would make the interval too narrow."""
    v = np.asarray(values, float)
    g = np.asarray(groups)
    ok = ~np.isnan(v)
    v, g = v[ok], g[ok]
    if not len(v):
        return Interval(math.nan, math.nan, math.nan, 0, 0)
    names, index = np.unique(g, return_inverse=True)
    sums = np.bincount(index, weights=v, minlength=len(names))
    counts = np.bincount(index, minlength=len(names)).astype(float)
    draws = rng.integers(0, len(names), size=(n_boot, len(names)))
    weight = np.zeros((n_boot, len(names)))
    np.add.at(weight, (np.repeat(np.arange(n_boot), len(names)), draws.ravel()), 1.0)
    means = (weight @ sums) / (weight @ counts)
    tail = (1 - level) / 2 * 100
    low, high = np.percentile(means, [tail, 100 - tail])
    return Interval(float(v.mean()), float(low), float(high), int(len(v)), int(len(names)))


# -- degeneration: pure functions over a pitch sequence -------------------------------------------
def distinct_pitches(pitches) -> float:
    return float(len(set(pitches))) if len(pitches) else math.nan


def top_pitch_share(pitches) -> float:
    """Share of the notes on the most common pitch (an ostinato on one pitch: near 1)."""
    if not len(pitches):
        return math.nan
    _, counts = np.unique(np.asarray(pitches), return_counts=True)
    return float(counts.max() / len(pitches))


def repeated_ngram_share(pitches, n: int = 4) -> float:
    """Share of the pitch n-grams that repeat an earlier n-gram of the same line: a loop
    ``x x x y x x x y`` scores near 1, a line that never repeats itself 0."""
    grams = [tuple(pitches[i:i + n]) for i in range(len(pitches) - n + 1)]
    if not grams:
        return math.nan
    return 1.0 - len(set(grams)) / len(grams)


DEGENERATION = {
    "distinct pitches": distinct_pitches,
    "top pitch share": top_pitch_share,
    "repeated 4-grams": repeated_ngram_share,
}


def degeneration(notes) -> dict:
    pitches = [e.pitch for e in sorted(notes, key=lambda e: (e.onset, -e.pitch))]
    return {k: f(pitches) for k, f in DEGENERATION.items()}


# -- answers through the daemon's own code path ------------------------------------------------------
def chart_text(chord_at: Callable[[int], Chord | None], first_bar: int, bars: int) -> str:
    """A chart of the solo's own chords, one per beat, as ``--chords`` takes it (the eight
    WJazzD types round-trip through their names)."""
    out = []
    for b in range(first_bar, first_bar + bars):
        beats = [chord_at(b * BAR_TICKS + k * TICKS_PER_BEAT) for k in range(BAR_TICKS // TICKS_PER_BEAT)]
        out.append(" ".join(c.name if c is not None else "N.C." for c in beats))
    return " | ".join(out)


def _performance(notes, origin: int, clock):
    from improvd.midi.files import Note, Performance

    played = tuple(Note(e.pitch, ANSWER_VELOCITY, clock.time_of(e.onset - origin), clock.time_of(e.onset + e.duration - origin))
                   for e in notes)
    return Performance(played, clock.tempo, clock.beat_seconds, "wjazzd")


def machine_notes(messages, clock, origin: int, chord_at) -> list[Event]:
    """The daemon's output messages as notes on the solo's tick grid (onset, length, chord)."""
    sounding: dict[int, tuple[int, float]] = {}
    out = []
    for t, msg in sorted(messages, key=lambda tm: tm[0]):
        if msg.type == "note_on" and msg.velocity > 0:
            sounding[msg.note] = (msg.note, t)
        elif msg.type in ("note_on", "note_off") and msg.note in sounding:
            pitch, t0 = sounding.pop(msg.note)
            on = int(round(t0 / clock.tick_seconds)) + origin
            off = max(on + 1, int(round(t / clock.tick_seconds)) + origin)
            out.append(Event(pitch, off - on, on, chord_at(on)))
    return sorted(out, key=lambda e: (e.onset, -e.pitch))


@dataclass(frozen=True)
class Answer:
    start: int  # absolute tick on the solo's grid of the answer's first note (as a phrase's start)
    notes: tuple


def answer(model, call, chord_at, length: int, seed: int, chart: bool = True, wait_ticks: int = BAR_TICKS,
           settings: dict | None = None) -> Answer:
    """The model's answer to ``call`` (notes on the solo's grid) from a fresh state, through
    :func:`improvd.replay.replay` (engine, rules, scheduler: what ``improvd run`` does), with the
    solo's chords as the chart or none, cut to ``length`` ticks from its first note (the engine
    answers in whole bars). ``wait_ticks`` of silence start the answer, as ``--wait``;
    ``settings`` are more Settings fields (a temperature, say). Only the replay's output is
    read, nothing inside the engine, so the measure outlives the engine's restructuring."""
    from improvd.clock import Clock
    from improvd.config import Settings
    from improvd.replay import replay

    origin = (call[0].onset // BAR_TICKS) * BAR_TICKS
    end = max(e.onset + e.duration for e in call)
    bars = max(1, math.ceil(length / BAR_TICKS))
    chart_bars = math.ceil((end - origin + wait_ticks) / BAR_TICKS) + bars + 2
    text = chart_text(chord_at, origin // BAR_TICKS, chart_bars) if chart else None
    # the calls are rendered on an exact grid at TEMPO and the answers read back on it: the time
    # is fixed, as `--tempo 120` fixes it (following the performer would move the bar lines)
    s = Settings(model=model.card.name, seed=seed, tempo=TEMPO, tempo_follow="off", bars=bars, max_bars=max(8, bars),
                 wait=f"{wait_ticks / TICKS_PER_BEAT:g}beats", chords=text, **(settings or {}))
    clock = Clock(TEMPO)
    model.reset()  # every call is a new piece: nothing of the last pair leaks into this answer
    res = replay(_performance(call, origin, clock), s, model=model)
    # the chord each note was played over: the chart's when there was one, none otherwise
    under = chord_at if chart else (lambda _t: None)
    played = [e for e in machine_notes(res.machine, clock, origin, under) if e.onset >= end]
    if not played:
        return Answer(end + wait_ticks, ())
    start = played[0].onset
    notes = tuple(replace(e, duration=min(e.duration, start + length - e.onset)) for e in played if e.onset < start + length)
    return Answer(start, notes)


# -- the data -------------------------------------------------------------------------------------
def valid_solos(data: list[str], split: str | None) -> tuple[list, str]:
    """(solos, what the table calls them): the WJazzD solos the bundled jazz model was selected
    on (its card's ``valid_names``) whichever model is evaluated, since none of the four has
    trained on them; ``--data``/``--split`` as ``improvd evaluate jazz`` reads them."""
    from improvd.evaluation.jazz import load_solos
    from improvd.models import resolve
    from improvd.models.card import ModelCard

    solos, scored = load_solos(data, split, ModelCard.load(resolve("jazz")))
    if not solos:
        raise ImprovdError(f"{scored} holds no solos: check --data and --split")
    return solos, scored


def long_windows(events, call_bars: int = LONG_CALL_BARS, answer_bars: int = LONG_ANSWER_BARS):
    """Non-overlapping (call, human next) windows of a solo: ``call_bars`` of its notes, then
    the ``answer_bars`` the soloist really played next; windows too sparse to be a long call or
    a reply are left out."""
    notes = notes_of(events)
    if not notes:
        return []
    first = notes[0].onset // BAR_TICKS
    last = max(e.onset + e.duration for e in notes) // BAR_TICKS
    out = []
    bar = first
    while bar + call_bars + answer_bars <= last + 1:
        a, b, c = bar * BAR_TICKS, (bar + call_bars) * BAR_TICKS, (bar + call_bars + answer_bars) * BAR_TICKS
        call = tuple(replace(e, duration=min(e.duration, b - e.onset)) for e in notes if a <= e.onset < b)
        human = tuple(e for e in notes if b <= e.onset < c)
        if len(call) >= LONG_MIN_CALL_NOTES and len(human) >= LONG_MIN_HUMAN_NOTES:
            out.append((call, human, b))
        bar += call_bars + answer_bars
    return out


def longest_gap(notes) -> int:
    ends = np.maximum.accumulate([e.onset + e.duration for e in notes])
    gaps = [b.onset - e for b, e in zip(notes[1:], ends[:-1])]
    return int(max(gaps, default=0))


def wait_after(call) -> int:
    """A wait longer than any silence inside the call, so the engine answers after all of it
    (with ``--wait 1bar`` it would answer into a long call's first rest of a bar)."""
    return max(BAR_TICKS, (longest_gap(call) // TICKS_PER_BEAT + 1) * TICKS_PER_BEAT)


# -- the command ----------------------------------------------------------------------------------
HUMAN = "the soloist's next phrase"
HUMAN_LONG = "the soloist's next 8 bars"


def round_robin(per_solo: list[list], n: int | None) -> list:
    """The first item of every solo, then the second of every solo, ...; the first ``n``.
    Taken this way even a handful of pairs comes from several solos, which the shuffled
    baseline needs (it compares a response only with calls of other solos)."""
    out = []
    for k in range(max((len(items) for items in per_solo), default=0)):
        out += [items[k] for items in per_solo if k < len(items)]
    return out[:n] if n else out


def relevance_rows(solos, models: list, n: int | None, seed: int) -> tuple[dict, int]:
    """{response: [Exchange]}: the soloist's real next phrases, then each model's answers to
    the same calls (seed ``seed + k`` for the k-th pair, the same for every model)."""
    from improvd.evaluation.jazz import chord_lookup
    from improvd.progress import stage

    per_solo = []
    for name, events in solos:
        at = chord_lookup(events)
        per_solo.append([(name, at, call, nxt) for call, nxt in phrase_pairs(events)])
    pairs = round_robin(per_solo, n)
    rows: dict[str, list[Exchange]] = {
        HUMAN: [Exchange(name, call, nxt, nxt[0].onset, chords_from(at, nxt[0].onset, span(nxt))) for name, at, call, nxt in pairs]}
    for m in models:
        rows[m.card.name] = []
        with stage(f"{m.card.name}: answering {len(pairs)} calls", total=len(pairs), unit="calls") as shown:
            for k, (name, at, call, nxt) in enumerate(pairs):
                length = span(nxt)
                a = answer(m, call, at, length, seed + k)
                rows[m.card.name].append(Exchange(name, call, a.notes, a.start, chords_from(at, a.start, length)))
                shown.advance()
    return rows, len(pairs)


def degeneration_rows(solos, models: list, n: int | None, seed: int) -> tuple[dict, int]:
    """{response: [(solo, figures)]}: the soloist's own next 8 bars after each long call, then
    each model's 8-bar answer to it, over the solo's chart and over none."""
    from improvd.evaluation.jazz import chord_lookup
    from improvd.progress import stage

    per_solo = []
    for name, events in solos:
        at = chord_lookup(events)
        per_solo.append([(name, at, call, human) for call, human, _start in long_windows(events)])
    windows = round_robin(per_solo, n)
    rows = {HUMAN_LONG: [(name, degeneration(human)) for name, _at, _call, human in windows]}
    for m in models:
        for chart in (True, False):
            key = f"{m.card.name}, {'the chart' if chart else 'no chart'}"
            rows[key] = []
            with stage(f"{key}: answering {len(windows)} long calls", total=len(windows), unit="calls") as shown:
                for k, (name, at, call, _human) in enumerate(windows):
                    a = answer(m, call, at, LONG_ANSWER_BARS * BAR_TICKS, seed + k, chart=chart, wait_ticks=wait_after(call))
                    rows[key].append((name, degeneration(a.notes)))
                    shown.advance()
    return rows, len(windows)


def relevance_table(rows: dict, rng: np.random.Generator) -> dict:
    """{response: {"answered": k, metric: Interval}} from the exchanges of each response."""
    out = {}
    for key, exchanges in rows.items():
        groups = [e.solo for e in exchanges]
        out[key] = {"answered": sum(1 for e in exchanges if e.response),
                    **{mt.name: bootstrap_mean(relevance_values(exchanges, mt), groups, rng) for mt in METRICS}}
    return out


def degeneration_table(rows: dict, rng: np.random.Generator) -> tuple[dict, dict]:
    """({response: {"beyond": k, "silent": k, figure: Interval}}, the soloists' 5th..95th
    percentiles): ``beyond`` counts answers whose repeated 4-grams pass the soloists' 95th."""
    human = [d for _, d in rows[HUMAN_LONG]]
    band = {k: tuple(float(x) for x in np.nanpercentile([d[k] for d in human], [5, 95])) if human else (math.nan, math.nan)
            for k in DEGENERATION}
    out = {}
    for key, items in rows.items():
        groups = [name for name, _ in items]
        rep = [d["repeated 4-grams"] for _, d in items]
        out[key] = {"beyond": sum(1 for r in rep if not math.isnan(r) and r > band["repeated 4-grams"][1]),
                    "silent": sum(1 for _, d in items if math.isnan(d["distinct pitches"])),
                    **{k: bootstrap_mean([d[k] for _, d in items], groups, rng) for k in DEGENERATION}}
    return out, band


def _signed(iv: Interval, digits: int = 3) -> str:
    """A figure over its interval, two lines, so five columns fit 80 characters."""
    if math.isnan(iv.mean):
        return "n/a"
    return f"{iv.mean:+.{digits}f}\n[{iv.low:+.{digits}f}, {iv.high:+.{digits}f}]"


def evaluate(model: str, data: list[str], split: str | None, n: int | None, seed: int,
             also: list[str] | None = None, parts: tuple = ("relevance", "degeneration")) -> dict:
    """Both tables for ``model`` and the ``also`` models beside the soloist. ``n`` takes n phrase
    pairs (and n long-call windows), spread over the solos by :func:`round_robin`."""
    from rich.console import Console
    from rich.table import Table

    from improvd.models import load_model

    models = []
    for name in dict.fromkeys([model, *(also or [])]):
        m = load_model(name)
        if "call-response" not in m.modes:
            raise ImprovdError(f"model {m.card.name} ({m.family}) does not play call-response (it plays {', '.join(m.modes)}): "
                               f"the response task cannot ask it, leave it out of --also")
        models.append(m)
    solos, scored = valid_solos(data, split)
    console = Console()
    rng = np.random.default_rng(seed)
    result: dict = {"scored": scored, "solos": len(solos)}
    if "relevance" in parts:
        t0 = time.perf_counter()
        rows, n_pairs = relevance_rows(solos, models, n, seed)
        figures = relevance_table(rows, rng)
        seconds = time.perf_counter() - t0
        n_solos = len({e.solo for e in rows[HUMAN]})
        table = Table(title=f"Relevance on the {scored}: {n_pairs} phrase pairs of {n_solos} solos. How much more a "
                            f"response resembles its own call than other solos' calls (larger = more responsive): "
                            f"mean, [{LEVEL:.0%} interval, {BOOTSTRAP} bootstraps over solos]")
        table.add_column("metric")
        for key in figures:
            table.add_column(key, justify="right")
        for mt in METRICS:
            digits = 2 if mt.unit else 3
            table.add_row(mt.name + (f" ({mt.unit.strip()})" if mt.unit else ""),
                          *[_signed(cells[mt.name], digits) for cells in figures.values()])
        table.add_row("answered", *[f"{cells['answered']}/{n_pairs}" for cells in figures.values()])
        console.print(table)
        result["relevance"] = {"pairs": n_pairs, "seconds": round(seconds, 1),
                               "rows": {k: {m: (vars(v) if isinstance(v, Interval) else v) for m, v in c.items()} for k, c in figures.items()}}
    if "degeneration" in parts:
        t0 = time.perf_counter()
        rows, n_windows = degeneration_rows(solos, models, n, seed)
        figures, band = degeneration_table(rows, rng)
        seconds = time.perf_counter() - t0
        n_solos = len({name for name, _ in rows[HUMAN_LONG]})
        table = Table(title=f"Degeneration on the {scored}: {n_windows} calls of {LONG_CALL_BARS} bars from {n_solos} solos, "
                            f"each answered for {LONG_ANSWER_BARS} bars; mean [{LEVEL:.0%} interval over solos]; beyond = "
                            f"answers whose repeated 4-grams pass the soloists' 95th percentile")
        table.add_column("response")
        for k in DEGENERATION:
            table.add_column(k, justify="right")
        table.add_column("beyond", justify="right")
        for key, cells in figures.items():
            silent = f" ({cells['silent']} silent)" if cells["silent"] else ""
            table.add_row(key, *[f"{cells[k].mean:.2f}\n[{cells[k].low:.2f}, {cells[k].high:.2f}]" for k in DEGENERATION],
                          f"{cells['beyond']}/{n_windows}{silent}")
        table.add_row("the soloists' 5th..95th percentile", *[f"{lo:.2f} .. {hi:.2f}" for lo, hi in band.values()], "")
        console.print(table)
        result["degeneration"] = {"windows": n_windows, "seconds": round(seconds, 1), "human_band": band,
                                  "rows": {k: {m: (vars(v) if isinstance(v, Interval) else v) for m, v in c.items()} for k, c in figures.items()}}
    return result
