"""The machine's one way out: from the notes a model samples to timed messages on the scheduler.

It holds the sampling settings (resolved once from the flags and the model card, then moved by
the mod wheel or a model switch), applies the rules, places notes in time, and keeps the
harmony voices that sound under the performer. The modes decide when to play; the voice
decides how it sounds.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field

import numpy as np

from improvd import motifs
from improvd.clock import Clock
from improvd.config import Settings
from improvd.encoding import BAR_TICKS, TICKS_PER_BEAT
from improvd.models.base import NoteOut, PlayContext, StepModel
from improvd.rules import Candidate, RuleContext, apply_rules
from improvd.sampling import sample
from improvd.scheduler import Scheduler


@dataclass
class Stats:
    notes_in: int = 0
    notes_out: int = 0
    ignored: int = 0
    step_costs: deque = field(default_factory=lambda: deque(maxlen=20000))

    def step_percentiles(self) -> tuple[float, float]:
        if not self.step_costs:
            return (math.nan, math.nan)
        a = np.fromiter(self.step_costs, float) * 1e3
        return float(np.percentile(a, 50)), float(np.percentile(a, 99))


@dataclass(frozen=True)
class Played:
    """One note of an answer as it was planned, kept for the loop pedal."""

    offset: int  # ticks from the answer's start
    pitch: int
    velocity: int
    duration: int  # ticks


def sampling_of(settings: Settings, card) -> tuple[float, float]:
    """(temperature, top_p): the flags' where given, else the model card's defaults."""
    defaults = card.sampling or {}
    temperature = settings.temperature if settings.temperature is not None else float(defaults.get("temperature", 1.0))
    top_p = settings.top_p if settings.top_p is not None else float(defaults.get("top_p", 1.0))
    return temperature, top_p


# How much an answer develops the call when neither the flags nor the model card say: the chance,
# at each point an answer could take up a motif, that it does. deepjazz answers as the seed did.
ECHO_DEFAULTS = {"jazz": 0.85, "folk": 0.85}


def echo_of(settings: Settings, card) -> float:
    """The echo amount: the flag or config key where given, else the model card's, else the
    family's default (0 for a family not listed: it answers as it always did)."""
    if settings.echo is not None:
        return settings.echo
    return float((card.sampling or {}).get("echo", ECHO_DEFAULTS.get(card.family, 0.0)))


class MotifMemory:
    """The performer's call as notes (improvd.motifs.Note): heard onset by onset, closed by the
    releases; an answer takes the call as it stands, and the next note heard after that starts
    a new call (a mutate answers the same one again)."""

    KEEP = 64  # notes: a call longer than this is developed from its end

    def __init__(self):
        self.notes: list[motifs.Note] = []
        self.open: dict[int, int] = {}  # pitch -> index of its note in ``notes`` while it sounds
        self.answered = False

    def hear(self, tick: int, pitch: int) -> None:
        if self.answered:
            self.notes, self.open, self.answered = [], {}, False
        self.release(tick, pitch)
        self.open[pitch] = len(self.notes)
        self.notes.append(motifs.Note(tick, pitch, 0))
        if len(self.notes) > self.KEEP:
            drop = len(self.notes) - self.KEEP
            self.notes = self.notes[drop:]
            self.open = {p: i - drop for p, i in self.open.items() if i >= drop}

    def release(self, tick: int, pitch: int) -> None:
        i = self.open.pop(pitch, None)
        if i is not None:
            n = self.notes[i]
            self.notes[i] = motifs.Note(n.onset, n.pitch, max(1, tick - n.onset))

    def held(self, tick: int, pitches: frozenset) -> None:
        """What still sounds at ``tick``: every other open note ends there."""
        for pitch in [p for p in self.open if p not in pitches]:
            self.release(tick, pitch)

    def call(self, tick: int) -> tuple:
        """The call as it stands at ``tick`` (notes still held end there), and it is answered."""
        self.held(tick, frozenset())
        self.answered = True
        return tuple(self.notes)


class Echo:
    """Within one answer: the fragment of the call playing now (or next), and what was played."""

    CANDIDATES = 6  # developments the model scores at each choice
    CHORD_WEIGHT = 3.0  # nats a fragment all on chord tones gains over one with none
    SCORED_NOTES = 6  # the model scores a fragment's opening notes, all candidates together (improvd bench: p99 8 ms, 37 ms one at a time)

    def __init__(self, call: tuple = (), end: int = 0, start: int = 0):
        self.call = call
        self.end = end
        self.next = start  # the first tick a new fragment may be chosen
        self.free = start  # where the model's last note ends: a fragment starts no earlier
        self.line: motifs.Fragment | None = None
        self.used: set = set()
        self.takes: bool | None = None  # does the model take the fragment's notes into its state
        self.fragments: list[motifs.Fragment] = []  # what this answer played, for tests and logs


