"""Follow the performer's time: causal tempo, beat phase and downbeat from note-ons alone.

A sideman listens for where the beat is, settles on it within a phrase, then follows the
player's push and pull without jumping at every rubato. This module does that with plain numpy
on the input path, one call per note-on, so the daemon can run its grid on the performer's time
instead of a --tempo flag. Nothing here imports more than numpy, reads a clock or blocks.

How, and why this way:
- The hidden state is (tempo, phase of the beat now): 64 tempo rows log-spaced over 30-300 BPM
  times 16 phase bins, a discrete Bayesian filter in the family of the bar-pointer models
  (Whiteley et al. 2006; Krebs et al. 2015), run per onset instead of per audio frame. Between
  onsets each row's phase advances by its own tempo (one gather: the fractional part is kept
  per row, so nothing drifts however long the gap) and a little mass moves to the neighbouring
  rows (the player speeds up or slows down). Per note the work is a dozen numpy operations on
  1024 numbers: O(1) in the length of the performance.
- An onset is weighed by what it tells about the beat: a learned model (improvd/tempo_model.py,
  fitted on the developers' split of ASAP by improvd.evaluation.timing_fit) says how likely a
  cluster of this many notes, this low and this loud against the recent ones, is to fall on a
  beat, a half beat or elsewhere, and where in the beat each of those falls. Chords, low notes
  and accents therefore pull the beat towards themselves and a light run of sixteenths does not:
  that is what keeps the tracker off the off-beat and off double tempo. Compound meters (6/8)
  have their own phase model.
- The onsets are also heard by a small recurrent net (improvd/tempo_net.py: a GRU over onset
  clusters, trained on the train splits of both corpora plus generated exact playing, run in
  numpy): it reads a cluster in the light of the clusters before it and gives the same three
  class probabilities, which are mixed half and half with the logistic model's, and a downbeat
  log-odds. Its tempo head is not read by default (``net_tempo = 0``): it said about the same
  tempo whatever the pulse and pulled a swung line over comping to half time. ``tempo_net =
  false`` (``TrackerSettings(net=False)``) runs without it; docs/tempo.md has both measured.
- Swing: the kernels come from classical piano, where a beat's second eighth falls at its
  middle; a swung one falls at 0.6-0.67. While consecutive intervals go long-short
  (``_hear_swing``) part of the half-beat kernel moves there (``swung_half``). Without it a
  swung line at 132 BPM was followed at 198, its long notes taken for beats.
- Which tempo, metrical level included, comes mostly from an interval model (PeriodicityModel):
  a comb over a histogram of inter-onset intervals, read at x1/3 ... x4 of each candidate with a
  prior, weights fitted on train (tempo_model.TEMPO_WEIGHTS). Its posterior weighs the filter's
  tempo rows, and while the filter is unsure it sets bpm once it is clear (docs/tempo.md).
- onset() is O(1) plain Python (cluster, 8 histogram increments); the filter takes the clusters
  in at the next estimate(), and the interval model is re-read at most every 0.25 s of onsets.
- The configured tempo (--tempo, default 120) is the centre of the prior over tempo rows (two
  octaves wide, the sd of log2 tempo): the level a listener taps when the notes allow several.
- What the daemon hears is an output clock, a beat position that advances at the followed
  period. It moves to a different tempo row's hypothesis only when that one has held more
  probability by a margin for a couple of beats (hysteresis), so a rubato phrase bends the grid
  instead of throwing it. The reported bpm moves only past a small dead band.
- Confidence is the posterior mass around the followed tempo. Below ``lock_confidence`` the
  tracker is unlocked: bpm stays at the last confident tempo (or the configured one), always
  within 30-300. A flood (more note-ons a second than a person plays) is not listened to.
- Downbeats: each on-beat cluster adds its log-odds of being a downbeat (again learned: bass and
  chord weight) to its beat-of-the-bar slot; the heaviest slot is beat one, with hysteresis.
- A count-in (the first ``meter`` notes, at least 3, on one key and evenly spaced) locks tempo,
  phase and bar at once, as a drummer's sticks would.

Use: ``tracker = TempoTracker(fallback_bpm=120, meter=4)`` (or meter="6/8");
``tracker.onset(t, pitch, velocity)`` per note-on; ``tracker.estimate(now)`` whenever the grid
needs the time; ``BeatGrid(tracker).advance(now)`` for the beats as events.
"""

from __future__ import annotations

import math
import time as _time
from collections import deque
from dataclasses import dataclass

import numpy as np

MIN_BPM = 30.0
MAX_BPM = 300.0
CLASSES = ("beat", "half", "other")  # where an onset cluster falls in its beat
KERNEL_BINS = 96  # resolution of the learned phase kernels (a multiple of every phase_bins used)


@dataclass(frozen=True)
class Estimate:
    """The tracker's view of the performer's time at ``time`` (seconds, the caller's clock)."""

    time: float
    bpm: float  # the tempo to play at, within 30-300; held at the last confident one while unsure
    heard_bpm: float  # the tempo the tracker hears best now, sure or not (the grid runs at it)
    beat: float  # beat position at ``time``, counted from the first onset; whole numbers are beats
    next_beat_time: float  # first beat at or after ``time``
    next_downbeat_time: float  # first beat one of a bar at or after ``time``
    beat_in_bar: float  # 0 <= beat_in_bar < meter: where in the bar ``time`` is
    beat_period: float  # seconds between the grid's beats now (follows the player; bpm is steadier)
    confidence: float  # 0..1: posterior mass around the followed tempo
    locked: bool  # settled on the performer's beat (confidence held above the lock level)

    @property
    def beat_seconds(self) -> float:
        return 60.0 / self.bpm


@dataclass(frozen=True)
class TrackerSettings:
    """Every knob in one place; the defaults were tuned on the developers' train split only."""

    min_bpm: float = MIN_BPM
    max_bpm: float = MAX_BPM
    rows_per_octave: int = 14  # tempo hypotheses, log-spaced from min_bpm (5 % apart; 47 rows to 300 BPM)
    phase_bins: int = 12  # beat-phase hypotheses per tempo (KERNEL_BINS must be a multiple)
    periodicity_weight: float = 1.0  # exponent of the interval model's tempo posterior at the filter's readout
    ioi_memory: float = 30.0  # the interval histogram forgets over this many seconds
    tempo_every: float = 0.25  # the interval model is re-read at most this often (seconds of onsets)
    commit_confidence: float = 0.25  # interval-model mass within 4 % of its best that sets bpm while unlocked (0.3 until stop 16)
    commit_onsets: int = 8  # ...once this many onset clusters were heard
    commit_to: str = "grid"  # "grid": the grid's tempo then; "intervals": the interval model's best
    chance_mass: float = 0.35  # posterior mass near the followed tempo that random onsets reach (99th pct)
    chance_interval: float = 0.3  # interval-model mass near the followed tempo that random onsets reach
    tempo_change: float = 0.1  # probability a second of moving to a neighbouring tempo row (rubato)
    tempo_change_per_beat: bool = False  # (tuning) count tempo_change per beat instead of per second
    tempo_change_cap: float = 0.25  # at most this much moves at one onset, however long the gap
    reopen: float = 0.003  # prior mixed back in at each onset: a wrong lock can always be left
    prior_octaves: float = 2.0  # width of the tempo prior around the configured tempo (1.0: fast solos were heard at half tempo more often)
    kernel_blur: float = 0.06  # timing spread added to the learned phase kernels (beats): live playing is looser
    swing_kernel: float = 0.8  # share of the half-beat kernel at the swung eighth's places (simple meters; swung_half)...
    swing_memory: float = 0.1  # ...as far as the recent intervals go long-short (weight of each new pair; _hear_swing)
    swing_from: float = 0.25  # long-short share of the uneven-or-even interval pairs where swing starts to count...
    swing_full: float = 0.6  # ...and where it counts fully
    swing_ratio: tuple = (1.6, 2.4)  # a long-short pair: the first interval this many times the second
    switch_margin: float = 0.3  # a rival tempo must hold this much more probability...
    switch_beats: float = 2.0  # ...for this many of its beats before the grid follows it
    chord_window: float = 0.035  # note-ons closer than this to a cluster's first note are one onset (s)
    chord_notes: int = 8  # notes after this many in one cluster change nothing
    feature_memory: float = 0.15  # running means of bass and velocity: weight of each new cluster
    follow_confidence: float = 0.0  # below this the grid free-runs instead of following the filter
    lock_confidence: float = 0.3  # locked above this; unlocked again below half of it
    lock_onsets: int = 6  # ...and not before this many onset clusters (a count-in locks at its last note): three even notes are not yet a beat
    bpm_deadband: float = 0.02  # the reported bpm moves only when the followed tempo is this far off...
    bpm_settle: float = 0.005  # ...or this far off, on one side, for bpm_settle_beats of its beats running
    bpm_settle_beats: float = 4.0  # (0: only the dead band, which held estimates up to 2 % off for whole solos; CV dev docs/tempo.md)
    flood_notes: int = 48  # more note-ons than this within flood_window seconds is a flood
    flood_window: float = 1.0
    downbeat_memory_bars: float = 8.0  # downbeat evidence fades over this many bars
    downbeat_margin: float = 1.0  # log-odds a rival slot needs over beat one to take its place
    count_in_tolerance: float = 0.1  # count-in notes' spacing may vary by this fraction
    residual_gain: float = 0.2  # how fast the grid learns where beat-like notes land against the filter's beat
    residual_window: float = 0.12  # only notes this close to a beat (beats) teach it
    level_select: bool = True  # choose the metrical level from where onsets recur (simple meters)
    level_ratio: float = 0.8  # a level twice as fast is the beat while its grid is hit this share as often
    level_ratio_keep: float = 0.7  # ...or this share, when it is the level held now
    level_window_beats: float = 16.0  # the level check looks back this many followed beats...
    level_window: tuple = (4.0, 12.0)  # ...within these seconds
    level_min_clusters: int = 8  # and needs this many clusters there
    level_every: float = 0.5  # seconds of onsets between level checks (each about 0.4 ms)
    level_hold: int = 3  # checks running (one every tempo_every of onsets) a new level must be chosen
    level_band: float = 0.5  # octaves around the chosen level where rows compete freely
    level_floor: float = 1e-4  # weight of the rows outside it, slower...
    level_floor_up: float = 1e-4  # ...and faster
    level_weak: float = 0.25  # added grid points this much quieter (20 velocity steps) than the mean are subdivisions
    level_keep: float = 0.6  # below this share of any level's grid points hit, no level is held
    level_by_intervals: bool = True  # among the levels the playing fills, the interval model picks
    level_hold_bonus: float = 1.3  # ...with the level held weighing this much more
    level_strict: float = 0.9  # the level is chosen (and weighs) only while some level's grid is hit this often...
    level_strict_rms: float = 0.008  # ...within this many seconds (rms): a strict beat, not rubato
    level_strict_hold: float = 4.0  # seconds of onsets a strict beat is assumed to go on, through a tempo change
    level_strict_hits: int = 6  # ...on at least this many points
    lead_rms: float = 0.003  # within this (rms, s), an exact beat: fit_leads, reseed and the hold act only then
    level_min_bpm: float = 40.0  # levels slower than this are not tapped
    family_spread: int = 0  # rows either side that share the interval model's weight (5 %, rows apart)
    fit_beats: bool = True  # the grid's tempo and phase from a line through the recent on-beat notes
    fit_window: float = 0.15  # notes this close to a beat (beats) are on it
    fit_memory: float = 8.0  # beats: the line's weights fade over this many
    fit_agree: float = 0.01  # the line is first taken when its tempo is within this (log) of the filter's
    fit_bend: float = 2.0  # the parabola's tangent is taken when the line's residual is this many times its own
    fit_agree_strict: float = 0.04  # ...or of this, while the beat is strict (see level_strict)
    fit_rows: float = 1.0  # while it holds, the filter's rows are weighed around its tempo (rows, sd)
    fit_strong: float = 0.3  # beat-like notes (the onset model's beat probability) that...
    fit_misses: int = 3  # ...fall this many times running just off the line's beats drop it
    fit_leads: bool = True  # the line leads the filter (follows tempo changes itself), or only refines it
    reseed: bool = True  # look for a new grid when the playing stops fitting the line's
    reseed_window: float = 4.0  # seconds (or reseed_beats of the level) of the last stretch of playing a new grid is looked for in
    reseed_beats: float = 8.0
    reseed_tau: float = 1.5  # seconds: how fast older notes weigh less when a new grid is looked for
    reseed_margin: float = 0.15  # another grid hit this much more often over the last stretch, twice running: take it
    reseed_entry: bool = True  # (with reseed) a stretch that starts after a rest has its first note on a beat...
    reseed_entry_clusters: int = 4  # ...and this many clusters are enough to look (once, not twice running)
    line_recentre: float = 0.03  # (with fit_leads) while strict, a line this far (log) from the filter's tempo...
    line_recentre_n: int = 3  # ...for this many on-beat clusters running re-centres the filter on it, the intervals forgotten
    downbeat_base: float = 1.0  # share of the model's intercept taken off each vote (1: a plain cluster votes 0, not against)
    downbeat_loud: float = 0.5  # downbeat log-odds a cluster gains per 20 velocity steps above the recent ones
    net: bool = True  # the learned GRU (improvd.tempo_net) hears the clusters too (config tempo_net; docs/tempo.md)
    net_intervals: float = 2.0  # with the net: exponent of the interval model's tempo posterior...
    net_tempo: float = 0.0  # ...and of the net's, multiplied into one (0: its tempo head is not read; it halved swung lines, and the shipped net's is untrained)
    net_downbeat: float = 0.3  # the net's downbeat log-odds per vote, scaled (1: over JACK the bar moved after a count-in, 1 run in 5; 0: beat one lost in 3/4)
    net_phase: float = 0.0  # exponent of the net's phase distribution as the cluster's likelihood (0: its classes instead)
    net_floor: float = 0.05  # share of a uniform phase mixed into it: a net's certainty is never absolute
    net_chance_mass: float = 0.8  # chance_mass with the net: its sharper evidence lets random onsets gather more (calibrated as chance_mass, on other random streams)
    net_chance_interval: float = 0.45  # chance_interval with the net (the interval posterior is sharper: net_intervals)
    net_mix: float = 0.5  # the cluster's likelihood: net^mix x logistic onset model^(1 - mix) (1: a line over random comping went to half time)


def parse_meter(meter: int | str) -> tuple[int, bool]:
    """(beats per bar, compound): 4 -> (4, False); "3/4" -> (3, False); "6/8" -> (2, True).
    Compound meters count dotted beats, as a conductor (and ASAP's annotations) do."""
    if isinstance(meter, str):
        top = int(meter.split("/")[0])
        if top in (6, 9, 12):
            return top // 3, True
        return max(1, top), False
    return max(1, int(meter)), False


def is_compound(signature: str | None) -> bool:
    return bool(signature) and parse_meter(signature)[1]


def cluster_features(notes: int, lowest: float, loudest: float, mean_lowest: float, mean_loudest: float) -> tuple[float, float, float]:
    """What a cluster of note-ons tells about its place in the beat, at once: how many notes
    (log, at most 8), how low its lowest note is and how loud its loudest against the recent
    clusters (octaves, and 20 velocity steps)."""
    return (math.log(min(notes, 8)), (lowest - mean_lowest) / 12.0, (loudest - mean_loudest) / 20.0)


def onset_features(times: np.ndarray, pitches: np.ndarray, velocities: np.ndarray,
                   settings: "TrackerSettings | None" = None) -> tuple[np.ndarray, np.ndarray]:
    """The clusters a TempoTracker forms from these note-ons and their final features, the same
    way it does (for fitting the onset model): (cluster start times, features (n, 3))."""
    s = settings or TrackerSettings()
    starts: list[int] = []
    for i, t in enumerate(times):
        if not starts or t - times[starts[-1]] >= s.chord_window:
            starts.append(i)
    bounds = starts + [len(times)]
    out = np.empty((len(starts), 3))
    mean_low = mean_vel = None
    for c in range(len(starts)):
        a, b = bounds[c], min(bounds[c + 1], bounds[c] + s.chord_notes)
        low, loud = float(np.min(pitches[a:b])), float(np.max(velocities[a:b]))
        if mean_low is None:
            mean_low, mean_vel = low, loud
        out[c] = cluster_features(b - a, low, loud, mean_low, mean_vel)
        a_ = s.feature_memory
        mean_low, mean_vel = (1 - a_) * mean_low + a_ * low, (1 - a_) * mean_vel + a_ * loud
    return np.asarray(times)[starts], out


SWING_PLACES = (0.6, 0.633, 0.667)  # where a swung eighth falls in its beat: 3:2 to 2:1


def swung_half(kernel: np.ndarray, share: float) -> np.ndarray:
    """The half-beat kernel with ``share`` of its mass moved to the swung eighth's places.

    The kernels are fitted on classical piano (ASAP), where a beat's second eighth falls at its
    middle. In a swung line it falls at 0.6-0.67 of the beat, where the fitted kernels expect
    almost nothing: a swung line at 132 BPM was then explained better as straight eighths at
    198 (its long notes taken for beats), and followed there."""
    bins = len(kernel)
    moved = np.mean([np.roll(kernel, int(round((place - 0.5) * bins))) for place in SWING_PLACES], axis=0)
    return (1.0 - share) * kernel + share * moved