class LoopGuard:
    """Notices an answer going round in a small loop, and names the pitches to keep out of the
    model's next draws until it has left it.

    The rules cannot do this: they change a note after the model drew it, and the model goes on
    from what it drew (a `max_repeats` change turned 77 77 77 into the loop 77 77 77 78). Banning
    the pitches from the draw makes the model itself choose another way, so its state leaves the
    loop. The thresholds are the soloists' own maxima over 8-bar phrases of the WJazzD valid
    solos (docs/collapse.md): a healthy answer never trips it.
    """

    WINDOW = 16  # notes looked at
    LEAST = 8  # notes before it judges
    MAX_REPEATED_4GRAMS = 0.5
    MAX_TOP_SHARE = 0.41
    BAN_NOTES = 4  # how many of the next notes are kept off the loop's pitches

    def __init__(self):
        self.played: deque = deque(maxlen=self.WINDOW)
        self.ban: frozenset = frozenset()
        self._left = 0
        self.trips = 0

    def reset(self) -> None:
        self.played.clear()
        self.ban, self._left = frozenset(), 0

    def note(self, pitch: int) -> None:
        """One note that sounded; the ban runs down with each."""
        self.played.append(pitch)
        if self._left:
            self._left -= 1
            if not self._left:
                self.ban = frozenset()
        loop = self.loop()
        if loop:
            self.ban, self._left = loop, self.BAN_NOTES
            self.played.clear()  # judge afresh after steering out
            self.trips += 1

    def loop(self) -> frozenset:
        """The pitches of the loop the last notes go round in, or an empty set."""
        notes = list(self.played)
        if len(notes) < self.LEAST:
            return frozenset()
        for size in (1, 2, 3, 4):  # the same cell three times running
            if len(notes) >= 3 * size and notes[-size:] == notes[-2 * size:-size] == notes[-3 * size:-2 * size]:
                return frozenset(notes[-size:])
        grams = [tuple(notes[i:i + 4]) for i in range(len(notes) - 3)]
        repeated = sum(1 for i, g in enumerate(grams) if g in grams[:i]) / len(grams)
        top = max(set(notes), key=notes.count)
        if repeated > self.MAX_REPEATED_4GRAMS:
            return frozenset(grams[-1])
        if notes.count(top) / len(notes) > self.MAX_TOP_SHARE:
            return frozenset((top,))
        return frozenset()


# The rules a harmony keeps: leaps, repeats and polyphony are melodic rules.
NOT_FOR_HARMONY = ("polyphony", "max_leap", "max_repeats")