class OnsetModel:
    """The learned onset model for one kind of meter: log-likelihood of each phase given a
    cluster's features, and its log-odds of being a downbeat."""

    def __init__(self, compound: bool, blur: float, swing: float = 0.0):
        from improvd import tempo_model as m

        kind = "compound" if compound else "simple"
        self.coef = np.array(m.CLASS_COEF)
        self.intercept = np.array(m.CLASS_ADJUST[kind]) + np.array(m.CLASS_INTERCEPT)
        kernels = np.array(m.KERNELS[kind], dtype=float)
        swung = swung_half(kernels[1], swing) if swing > 0 and not compound else kernels[1]
        kernels = 0.98 * np.vstack([kernels, swung]) + 0.02  # never rule a phase out entirely
        if blur > 0:
            x = np.arange(KERNEL_BINS)
            g = np.exp(-0.5 * (np.minimum(x, KERNEL_BINS - x) / (blur * KERNEL_BINS)) ** 2)
            kernels = np.real(np.fft.ifft(np.fft.fft(kernels, axis=1) * np.fft.fft(g / g.sum())[None, :], axis=1))
        self.kernels = np.maximum(kernels[:3], 1e-3)
        self._mixer = np.ascontiguousarray(self.kernels.T)
        # what swing changes: the half-beat class's kernel, swung minus straight
        self._swing_shift = np.maximum(kernels[3], 1e-3) - self.kernels[1]
        self.beat_probability = 0.0  # of the last cluster likelihood() was asked about
        self._coef_rows = [list(map(float, r)) for r in self.coef]
        self._intercepts = list(map(float, self.intercept))
        self.down_coef = np.array(m.DOWNBEAT_COEF)
        self.down_intercept = float(m.DOWNBEAT_INTERCEPT)

    def likelihood(self, x: np.ndarray, swing: float = 0.0) -> np.ndarray:
        """p(phase | features) / uniform over KERNEL_BINS phases: a mixture of the class kernels;
        ``swing`` (0..1) how far the half-beat class is taken as swung (TempoTracker._hear_swing)."""
        (a0, a1, a2), (b0, b1, b2), (c0, c1, c2) = self._coef_rows
        i0, i1, i2 = self._intercepts
        x0, x1, x2 = x
        z0, z1, z2 = a0 * x0 + a1 * x1 + a2 * x2 + i0, b0 * x0 + b1 * x1 + b2 * x2 + i1, c0 * x0 + c1 * x1 + c2 * x2 + i2
        top = max(z0, z1, z2)
        q0, q1, q2 = math.exp(z0 - top), math.exp(z1 - top), math.exp(z2 - top)
        total = q0 + q1 + q2
        self.beat_probability = q0 / total
        lik = self._mixer @ (q0 / total, q1 / total, q2 / total)
        if swing > 0.0:
            lik = lik + (swing * q1 / total) * self._swing_shift
        return lik

    def mix(self, classes: np.ndarray, swing: float = 0.0) -> np.ndarray:
        """The same phase likelihood from class probabilities said elsewhere (the learned GRU's)."""
        self.beat_probability = float(classes[0])
        lik = self._mixer @ classes
        if swing > 0.0:
            lik = lik + (swing * float(classes[1])) * self._swing_shift
        return lik

    def downbeat_logodds(self, x) -> float:
        return float(sum(c * v for c, v in zip(self.down_coef, x)) + self.down_intercept)


# ---------------------------------------------------------------------- the tempo model (IOI comb)
IOI_BIN = 0.01  # seconds: resolution of the inter-onset-interval histogram
IOI_BINS = 400  # intervals up to 4 s
IOI_MIN = 0.04  # shorter intervals are ornaments, rolled chords or flams
IOI_NEIGHBOURS = 8  # each onset pairs with at most this many before it
GRID_STEPS = 70  # tempo candidates per octave (1 %; 2x, 3x, 4x, 1.5x are whole steps)
GRID_BASE_BPM = MIN_BPM / 8.0
TEMPO_OFFSETS = (-111, -70, -41, 0, 41, 70, 111, 140)  # x1/3, x1/2, x2/3, x1, x1.5, x2, x3, x4 in grid steps
COMB_SIGMA = (0.02, 0.01)  # an interval's timing spread: 20 ms plus 1 % of it


def grid_bpm(g) -> np.ndarray:
    return GRID_BASE_BPM * 2.0 ** (np.asarray(g, dtype=float) / GRID_STEPS)


class IOIHistogram:
    """Inter-onset intervals between each onset cluster and its IOI_NEIGHBOURS predecessors (up
    to 4 s), counted in 10 ms bins with an exponential memory. O(IOI_NEIGHBOURS) per onset,
    plain Python: the tracker's per-note work."""

    def __init__(self, memory: float):
        self.memory = memory
        self.reset()

    def reset(self) -> None:
        self.counts = np.zeros(IOI_BINS)
        self._times: deque = deque(maxlen=IOI_NEIGHBOURS)
        self._ref: float | None = None  # counts are scaled by exp((t - _ref) / memory)
        self.pairs = 0.0  # the (scaled) total

    def add(self, t: float) -> None:
        if self._ref is None:
            self._ref = t
        grow = (t - self._ref) / self.memory
        if grow > 30.0:  # keep the scale finite: rebase
            f = math.exp(-grow)
            self.counts *= f
            self.pairs *= f
            self._ref, grow = t, 0.0
        w = math.exp(grow)
        counts = self.counts
        for prev in self._times:
            d = t - prev
            if IOI_MIN < d < IOI_BIN * IOI_BINS:
                counts[int(d / IOI_BIN)] += w
                self.pairs += w
        self._times.append(t)


def chordiness(cluster_times, features, memory: float, end: float) -> float:
    """The share of recent clusters that were chords (2 notes or more), with the histogram's
    memory: what the tracker keeps as a running value (fitting uses this)."""
    sel = np.asarray(cluster_times) < end
    if not sel.any():
        return 0.0
    w = np.exp((np.asarray(cluster_times)[sel] - end) / memory)
    return float((w * (np.asarray(features)[sel, 0] > 0.1)).sum() / w.sum())


def ioi_histogram(times, memory: float, end: float | None = None) -> np.ndarray:
    """The histogram an IOIHistogram holds after these cluster times (those before ``end``)."""
    h = IOIHistogram(memory)
    for t in times:
        if end is not None and t >= end:
            break
        h.add(float(t))
    return h.counts


class PeriodicityModel:
    """Which tempo the intervals say, metrical level included: a comb over the IOI histogram
    (observed minus chance, per candidate period) read at x1/3 ... x4 of each tempo candidate,
    plus a log-normal prior around the configured tempo, combined by weights fitted on the
    developers' train split (improvd.evaluation.timing_fit; improvd/tempo_model.py)."""

    def __init__(self, fallback_bpm: float, min_bpm: float = MIN_BPM, max_bpm: float = MAX_BPM):
        lo = int(math.ceil(GRID_STEPS * math.log2(min_bpm / GRID_BASE_BPM) - 1e-9))
        hi = int(math.floor(GRID_STEPS * math.log2(max_bpm / GRID_BASE_BPM) + 1e-9))
        self.cand = np.arange(lo, hi + 1)  # grid indices of the tempo candidates
        self.bpm = grid_bpm(self.cand)
        first, last = lo + min(TEMPO_OFFSETS), hi + max(TEMPO_OFFSETS)
        self._first = first
        period = 60.0 / grid_bpm(np.arange(first, last + 1))
        centres = (np.arange(IOI_BINS) + 0.5) * IOI_BIN
        sig = COMB_SIGMA[0] + COMB_SIGMA[1] * centres
        r = centres[None, :] / period[:, None]
        k = np.round(r)
        dist = np.abs(r - k) * period[:, None]
        comb = np.exp(-0.5 * (dist / sig[None, :]) ** 2) * (k >= 1)
        chance = np.minimum(1.0, sig[None, :] * math.sqrt(2.0 * math.pi) / period[:, None])
        self._comb = np.ascontiguousarray(comb - chance, dtype=np.float32)  # float32: one small gemv, ~10 us
        self._take = np.array([self.cand - first + o for o in TEMPO_OFFSETS]).T  # (candidates, offsets)
        x = np.log2(self.bpm / fallback_bpm)
        self._prior_x = np.stack([x, x * x], axis=1)
        from improvd import tempo_model as m

        self._w = np.array(getattr(m, "TEMPO_WEIGHTS", DEFAULT_TEMPO_WEIGHTS), dtype=float)

    def features(self, counts: np.ndarray, chords: float) -> np.ndarray:
        """(candidates, 2 (offsets + 2)): the comb at each level, scaled so its largest is 1, and
        the prior terms; then the same times the share of chords (piano textures and single
        lines put the beat at different levels of the same intervals)."""
        s = (self._comb @ counts.astype(np.float32)).astype(float)
        s = s / max(float(np.abs(s).max()), 1e-12)
        f = np.concatenate([s[self._take], self._prior_x], axis=1)
        return np.concatenate([f, chords * f], axis=1)

    def posterior(self, counts: np.ndarray, chords: float) -> np.ndarray:
        """p(tempo candidate | intervals), over self.bpm."""
        z = self.features(counts, chords) @ self._w
        z = np.exp(z - z.max())
        return z / z.sum()

    def best(self, p: np.ndarray) -> tuple[float, float]:
        """(bpm, confidence): the most probable candidate, refined between its neighbours, and the
        probability within 4 % of it."""
        i = int(p.argmax())
        bpm = float(self.bpm[i])
        if 0 < i < len(p) - 1:
            a, b, c = (math.log(max(float(v), 1e-300)) for v in p[i - 1:i + 2])
            den = a - 2 * b + c
            if den < 0:
                bpm *= 2.0 ** (float(np.clip(0.5 * (a - c) / den, -0.5, 0.5)) / GRID_STEPS)
        near = int(round(GRID_STEPS * math.log2(1.04)))
        return bpm, float(p[max(0, i - near):i + near + 1].sum())


DEFAULT_TEMPO_WEIGHTS = (1.16, 2.39, -1.56, 5.17, 1.65, 5.56, 2.04, 0.76, 3.68, 0.95) + (0.0,) * 10  # before a fit