class Voice:
    def __init__(self, settings: Settings, scheduler: Scheduler, clock: Clock, rng: np.random.Generator,
                 card, stats: Stats, performer_velocities: deque):
        self.settings = settings
        self.sched = scheduler
        self.clock = clock
        self.rng = rng
        self.stats = stats
        self.performer_velocities = performer_velocities
        self.temperature, self.top_p = sampling_of(settings, card)
        self.base_temperature = self.temperature  # the mod wheel's rest position
        self.recent: deque = deque(maxlen=8)  # the machine's last pitches, for the rules
        self.guard = LoopGuard()
        self.harmony: set[int] = set()  # harmony voices sounding now
        self.echo = echo_of(settings, card)  # how much answers develop the call (0..1)
        self.motifs = MotifMemory()
        self.answer_echo = Echo()

    # -- sampling settings ----------------------------------------------------------------------
    def use_model(self, card) -> None:
        """A model switch: its card's defaults, unless the flags fixed them."""
        temperature, top_p = sampling_of(self.settings, card)
        if self.settings.temperature is None:
            self.temperature = temperature
        if self.settings.top_p is None:
            self.top_p = top_p
        self.base_temperature = temperature
        self.echo = echo_of(self.settings, card)

    def configure(self, settings: Settings, card) -> None:
        """A reload: new settings, sampling resolved again against the card."""
        self.settings = settings
        self.temperature, self.top_p = sampling_of(settings, card)
        self.base_temperature = self.temperature
        self.echo = echo_of(settings, card)

    def set_echo(self, value: float) -> None:
        self.echo = min(1.0, max(0.0, value))

    def set_temperature(self, value: float) -> None:
        self.temperature = value

    # -- what a model is asked ------------------------------------------------------------------
    def context(self, tick: int, chord_at, held: frozenset, under_melody: bool = False, starting: bool = False,
                onset: bool = False) -> PlayContext:
        rules = self.settings.rules
        lo, hi = rules.range_low, rules.range_high
        if under_melody and held:
            # chords under the melody: the voices stay below its top note, within two octaves
            top = max(held)
            lo, hi = max(lo, top - 24), min(hi, top - 1)
            if lo > hi:
                lo, hi = max(0, top - 24), top - 1
        temperature, ban = self.temperature, frozenset()
        if self.guard.ban and not under_melody:
            # steering out of a loop: not colder than the usual, and off the loop's pitches
            temperature, ban = max(self.temperature, self.base_temperature), self.guard.ban
        return PlayContext(tick=tick, chord=chord_at(tick), rng=self.rng, temperature=temperature,
                           top_p=self.top_p, starting=starting, held=held, max_voices=self.settings.voices,
                           pitch_range=(lo, hi), chord_at=chord_at, onset=onset, ban=ban)

    def _rule_context(self, tick: int, chord_at) -> RuleContext:
        velocity = float(np.mean(self.performer_velocities)) if self.performer_velocities else None
        return RuleContext(chord_at(tick), tuple(self.recent), velocity, len(self.sched.sounding), self.rng,
                           self.settings.rules)

    # -- playing --------------------------------------------------------------------------------
    # -- the call, for the answers that develop it -----------------------------------------------------
    def hear(self, tick: int, pitch: int) -> None:
        """A melody note of the performer's at ``tick``."""
        self.motifs.hear(tick, pitch)

    def hear_held(self, tick: int, held: frozenset) -> None:
        """The performer's melody notes sounding at ``tick``: the others have ended."""
        self.motifs.held(tick, held)

    def _echo_due(self, model: StepModel, context: PlayContext, tick: int, chord_at) -> list | None:
        """The fragment's notes due at ``tick``; [] inside a fragment between its notes; None
        when the model plays (no fragment now)."""
        echo = self.answer_echo
        if echo.line is not None and tick >= min(echo.line.end, echo.end):
            echo.line, echo.next = None, tick
        if echo.line is None and self.echo > 0 and echo.next <= tick < echo.end - TICKS_PER_BEAT and not self.guard.ban:
            self._choose_fragment(model, context, tick, chord_at)
        if echo.line is None or tick < echo.line.start:
            return None
        return [n for n in echo.line.notes if n.onset == tick]

    def _choose_fragment(self, model: StepModel, context: PlayContext, tick: int, chord_at) -> None:
        """With chance ``echo``, a development of a fragment of the call to play next, the model
        choosing among a few by how likely it finds each as its own line (and the chords under
        it); otherwise the model plays a bar before the next chance."""
        echo = self.answer_echo
        if len(echo.call) < motifs.MIN_NOTES:
            echo.next = echo.end
            return
        if self.rng.random() >= self.echo:
            echo.next = tick + BAR_TICKS
            return
        found = motifs.candidates(echo.call, max(tick, echo.free), chord_at, self.rng, Echo.CANDIDATES, until=echo.end,
                                  avoid=echo.used, home=model.home_scale())
        found = [motifs.Fragment(tuple(n for n in f.notes if n.onset < echo.end), f.how) for f in found]
        found = [f for f in found if len(f.notes) >= motifs.MIN_NOTES]
        if not found:
            echo.next = tick + TICKS_PER_BEAT
            return
        likely = model.likelihoods(context, [f.notes[:Echo.SCORED_NOTES] for f in found])
        scores = [(lk or 0.0) + Echo.CHORD_WEIGHT * motifs.chord_tone_share(f, chord_at) for f, lk in zip(found, likely)]
        pick = found[sample(np.array(scores), self.rng, max(context.temperature, 0.05))]
        echo.line = pick
        echo.used.add(pick.pitches)
        echo.fragments.append(pick)

    def play(self, model: StepModel, tick: int, chord_at, held: frozenset, starting: bool = False,
             end: int | None = None, start_tick: int | None = None) -> list[Played]:
        """The model's notes for ``tick``, through the rules, onto the scheduler; cut at
        ``end``. Returns them as played, offset from ``start_tick`` (for the loop pedal). In an
        answer (``end`` given) a fragment of the call, developed, may play instead of the
        model: the model takes its notes as its own, or plays on unheard under it."""
        context = self.context(tick, chord_at, held, starting=starting)
        if starting:
            call = self.motifs.call(tick) if end is not None else ()
            self.answer_echo = Echo(call, end if end is not None else 0, tick)
        due = self._echo_due(model, context, tick, chord_at) if end is not None else None
        echo = self.answer_echo
        if due is None:
            notes = model.play(context)
            fragment_at = echo.line.start if echo.line is not None else None
        else:
            if not due:
                if echo.takes is False:
                    model.play(context)  # it keeps its own time, unheard under the fragment
                return []
            notes = [NoteOut(n.pitch, 90, n.duration) for n in due[:1]]
            fragment_at = None
        if not notes:
            return []
        rule_context = self._rule_context(tick, chord_at)
        start = self.clock.time_of(tick)
        played = []
        for note in notes:
            candidate = apply_rules(Candidate(note.pitch, note.velocity, note.duration), rule_context,
                                    self.settings.rules.order)
            if candidate is None:
                continue
            last = tick + min(candidate.duration, self.settings.max_note_ticks)
            if end is not None:
                last = min(last, end)
            if fragment_at is not None:
                last = min(last, max(tick + 1, fragment_at))  # the model's note gives way to the fragment
            if due is None:
                echo.free = max(echo.free, last)
            else:
                echo.takes = model.take(context, NoteOut(candidate.pitch, candidate.velocity, last - tick))
                if not echo.takes:
                    model.play(context)
            at = start + candidate.delay_ms / 1000
            self._note(candidate.pitch, candidate.velocity, at, self.clock.time_of(last))
            if start_tick is not None:
                played.append(Played(tick - start_tick, candidate.pitch, candidate.velocity, last - tick))
            self.recent.append(candidate.pitch)
            self.guard.note(candidate.pitch)
            self.stats.notes_out += 1
        return played

    def replay(self, notes: list[Played], position: int, length: int, tick: int) -> None:
        """The loop pedal: the notes of a kept answer that fall on ``position`` of it."""
        start = self.clock.time_of(tick)
        for note in notes:
            if note.offset == position:
                end = min(tick + note.duration, tick + length - position)
                self.sched.note(note.pitch, note.velocity, start, max(start + 0.005, self.clock.time_of(end) - 0.002))
                self.stats.notes_out += 1

    def _note(self, pitch: int, velocity: int, at: float, until: float) -> None:
        # a hair short of the next onset, so a repeated pitch re-strikes audibly
        self.sched.note(pitch, velocity, at, max(at + 0.005, until - 0.002))

    def harmonize(self, model: StepModel, tick: int, now: float, chord_at, held: frozenset) -> None:
        """Sound the model's harmony around the held melody now: voices it still wants keep
        sounding (never struck again), the ones it drops end, new ones start."""
        if not held:
            self.stop_harmony(now)
            return
        notes = model.play(self.context(tick, chord_at, held, under_melody=True, onset=True))
        rule_context = self._rule_context(tick, chord_at)
        want: dict[int, int] = {}
        order = [r for r in self.settings.rules.order if r not in NOT_FOR_HARMONY]
        for note in notes[: self.settings.voices]:
            candidate = apply_rules(Candidate(note.pitch, note.velocity, note.duration), rule_context, order)
            if candidate is not None and candidate.pitch not in held:
                want[candidate.pitch] = candidate.velocity
        for pitch in list(self.harmony):
            if pitch not in want:
                self.sched.stop_now(pitch, now)
                self.harmony.discard(pitch)
        for pitch, velocity in want.items():
            if pitch not in self.harmony:
                self.sched.start_now(pitch, velocity, now)
                self.harmony.add(pitch)
                self.stats.notes_out += 1

    def stop_harmony(self, now: float) -> None:
        for pitch in list(self.harmony):
            self.sched.stop_now(pitch, now)
        self.harmony.clear()

    def release_all(self, now: float) -> None:
        """Barge-in, a mode change, a reset: nothing planned goes out, nothing sounds."""
        self.sched.release_all(now)

    def silence(self, now: float) -> None:
        """Panic and exit: everything ends, the performer's passed-through notes too."""
        self.sched.close(now)
        self.harmony.clear()