class TempoTracker:
    """Causal tempo, beat and downbeat follower; the module docstring says how.

    ``onset`` is the whole input (one call per note-on, times in seconds, non-decreasing);
    ``estimate`` is the whole output.
    """

    def __init__(self, fallback_bpm: float = 120.0, meter: int | str = 4, settings: TrackerSettings | None = None):
        s = settings or TrackerSettings()
        if KERNEL_BINS % s.phase_bins:
            raise ValueError(f"phase_bins {s.phase_bins} must divide {KERNEL_BINS}")
        self.settings = s
        self.meter, self.compound = parse_meter(meter)
        self.fallback_bpm = float(min(s.max_bpm, max(s.min_bpm, fallback_bpm)))
        self.model = OnsetModel(self.compound, s.kernel_blur, s.swing_kernel)
        from improvd import tempo_net

        self.net = tempo_net.bundled() if s.net else None
        self._feed = tempo_net.ClusterInput(self.meter, self.compound)
        self._encode = tempo_net.encode
        self._phase_of_kernel = np.round(np.arange(KERNEL_BINS) * tempo_net.PHASE_BINS / KERNEL_BINS).astype(int) % tempo_net.PHASE_BINS
        self._phase_bins = tempo_net.PHASE_BINS
        P, per = s.phase_bins, s.rows_per_octave
        K = int(math.floor(math.log2(s.max_bpm / s.min_bpm) * per + 1e-9)) + 1
        self.rows = K
        self.freqs = s.min_bpm / 60.0 * 2.0 ** (np.arange(K) / per)  # beats a second
        self.periodicity = PeriodicityModel(self.fallback_bpm, s.min_bpm, s.max_bpm)
        self._ioi = IOIHistogram(s.ioi_memory)
        # each tempo row gathers the interval model's candidates nearest to it
        cand = np.log(self.periodicity.bpm / 60.0)
        nearest = np.abs(cand[:, None] - np.log(self.freqs)[None, :]).argmin(axis=1)
        self._cand_row = nearest
        self._log_freqs = np.log(self.freqs)
        self._bin_rate = self.freqs * P  # phase bins a second, per row
        self._move_rate = s.tempo_change * self.freqs if s.tempo_change_per_beat else None
        # flat indices that rotate row k by r bins: _rotate[k, r] (a table, so a rotation is one gather)
        cols = np.arange(P)
        self._rotate = (np.arange(K)[:, None, None] * P + (cols[None, None, :] - cols[None, :, None]) % P)
        self._row_index = np.arange(K)
        prior = np.exp(-0.5 * (np.log2(self.freqs * 60.0 / self.fallback_bpm) / s.prior_octaves) ** 2)
        self._prior = np.repeat((prior / prior.sum() / P)[:, None], P, axis=1)
        self._reopen_prior = s.reopen * self._prior
        self._kernel_step = KERNEL_BINS // P
        self._kernel_base = np.arange(P)[None, :] * self._kernel_step
        self._phasor = np.exp(2j * np.pi * np.arange(P) / P)
        self._offset_phase = 2j * np.pi / P
        self.reset()

    # ------------------------------------------------------------------ state
    def reset(self) -> None:
        """Forget the performer: a new piece, a new player."""
        self._p = self._prior.copy()  # posterior over (tempo row, phase bin at self._t)
        self._offset = np.zeros(self.rows)
        self._ioi.reset()
        self._chords = 0.0  # running share of chord clusters (the interval model's texture feature)
        self._chords_t: float | None = None
        self._chords_w = 0.0
        self._tempo_t = -math.inf  # when the interval model was last read
        self._tempo_p: np.ndarray | None = None
        self._ioi_bpm, self._ioi_confidence = self.fallback_bpm, 0.0
        self._family_weight: np.ndarray | None = None  # the interval model's weight per tempo row
        self._closed: list = []  # clusters heard but not yet taken into the filter: [t, x, pitch, applied x]
        self._open: list | None = None  # the cluster still open (a chord may add notes to it)
        self.costs = {"reestimate": deque(maxlen=4096), "catch_up": deque(maxlen=4096)}  # ns, for bench_update
        self._t: float | None = None
        self._cluster_t: float | None = None
        self._cluster_notes = 0
        self._lowest = self._loudest = 0.0
        self._mean_lowest: float | None = None
        self._mean_loudest = 0.0
        self._x = (0.0, 0.0, 0.0)
        self._lik: np.ndarray | None = None  # likelihood table of the open cluster
        self._idx: np.ndarray | None = None  # its kernel index for every state
        self._recent: deque = deque()
        self._flooding = False
        self._anchor_t: float | None = None  # output clock: beat = anchor_beat + (t - anchor_t) / period
        self._anchor_beat = 0.0
        self._period = 60.0 / self.fallback_bpm
        self._reported_bpm = self.fallback_bpm
        self._held_bpm = self.fallback_bpm
        self._settle: tuple[bool, float] | None = None  # (faster?, since) while the followed tempo stays off the reported one
        self._confidence = 0.0
        self._locked = False
        self._gap: float | None = None  # the interval before the last cluster (swing evidence)
        self._prev_cluster_t: float | None = None
        self._long_short = 0.0  # running share of interval pairs going long-short (against even ones)
        self._swing = 0.0  # how far the half-beat class is taken as swung now (0..1)
        self._follow: int | None = None
        self._residual = 0.0  # beats: where the player's on-beat notes land against the filter's phase
        self._rival: int | None = None
        self._rival_since = 0.0
        self._downbeat = np.zeros(self.meter)  # downbeat log-odds per beat-of-the-bar slot
        self._downbeat_slot = 0
        self._downbeat_seen: float | None = None
        self._history: deque = deque(maxlen=160)  # clusters taken in, for the level check: [t, x, ...]
        self._level_bpm: float | None = None  # the metrical level chosen (bpm), or None while undecided
        self._level_pick: float | None = None  # a level the check asks for, not yet held long enough
        self._level_since = 0.0
        self._level_loud = 0.0
        self._level_t = -math.inf
        self._revote = False
        self._revote_from = -math.inf
        self._fit: deque = deque(maxlen=12)  # (beat number, time, filter period) of on-beat clusters
        self._fit_period: float | None = None  # the line's period while it holds
        self._fit_miss = 0
        self._fit_rms = math.inf
        self._strict = False
        self._lead = False
        self._strict_until = -math.inf
        self._reseed_asked = 0
        self._fit_lost = -math.inf
        self._fit_entry = False
        self._line_apart = 0
        self._family_spread: np.ndarray | None = None
        self._count_in: list[tuple[float, int]] | None = []
        self.onsets = 0
        self._feed.reset()
        self._net_h = self.net.initial() if self.net is not None else None
        self._net_clusters = 0

    # ------------------------------------------------------------------ input
    def onset(self, time_s: float, pitch: int = 60, velocity: int = 64) -> None:
        """One note-on. Chord notes come as several calls at (nearly) the same time.

        O(1) and plain Python: the note joins its cluster (or opens one), the interval histogram
        takes its intervals to the last few clusters. The filter takes the clusters in when the
        time is next asked for (``estimate``), so a burst of notes costs the input path little."""
        s = self.settings
        t = float(time_s)
        if self._anchor_t is None:
            self._anchor_t, self._anchor_beat = t, 0.0  # the first note is taken as beat one
        if self._flood(t):
            return
        if self._cluster_t is not None and t - self._cluster_t < s.chord_window:
            self._cluster_notes += 1
            if self._cluster_notes > s.chord_notes:
                return
            self._lowest, self._loudest = min(self._lowest, pitch), max(self._loudest, velocity)
            self._x = cluster_features(self._cluster_notes, self._lowest, self._loudest, self._mean_lowest, self._mean_loudest)
            self._open[1] = self._x
            if self.net is not None:
                self._open[4] = self._feed.row(self._cluster_t, self._cluster_notes, self._lowest, self._loudest)
            return
        if self._cluster_t is not None:  # the open cluster is complete: it joins the running means
            a = s.feature_memory
            self._mean_lowest = (1 - a) * self._mean_lowest + a * self._lowest
            self._mean_loudest = (1 - a) * self._mean_loudest + a * self._loudest
            chord = 1.0 if self._cluster_notes >= 2 else 0.0
            fade = math.exp(-(self._cluster_t - self._chords_t) / s.ioi_memory) if self._chords_t is not None else 0.0
            self._chords_w = fade * self._chords_w + 1.0  # an exponentially weighted mean, as chordiness()
            self._chords += (chord - self._chords) / self._chords_w
            self._chords_t = self._cluster_t
            self._closed.append(self._open)
            if self.net is not None:
                self._feed.close(self._cluster_t, self._lowest, self._loudest)
        self._cluster_t, self._cluster_notes = t, 1
        self._lowest, self._loudest = float(pitch), float(velocity)
        if self._mean_lowest is None:
            self._mean_lowest, self._mean_loudest = float(pitch), float(velocity)
        self._x = cluster_features(1, pitch, velocity, self._mean_lowest, self._mean_loudest)
        row = self._feed.row(t, 1, float(pitch), float(velocity)) if self.net is not None else None
        self._open = [t, self._x, pitch, None, row, None, None]  # [4:]: the net's input row, state before, output
        self.onsets += 1
        self._ioi.add(t)

    def _catch_up(self) -> None:
        """Take the clusters heard since the last call into the filter, in order."""
        if not self._closed and (self._open is None or self._open[3] is self._open[1]):
            return
        t0 = _time.perf_counter_ns()
        for rec in self._closed:
            self._apply(rec)
            self._downbeat_vote(rec)
            self._history.append(rec)
        self._closed.clear()
        if self._open is not None:
            self._apply(self._open)
        self.costs["catch_up"].append(_time.perf_counter_ns() - t0)

    def _apply(self, rec: list) -> None:
        """One cluster's evidence into the filter; a cluster taken in before its chord was
        complete has its evidence revised."""
        s = self.settings
        t, x, pitch, applied = rec[:4]
        if applied is x:
            return
        if applied is None and s.swing_kernel > 0.0 and not self.compound:
            self._hear_swing(t)
        if self.net is not None:  # rec[5]: the net's state before this cluster; rec[6]: its output
            if applied is None:
                rec[5] = self._net_h
                self._net_clusters += 1
            out = self.net.step(rec[5], self._encode(rec[4])[0], phase=s.net_phase > 0)
            rec[6] = out
            self._net_h = out.hidden
            if out.phase is not None and s.net_phase > 0:
                self.model.beat_probability = float(out.classes[0])
                q = (out.phase * self._phase_bins) ** s.net_phase
                lik = (1.0 - s.net_floor) * q[self._phase_of_kernel] / float(q.mean()) + s.net_floor
            else:
                lik = self.model.mix(out.classes, self._swing)
            if s.net_mix < 1.0:
                own, own_beat = self.model.likelihood(x, self._swing), self.model.beat_probability
                lik = own ** (1.0 - s.net_mix) * lik ** s.net_mix
                self.model.beat_probability = (1.0 - s.net_mix) * own_beat + s.net_mix * float(out.classes[0])
        else:
            lik = self.model.likelihood(x, self._swing)
        if applied is not None:
            self._p *= (lik / self._lik)[self._idx]  # the cluster's evidence, revised with its new notes
            self._p *= 1.0 / self._p.sum()
            self._lik = lik
            rec[3] = x
            self._normalise_and_follow(t)
            return
        rec[3] = x
        if t >= self._tempo_t + s.tempo_every:
            self._read_intervals(t)
        self._advance(t)
        self._idx = self._kernel_base + (self._offset * self._kernel_step).astype(int)[:, None]
        self._lik = lik
        self._p *= lik[self._idx]
        self._p *= (1.0 - s.reopen) / self._p.sum()
        self._p += self._reopen_prior  # a mixture: a wrong lock can always be left
        if not self._count_in_heard(t, pitch):
            self._normalise_and_follow(t)

    def _hear_swing(self, t: float) -> None:
        """How swung the playing is, from consecutive inter-onset intervals: a pair going long then
        short (swing_ratio, 1.6-2.4 times) counts for swing, an even pair (within 25 %) against
        it, anything else not at all. The filter cannot tell this itself: it would need a swing state per
        hypothesis, and a swung line is otherwise explained best at the wrong tempo (swung_half)."""
        s = self.settings
        prev = self._prev_cluster_t
        self._prev_cluster_t = t
        if prev is None:
            return
        gap, before = t - prev, self._gap
        self._gap = gap
        if before is None or gap <= IOI_MIN or before > 2.0:
            return
        r = before / gap
        if s.swing_ratio[0] <= r <= s.swing_ratio[1]:
            vote = 1.0
        elif 0.8 <= r <= 1.25:
            vote = 0.0
        else:
            return
        self._long_short += s.swing_memory * (vote - self._long_short)
        self._swing = min(1.0, max(0.0, (self._long_short - s.swing_from) / (s.swing_full - s.swing_from)))

    def _read_intervals(self, t: float) -> None:
        """The interval model's tempo posterior: heavier than a note, so at most every tempo_every."""
        s = self.settings
        t0 = _time.perf_counter_ns()
        self._tempo_t = t
        if self._ioi.pairs <= 0.0:
            return
        p = self.periodicity.posterior(self._ioi.counts, self._chords)
        if self.net is not None and self._net_clusters:
            q = np.log(np.maximum(p, 1e-300)) * s.net_intervals
            if s.net_tempo:  # (its head is a gemv over the whole tempo grid: skipped when not read)
                q = q + np.log(np.maximum(self.net.tempo(self._net_h), 1e-300)) * s.net_tempo
            p = np.exp(q - q.max())
            p /= p.sum()
        self._tempo_p = p
        self._ioi_bpm, self._ioi_confidence = self.periodicity.best(p)
        self._ioi_bpm = min(s.max_bpm, max(s.min_bpm, self._ioi_bpm))
        if s.periodicity_weight:
            rows = np.bincount(self._cand_row, weights=p, minlength=self.rows)
            w = rows / rows.max()
            self._family_weight = (w + 1e-3) ** s.periodicity_weight
            if s.family_spread:  # once a level is chosen the intervals say the level, the beats the tempo
                r = s.family_spread
                padded = np.concatenate([np.full(r, w[0]), w, np.full(r, w[-1])])
                w = np.max(np.lib.stride_tricks.sliding_window_view(padded, 2 * r + 1), axis=1)
                self._family_spread = (w + 1e-3) ** s.periodicity_weight
        if s.level_select and not self.compound and s.fit_beats and s.reseed and self._level_bpm is not None and self._strict \
                and self._lead and (s.reseed_entry or t >= self._level_t + s.level_every):
            self._reseed(t)  # (every tempo_every with reseed_entry: a new phrase's grid is wanted within its first beats)
        if s.level_select and not self.compound and t >= self._level_t + s.level_every:
            self._level_t = t
            self._check_level(t)
        self.costs["reestimate"].append(_time.perf_counter_ns() - t0)

    def _level_rates(self, t: float) -> dict | None:
        """How often the grid points of each metrical level (x1/4 ... x4 of the followed beat)
        have an onset cluster on them over the last few seconds, at the best phase and the best
        tempo within 2 % of the followed one; grid points inside rests (gaps of more than a couple
        of beats) do not count."""
        s = self.settings
        period = self._period
        span = min(s.level_window[1], max(s.level_window[0], s.level_window_beats * period))
        hist = self._history
        n = len(hist)
        k = n
        while k > 0 and (hist[k - 1][0] > t - span or n - k < s.level_min_clusters + 4) and hist[k - 1][0] > t - 20.0:
            k -= 1
        if n - k < s.level_min_clusters:
            return None
        times = np.array([hist[i][0] for i in range(k, n)])
        loud = np.array([hist[i][1][2] for i in range(k, n)])
        self._level_loud = float(loud.mean())
        u = (times - 0.5 * (times[0] + times[-1])) / period  # beats of the followed level, from the middle
        gaps = np.diff(times)
        cut = np.flatnonzero(gaps > max(1.2, 2.5 * period))  # rests split the window into stretches
        first, last = np.concatenate([[0], cut + 1]), np.concatenate([cut, [len(u) - 1]])
        stretch = (np.array([0.98, 0.99, 1.0, 1.01, 1.02]))[:, None]
        out = {}
        for f in (0.25, 0.5, 1.0, 2.0, 4.0):
            bpm = 60.0 / period * f
            if not (max(s.level_min_bpm, s.min_bpm) <= bpm <= s.max_bpm):
                continue
            cp = period / f
            tol = min(0.07, max(0.03, 0.1 * cp)) / cp  # candidate beats
            phases = np.arange(0.0, 1.0, tol)
            w = ((u * f)[None, :] * stretch)[:, None, :] - phases[None, :, None]  # (stretch, phase, cluster)
            w = w.reshape(-1, len(u))
            r = np.round(w)
            hit = np.abs(w - r) < tol
            hit[:, 1:] &= ~(hit[:, :-1] & (r[:, 1:] == r[:, :-1]))  # one hit a grid point
            expected = (np.floor(w[:, last] + tol) - np.ceil(w[:, first] - tol) + 1).sum(axis=1)
            rate = hit.sum(axis=1) / np.maximum(expected, 1.0)
            if expected.min() < 4:
                continue
            sums = hit @ loud
            i = int((rate + 1e-3 * sums / len(u)).argmax())  # ties: the phase on the louder notes
            dev = (w[i] - r[i])[hit[i]] * cp  # how far the hits lie from a straight grid, trend removed
            x = u[hit[i]]
            if len(x) >= 3 and np.ptp(x) > 0:
                dev = dev - np.polyval(np.polyfit(x, dev, 1), x)
            rms = float(np.sqrt(np.mean((dev - dev.mean()) ** 2))) if len(dev) else math.inf
            out[f] = (float(rate[i]), int(hit[i].sum()), float(sums[i]), rms)
        return out

    def _reseed(self, t: float) -> None:
        """Is the line through the beats still the player's? Among the grids within the chosen
        level (x0.7 ... x1.43 of it, every phase), the one whose points the last stretch of
        playing hits most often: when it beats the line's own grid by reseed_margin twice
        running (or there is no line), the line starts again from its hits. Twice as fast wins
        when its grid is hit as often and the points it adds are not only the weakest notes."""
        s = self.settings
        hist = self._history
        if s.reseed_entry:  # the clusters heard up to t but not yet in the history count too (their times are known)
            after = hist[-1][0] if hist else -math.inf
            more = [r for r in self._closed + ([self._open] if self._open is not None else []) if after < r[0] <= t]
            if more:
                hist = list(hist) + more
        n = len(hist)
        base = 60.0 / self._level_bpm
        rest = max(1.2, 2.5 * base)
        start = max(t - max(s.reseed_window, s.reseed_beats * base), self._fit_lost)
        k = n - 1  # back to the start of the last stretch of playing, at most a few seconds
        while k > 0 and hist[k - 1][0] >= start and hist[k][0] - hist[k - 1][0] < rest:
            k -= 1
        # a phrase that starts after a rest: a strict player starts it on a beat (the phase is pinned)
        entry = s.reseed_entry and k > 0 and hist[k][0] - hist[k - 1][0] >= rest
        if n - k < (s.reseed_entry_clusters if entry else 6):
            return
        times = np.array([hist[i][0] for i in range(k, n)])
        loud = np.array([hist[i][1][2] for i in range(k, n)])
        periods = base * np.exp(np.linspace(-0.36, 0.36, 73))
        tol = 0.1
        phases = np.array([0.0]) if entry else np.arange(0.0, 1.0, tol)
        npc = len(phases)
        per = np.repeat(periods, npc)
        ref = 0 if entry else -1  # grid beats counted from the phrase's first note, or the last note
        u = (times - times[ref])[None, :] / per[:, None] - np.tile(phases, len(periods))[:, None]

        def rate(u: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
            r = np.round(u)
            hit = np.abs(u - r) < tol
            hit[:, 1:] &= ~(hit[:, :-1] & (r[:, 1:] == r[:, :-1]))
            count = np.floor(u[:, -1] + tol) - np.ceil(u[:, 0] - tol) + 1
            return np.where(count >= least, hit.sum(axis=1) / np.maximum(count, least), 0.0), hit

        least = 3.0 if entry else 4.0

        score, hit = rate(u)
        key = score + 1e-3 * np.tanh(hit @ loud / len(times))  # ties: the phase on the louder notes
        if entry:  # (few points: ties are many) the grid through more notes, then the one nearer the tempo held
            key = key + 2e-3 * hit.sum(axis=1) - 1e-3 * np.abs(np.log(per / base))
        best = int(key.argmax())
        if hit[best].sum() < least or score[best] < s.level_keep:
            return
        half = int(np.abs(np.log(periods / (0.5 * per[best]))).argmin())
        if abs(math.log(periods[half] / (0.5 * per[best]))) < 0.015:  # twice as fast is in range
            rows = slice(half * npc, (half + 1) * npc)
            j = half * npc + int((score[rows] + 1e-3 * np.tanh(hit[rows] @ loud / len(times))).argmax())
            added = int(hit[j].sum() - hit[best].sum())
            if added >= 2 and score[j] >= s.level_ratio * score[best] \
                    and (float(hit[j] @ loud) - float(hit[best] @ loud)) / added >= float(loud.mean()) - s.level_weak:
                best = j
        held_entry = entry and self._anchor_t is not None
        if held_entry or self._fit_period is not None:  # the grid held, on the same notes
            now, now_hit = rate(self._position(times)[None, :])
        if held_entry and hit[best].sum() <= now_hit[0].sum():
            # a phrase's first notes: the new grid must pass through more of them than the grid
            # held does (with one note left out, or lost on the way, a grid 1.43 times slower
            # went through three of the first four as the held one did, and its fewer points
            # made it score higher)
            return
        if self._fit_period is not None:  # the line holds: does the playing of late fit another grid better?
            if score[best] < float(now[0]) + s.reseed_margin:
                self._reseed_asked = 0
                return
            self._reseed_asked += 1
            if self._reseed_asked < (1 if entry else 2):
                return
        self._reseed_asked = 0
        r = np.round(u[best])
        held_pos = self._position(times[ref])
        shift = round(held_pos - u[best, ref])
        # the bar is counted on from the held grid when the phrase's first note falls within a quarter
        # beat of one of its beats; voted again from the phrase only when not (with its downbeat lost, the
        # phrase's first notes put beat one on its loud third beat: the answer came two beats off)
        keep_bar = entry and abs(held_pos - round(held_pos)) < 0.25
        fit = self._fit
        fit.clear()
        for i in np.flatnonzero(hit[best]):
            fit.append((int(r[i]) + shift, float(times[i]), float(per[best])))
        line = self._line()
        if line is None:
            fit.clear()
            return
        slope, icept = line
        self._fit_period = slope
        self._fit_miss = 0
        self._fit_entry = entry
        if not keep_bar:
            self._revote, self._revote_from = True, float(times[0])
        self._anchor_t, self._anchor_beat, self._period = float(times[-1]), (float(times[-1]) - icept) / slope, slope
        if entry:  # the filter starts again there too (its old tempo would pull the grid back)
            self._recentre_at(self._anchor_beat + ((self._t if self._t is not None else t) - self._anchor_t) / slope, slope)

    def _steady(self) -> bool:
        """The player keeps a strict beat now: at the last level check some metrical level's grid
        was hit nearly everywhere (rubato, as in most piano playing, leaves the level to the filter)."""
        return self._strict

    def _check_level(self, t: float) -> None:
        """The metrical level a listener taps: from the slowest level up, twice as fast while its
        grid points are still hit (nearly) as often: the beat is where the onsets recur, the
        subdivisions that are only sometimes played are not. A new level must be asked for
        running for level_hold seconds (hysteresis); then the rows outside it weigh little."""
        s = self.settings
        if self._follow is None or self._anchor_t is None or not self._locked:
            return
        rates = self._level_rates(t)
        if not rates or 1.0 not in rates:
            return
        strict = any(r[0] >= s.level_strict and r[1] >= s.level_strict_hits and r[3] <= s.level_strict_rms for r in rates.values())
        if any(r[0] >= s.level_strict and r[1] >= s.level_strict_hits and r[3] <= s.lead_rms for r in rates.values()) \
                or (self._lead and self._fit_period is not None and len(self._fit) >= s.level_strict_hits
                    and self._fit_rms <= s.lead_rms):  # (or the line through a tempo change: no one grid fits it)
            self._strict_until = t + s.level_strict_hold
        self._lead = t <= self._strict_until  # an exact beat: the line leads, through tempo changes and rests
        self._strict = strict or self._lead
        if not self._strict:
            return
        if max(r[0] for r in rates.values()) < s.level_keep:  # no grid is kept: no level either
            self._level_bpm = self._level_pick = None
            return
        levels = sorted(rates)
        chosen = levels[0]
        fine = [chosen]  # the levels whose grids the playing fills: from the slowest up, while...
        for f in levels[1:]:
            (r0, h0, l0, _), (r1, h1, l1, _) = rates[chosen], rates[f]
            filled = r1 > 0 and r1 >= s.level_ratio * r0  # ...its grid is hit (nearly) as often, and
            strong = h1 - h0 < 2 or (l1 - l0) / (h1 - h0) >= self._level_loud - s.level_weak  # the points it adds
            # carry more than the weakest notes (else a subdivision); the level held is kept unless it only subdivides
            if not (strong if f == 1.0 else (filled and strong)):
                break
            chosen = f
            fine.append(f)
        if s.level_by_intervals and self._family_weight is not None and len(fine) > 1:
            # which of those the listener taps: the interval model's choice among them (the level held wins a tie)
            rows = [int(np.argmin(np.abs(self._log_freqs - math.log(f / self._period)))) for f in fine]
            weight = [float(self._family_weight[r]) * (s.level_hold_bonus if f == 1.0 else 1.0) for f, r in zip(fine, rows)]
            chosen = fine[int(np.argmax(weight))]
        target = 60.0 / self._period * chosen
        if chosen == 1.0:
            self._level_pick = None
            if self._level_bpm is None or abs(math.log2(self._level_bpm / target)) > s.level_band:
                self._level_bpm = target
            return
        if self._level_pick is None or abs(math.log2(self._level_pick / target)) > 0.2:
            self._level_pick, self._level_since = target, 1
        else:
            self._level_since += 1
            if self._level_since >= s.level_hold:
                self._level_bpm, self._level_pick = target, None

    def _flood(self, t: float) -> bool:
        """More note-ons in a second than a person plays is not music to follow: those notes are
        not listened to, and confidence is zero until the flood is over."""
        s = self.settings
        recent = self._recent
        recent.append(t)
        while recent and recent[0] < t - s.flood_window:
            recent.popleft()
        flooding = len(recent) > s.flood_notes
        if flooding and not self._flooding:
            self._confidence, self._locked = 0.0, False
        self._flooding = flooding
        while len(recent) > 2 * s.flood_notes:  # bounded however long the flood
            recent.popleft()
        return flooding

    def _advance(self, t: float) -> None:
        """Move every hypothesis's phase on to time t, and let some mass drift to the
        neighbouring tempi in proportion to the time that passed."""
        s = self.settings
        if self._t is None:
            self._t = t
            return
        dt = t - self._t
        if dt <= 0.0:
            return
        self._t = t
        bins = self._offset + dt * self._bin_rate
        shift = np.floor(bins)
        self._offset = bins - shift
        p = self._p.take(self._rotate[self._row_index, shift.astype(np.intp) % s.phase_bins])
        if self._move_rate is None:  # the same drift for every row: scalar work
            move = min(s.tempo_change_cap, dt * s.tempo_change) * p
        else:
            move = np.minimum(s.tempo_change_cap, dt * self._move_rate)[:, None] * p
        p -= move
        p -= move
        p[1:] += move[:-1]
        p[:-1] += move[1:]
        self._p = p

    def _count_in_heard(self, t: float, pitch: int) -> bool:
        """The first notes, one key struck evenly ``meter`` times (at least 3): take tempo, phase
        and the bar from them at once. Any other start ends the chance of a count-in."""
        s = self.settings
        if self._count_in is None:
            return False
        self._count_in.append((t, pitch))
        heard = self._count_in
        need = max(3, self.meter)
        gaps = np.diff([n[0] for n in heard])
        if len({n[1] for n in heard}) > 1 or (len(gaps) and not (60.0 / s.max_bpm <= gaps[-1] <= 60.0 / s.min_bpm)) \
                or (len(gaps) > 1 and abs(gaps[-1] - gaps.mean()) > s.count_in_tolerance * gaps.mean()):
            self._count_in = None
            return False
        if len(heard) < need:
            return False
        self._count_in = None
        period = float(gaps.mean())
        k = int(np.argmin(np.abs(self._log_freqs - math.log(1.0 / period))))
        p = np.full_like(self._p, 1e-6)
        j = int(round(-self._offset[k])) % s.phase_bins  # the bin whose phase is 0 now
        for dk in (-1, 0, 1):
            if 0 <= k + dk < self.rows:
                p[k + dk, j] = 1.0 if dk == 0 else 0.25
        self._p = p / p.sum()
        self._follow, self._rival = k, None
        self._anchor_t, self._anchor_beat, self._period = t, float(need - 1), period
        self._downbeat[:] = 0.0
        self._downbeat_slot = need % self.meter  # the beat after the count-in is beat one
        self._confidence, self._locked = 1.0, True
        self._reported_bpm = self._held_bpm = float(np.clip(60.0 / period, s.min_bpm, s.max_bpm))
        return True

    def _downbeat_vote(self, rec: list, force: bool = False) -> None:
        """A complete cluster that fell on a beat adds its downbeat log-odds to that beat's slot."""
        s = self.settings
        if self.meter < 2 or self._confidence < s.follow_confidence:
            return
        t, x = rec[0], rec[1]
        pos = self._position(t)
        beat = round(pos)
        if abs(pos - beat) > 0.15:
            return
        if self._downbeat_seen is not None:
            fade = math.exp(-max(0.0, pos - self._downbeat_seen) / (s.downbeat_memory_bars * self.meter))
            self._downbeat *= fade
        self._downbeat_seen = pos
        slot = beat % self.meter
        if len(rec) > 6 and rec[6] is not None:
            self._downbeat[slot] += s.net_downbeat * rec[6].downbeat_logodds
        else:
            self._downbeat[slot] += self.model.downbeat_logodds(x) - s.downbeat_base * self.model.down_intercept + s.downbeat_loud * x[2]
        best = int(self._downbeat.argmax())
        if force or best != self._downbeat_slot and self._downbeat[best] > self._downbeat[self._downbeat_slot] + s.downbeat_margin:
            self._downbeat_slot = best

    # ------------------------------------------------------------------ the decision
    def _normalise_and_follow(self, t: float) -> None:
        s = self.settings
        own = self._p.sum(axis=1)  # the filter's mass per tempo row...
        plain = own * self._family_weight if self._family_weight is not None else own  # (what confidence reads)
        if self._level_bpm is not None and self._steady():  # ...weighed by the metrical level chosen, while the beat is steady:
            off = np.log2(self.freqs * 60.0 / self._level_bpm)
            rows = plain = own * np.where(np.abs(off) <= s.level_band, 1.0, np.where(off > 0, s.level_floor_up, s.level_floor))
            if self._fit_period is not None and s.fit_leads and self._lead:  # the tempo the player's beats keep, while they keep one
                d = (self._log_freqs + math.log(self._fit_period)) * (s.rows_per_octave / math.log(2.0))
                rows *= np.exp(-0.5 * (d / s.fit_rows) ** 2) + 1e-3
            elif self._family_spread is not None:  # or the interval model, as a level
                rows *= self._family_spread
            elif self._family_weight is not None:
                rows *= self._family_weight
        elif self._family_weight is not None:  # ...or by the interval model until then
            rows = own * self._family_weight
        else:
            rows = own
        best = int(rows.argmax())
        follow = self._follow
        if follow is None:
            follow = best
        else:
            lo, hi = max(0, follow - 2), min(self.rows, follow + 3)
            local = lo + int(rows[lo:hi].argmax())
            if abs(best - local) > 2 and rows[best] > (1.0 + s.switch_margin) * rows[local]:
                if self._rival is None or abs(self._rival - best) > 2:
                    self._rival, self._rival_since = best, t
                elif (t - self._rival_since) * self.freqs[best] >= s.switch_beats:
                    local, self._rival = best, None
                    self._downbeat[:] = 0.0  # another beat level: the bar is to be found again
                    self._residual = 0.0
                    self._revote = True
                    self._fit.clear()
                    self._fit_period = None
            else:
                self._rival = None
            follow = local
        self._follow = follow
        lo, hi = max(0, follow - 1), min(self.rows, follow + 2)
        near = rows[lo:hi]
        weight = float(near.sum())
        mass = float(plain[lo:hi].sum()) / float(plain.sum())
        # sure when either the filter has settled or the onsets are clearly periodic, each
        # measured against what random onsets reach (fitted on random onsets, train side)
        chance = s.chance_mass if self.net is None else s.net_chance_mass
        sure = (mass - chance) / (1.0 - chance)
        if self._tempo_p is not None:  # or the intervals clearly say the followed tempo
            said = float(self._tempo_p[np.abs(self._cand_row - follow) <= 1].sum())
            chance = s.chance_interval if self.net is None else s.net_chance_interval
            sure = max(sure, (said - chance) / (1.0 - chance))
        self._confidence = 0.0 if self._flooding else min(1.0, max(0.0, sure))
        if self._locked and self._confidence < 0.5 * s.lock_confidence:
            self._locked = False
        elif not self._locked and self._confidence >= s.lock_confidence and self.onsets >= s.lock_onsets:
            self._locked = True
        if self._confidence < s.follow_confidence and not self._locked:
            return  # too unsure even to bend the grid: it runs on at the held tempo
        freq = math.exp(float(near @ self._log_freqs[lo:hi]) / max(weight, 1e-300))
        # the beat's phase now: circular mean over the rows around the followed one (a row a
        # little faster than the player runs ahead of the beat, one a little slower lags: together
        # they interpolate), each row's bins shifted by its own fractional offset
        z = complex((self._p[lo:hi] @ self._phasor) @ np.exp(self._offset_phase * self._offset[lo:hi]))
        phase = (math.atan2(z.imag, z.real) / (2 * math.pi)) % 1.0
        pos = self._position(t)
        beat = pos + (phase + self._residual - pos + 0.5) % 1.0 - 0.5
        # the filter's phase comes from 5 %-apart tempo rows and a kernel fitted elsewhere: a
        # beat-like note close to the grid's beat says how far off that leaves the grid
        off = (beat + 0.5) % 1.0 - 0.5
        if abs(off) < s.residual_window:
            shift = s.residual_gain * self.model.beat_probability * off
            self._residual -= shift
            beat -= shift
        period = 1.0 / freq
        if s.fit_beats:
            beat, period = self._fit_beats(t, beat, period)
            if s.line_recentre and s.fit_leads and self._lead and self._fit_period is not None:
                self._recentre(t, beat, freq)
        self._anchor_t, self._anchor_beat = t, beat
        self._period = min(60.0 / s.min_bpm, max(60.0 / s.max_bpm, period))
        if self._level_bpm is not None and self._fit_period is not None \
                and abs(math.log2(self._level_bpm * self._fit_period / 60.0)) <= s.level_band:
            self._level_bpm = 60.0 / self._fit_period  # the chosen level follows the player's tempo
        if self._revote:  # a new beat level: where beat one is, from the clusters just heard
            self._revote = False
            self._downbeat_seen = None
            span = min(s.level_window[1], max(s.level_window[0], s.level_window_beats * self._period))
            since = max(t - span, self._revote_from)
            self._revote_from = -math.inf
            self._downbeat[:] = 0.0
            for rec in self._history:
                if rec[0] >= since:
                    self._downbeat_vote(rec, force=True)
        if self._locked:
            self._reported_bpm = self._held_bpm = self._moved(t, 60.0 / self._period, self._reported_bpm)
        elif (s.commit_confidence < 1.0 and self._ioi_confidence >= s.commit_confidence
              and self.onsets >= s.commit_onsets and not self._flooding):
            # not locked on a beat yet, but the intervals clearly say a tempo: play at it
            bpm = self._ioi_bpm if s.commit_to == "intervals" else 60.0 / self._period
            self._held_bpm = self._moved(t, bpm, self._held_bpm)

    def _moved(self, t: float, bpm: float, shown: float) -> float:
        """The bpm to report: the one shown until the heard one leaves the dead band, or stays a
        little off it on one side for a few of its beats (a steady small gap is the tempo, not
        rubato; left alone it kept estimates 1.9 % off for whole solos)."""
        s = self.settings
        off = bpm / shown - 1.0
        if abs(off) > s.bpm_deadband:
            self._settle = None
            return bpm
        if not s.bpm_settle_beats or abs(off) <= s.bpm_settle:
            self._settle = None
            return shown
        if self._settle is None or self._settle[0] != (off > 0):
            self._settle = (off > 0, t)
            return shown
        if (t - self._settle[1]) * bpm / 60.0 >= s.bpm_settle_beats:
            self._settle = None
            return bpm
        return shown

    def _recentre(self, t: float, beat: float, freq: float) -> None:
        """A strict player's line has moved away from the filter's tempo (a ritardando, a new
        tempo) and stays away: the filter starts again at the line's tempo and phase, and the
        interval model forgets the old tempo's intervals."""
        s = self.settings
        if abs(math.log(freq * self._fit_period)) <= s.line_recentre:
            self._line_apart = 0
            return
        self._line_apart += 1
        if self._line_apart < s.line_recentre_n:
            return
        self._line_apart = 0
        self._recentre_at(beat, self._fit_period)

    def _recentre_at(self, beat: float, period: float) -> None:
        """The filter's mass on the row nearest ``period`` at the phase of ``beat`` now; the
        interval model's memory forgotten."""
        s = self.settings
        k = int(np.argmin(np.abs(self._log_freqs + math.log(period))))
        P = s.phase_bins
        p = np.full_like(self._p, 1e-6)
        for dk in (-1, 0, 1):
            if 0 <= k + dk < self.rows:
                j = int(round((beat % 1.0) * P - self._offset[k + dk])) % P
                p[k + dk, j] = 1.0 if dk == 0 else 0.25
        self._p = p / p.sum()
        self._residual = 0.0
        self._follow, self._rival = k, None
        self._ioi.reset()
        self._tempo_p = None
        self._family_weight = self._family_spread = None

    def _fit_beats(self, t: float, beat: float, period: float) -> tuple[float, float]:
        """The player's steady tempo and phase from their last on-beat notes: a weighted line
        through (beat number, time), recent ones weighing more (the filter's rows are 5 % apart;
        this is what the grid runs on between phrases). Started where the filter's beat is;
        once running, the line says itself which notes are on its beats (it follows a gradual
        change of tempo) and is dropped after fit_misses beat-like notes just off them."""
        s = self.settings
        fit = self._fit
        active = self._fit_period is not None
        agree = s.fit_agree_strict if self._strict else s.fit_agree
        leads = s.fit_leads and self._lead  # a strict player's line follows their tempo changes itself
        if (not active or not leads) and fit and abs(math.log(fit[-1][2] / period)) > agree:
            fit.clear()
        ref = self._position(t) if active and leads else beat
        off = (ref + 0.5) % 1.0 - 0.5
        if abs(off) < s.fit_window:
            k = round(ref)
            if fit and fit[-1][0] == k:
                fit.pop()
            fit.append((k, t, period))
            self._fit_miss = 0
        elif active and abs(off) < 0.3 and self.model.beat_probability >= s.fit_strong:
            self._fit_miss += 1
            if self._fit_miss >= s.fit_misses:
                self._fit_lost = t - s.fit_misses * self._period  # a new grid is looked for from about here
                fit.clear()
                self._fit_miss = 0
                self._fit_period = None
                return beat, period
        if len(fit) >= 4 and fit[-1][0] - fit[0][0] >= 3:
            self._fit_entry = False
        elif not (self._fit_entry and active and leads and len(fit) >= 3):  # (a new phrase's first beats)
            self._fit_period = None
            return beat, period
        line = self._line()
        if line is None or abs(math.log(line[0] / period)) > (s.level_band * math.log(2.0) if active and leads else agree):
            fit.clear()
            self._fit_period = None
            return beat, period
        slope, icept = line
        fitted = (t - icept) / slope
        if (not active or not leads) and abs(fitted - beat) > 0.25:
            return beat, period
        self._fit_period = slope
        return fitted, slope

    def _line(self) -> tuple[float, float] | None:
        """(period, time of beat 0) of the grid through the fit's (beat, time) points now: a
        weighted line, or, when the points bend clearly (a ritardando, an accelerando), the
        tangent at the last one of a weighted parabola. Plain Python sums: a dozen points."""
        fit = self._fit
        s = self.settings
        last = fit[-1][0]
        m = [0.0] * 5  # sums of w x^j
        v = [0.0] * 3  # sums of w t x^j
        for k, tk, _ in fit:
            x = k - last
            w = math.exp(x / s.fit_memory)
            xx = x * x
            m[0] += w
            m[1] += w * x
            m[2] += w * xx
            m[3] += w * xx * x
            m[4] += w * xx * xx
            v[0] += w * tk
            v[1] += w * tk * x
            v[2] += w * tk * xx
        den = m[0] * m[2] - m[1] * m[1]
        if den <= 0:
            return None
        slope = (m[0] * v[1] - m[1] * v[0]) / den
        icept = (v[0] - slope * m[1]) / m[0]
        if slope <= 0:
            return None
        tss = sum(math.exp((k - last) / s.fit_memory) * tk * tk for k, tk, _ in fit)
        r1 = max(0.0, tss - icept * v[0] - slope * v[1]) / m[0]  # weighted mean squared residual
        self._fit_rms = math.sqrt(r1) if len(fit) >= 6 else math.inf
        if s.fit_bend and len(fit) >= 6 and fit[0][0] - last <= -5:
            a = np.array([[m[0], m[1], m[2]], [m[1], m[2], m[3]], [m[2], m[3], m[4]]])
            try:
                c = np.linalg.solve(a, np.array(v))
            except np.linalg.LinAlgError:
                c = None
            if c is not None:
                r2 = max(0.0, tss - float(c @ np.array(v))) / m[0]
                if math.sqrt(r1) > s.fit_bend * max(math.sqrt(r2), 0.002) and c[1] > 0:
                    icept, slope = float(c[0]), float(c[1])
                    self._fit_rms = math.sqrt(r2)
                    if s.fit_leads and self._lead:  # the period of the beat to come: the tangent half a beat on
                        slope = max(float(c[1]) + float(c[2]), 0.5 * float(c[1]))
        return slope, icept - slope * last

    def _position(self, t: float) -> float:
        if self._anchor_t is None:
            return 0.0
        return self._anchor_beat + (t - self._anchor_t) / self._period

    # ------------------------------------------------------------------ output
    def estimate(self, now_s: float) -> Estimate:
        """Where the beat is at ``now_s``, from what was heard up to then."""
        self._catch_up()
        pos = self._position(now_s)
        nxt = math.ceil(pos - 1e-9)
        next_beat = now_s + (nxt - pos) * self._period
        to_one = (self._downbeat_slot - nxt) % self.meter
        locked = self._locked and not self._flooding
        return Estimate(time=now_s, bpm=self._reported_bpm if locked else self._held_bpm,
                        heard_bpm=60.0 / self._period, beat=pos,
                        next_beat_time=next_beat, next_downbeat_time=next_beat + to_one * self._period,
                        beat_in_bar=(pos - self._downbeat_slot) % self.meter, beat_period=self._period,
                        confidence=0.0 if self._flooding else self._confidence, locked=locked)


@dataclass(frozen=True)
class Beat:
    """One beat of the performer's time, as the daemon's grid counts it."""

    time: float
    index: int  # whole-beat count since the first onset
    downbeat: bool


class BeatGrid:
    """The tracker's beats as events, each whole beat once and in order.

    The tracker's position may step back a little when an onset corrects it; a grid that plays
    along must not count a beat twice, nor skip one silently. ``advance(now)`` returns the beats
    whose time has come since the last call, each decided from onsets heard up to its own time:
    a beat between onsets is where the tracker predicted it, a beat that a correction at an
    onset jumps over is placed at that onset.
    """

    def __init__(self, tracker: TempoTracker):
        self.tracker = tracker
        self.time: float | None = None
        self.last_index: int | None = None

    def advance(self, now: float) -> list[Beat]:
        beats: list[Beat] = []
        t = now if self.time is None else self.time
        for _ in range(10000):  # bounded: an idle stretch yields at most one beat per 0.2 s
            est = self.tracker.estimate(t)
            want = math.ceil(est.beat - 1e-9) if self.last_index is None else self.last_index + 1
            if est.beat >= want - 1e-9:  # a correction moved the position past it: the beat is now
                index, at = max(want, int(math.floor(est.beat + 1e-9))), t
            else:
                index, at = want, t + (want - est.beat) * est.beat_period
                if at > now:
                    break
                est = self.tracker.estimate(at)
            bar = round(est.beat_in_bar + index - est.beat) % self.tracker.meter
            beats.append(Beat(at, index, bar == 0))
            self.last_index, t = index, at
            if at >= now:
                break
        self.time = max(now, t)
        return beats


def bench_update(n: int = 20000, seed: int = 0, net: bool | None = None) -> dict:
    """Cost of one ``onset`` call on a realistic stream (a swung line at 132 BPM over chords):
    p50/p99/max in microseconds over n note-ons, measured with perf_counter_ns around each call,
    for ``improvd bench``."""
    rng = np.random.default_rng(seed)
    tracker = TempoTracker(settings=TrackerSettings() if net is None else TrackerSettings(net=net))
    beat = 60.0 / 132.0
    notes: list[tuple[float, int, int]] = []
    t = 1.0
    while len(notes) < n:
        for sub in (0.0, 2.0 / 3.0):  # swung eighths
            if rng.random() < 0.85:
                notes.append((t + sub * beat + rng.normal(0, 0.01), int(rng.integers(60, 84)), int(rng.integers(50, 110))))
        if rng.random() < 0.3:  # a chord on the beat
            for p in (48, 55, 59, 64):
                notes.append((t + abs(rng.normal(0, 0.004)), p, 70))
        t += beat
    notes.sort()
    notes = notes[:n]
    cost = np.empty(len(notes))
    ticks: list[float] = []  # estimate() as the engine calls it: once a tick (10 ms), before the note-ons due
    clock = _time.perf_counter_ns
    tick = notes[0][0]
    for i, (when, pitch, vel) in enumerate(notes):
        while tick <= when:
            t0 = clock()
            tracker.estimate(tick)
            ticks.append(clock() - t0)
            tick += 0.01
        t0 = clock()
        tracker.onset(when, pitch, vel)
        cost[i] = clock() - t0
    us = cost / 1000.0
    tk = np.array(ticks) / 1000.0
    re = np.array(tracker.costs["reestimate"], dtype=float) / 1000.0
    cu = np.array(tracker.costs["catch_up"], dtype=float) / 1000.0

    def pct(a: np.ndarray, q: float) -> float:
        return float(np.percentile(a, q)) if len(a) else float("nan")

    return {"notes": int(len(us)), "p50_us": pct(us, 50), "p90_us": pct(us, 90), "p99_us": pct(us, 99),
            "max_us": float(us.max()),
            # the work onset() leaves for later, done in estimate(): per 10 ms tick, per catch-up, per re-estimate
            "tick_p50_us": pct(tk, 50), "tick_p99_us": pct(tk, 99), "tick_max_us": float(tk.max()),
            "catch_up_p50_us": pct(cu, 50), "catch_up_p99_us": pct(cu, 99),
            "reestimate_p50_us": pct(re, 50), "reestimate_p99_us": pct(re, 99), "reestimates": int(len(re)),
            "total_per_note_us": float((cost.sum() + np.sum(ticks)) / 1000.0 / len(us)),
            "bpm": tracker.estimate(notes[-1][0]).bpm, "true_bpm": 132.0, "net": tracker.net is not None}
