"""Motifs (issue 15, item 2): the pure transforms a player develops a call with, on a known
fragment, and the daemon's answers taking fragments of the call (replayed, as on stage)."""

from __future__ import annotations

import numpy as np

from improvd import motifs as m
from improvd.chords import Chord
from improvd.encoding import BAR_TICKS, TICKS_PER_BEAT

C7, F7 = Chord(0, "dom7"), Chord(5, "dom7")
C_MAJOR = frozenset((0, 2, 4, 5, 7, 9, 11))


def motif(pitches=(60, 62, 64, 67), start=BAR_TICKS + 6, step=6, length=5) -> m.Fragment:
    """Four 8ths from the second 8th of bar 2: C D E G."""
    return m.Fragment(tuple(m.Note(start + k * step, p, length) for k, p in enumerate(pitches)))


def intervals(f) -> list:
    return [b - a for a, b in zip(f.pitches, f.pitches[1:])]


def test_transposition_and_sequence_keep_the_shape_and_the_rhythm():
    f = motif()
    up = m.transpose(f, 5)
    assert up.pitches == (65, 67, 69, 72) and intervals(up) == intervals(f)
    assert [n.onset for n in up.notes] == [n.onset for n in f.notes] and up.how == "transpose +5"
    seq = m.sequence(f, 1, C_MAJOR)  # a step up along C major: D E F A
    assert seq.pitches == (60, 62, 64, 67, 62, 64, 65, 69)
    assert seq.notes[4].onset == f.start + 2 * TICKS_PER_BEAT  # the span (23 ticks) rounded up to beats
    assert m.sequence(f, 2).pitches[4:] == (62, 64, 66, 69)  # no scale: semitones


def test_diatonic_moves_stay_in_the_key():
    f = motif()
    third = m.diatonic(f, 2, C_MAJOR)  # C D E G -> E F G B
    assert third.pitches == (64, 65, 67, 71)
    assert all(p % 12 in C_MAJOR for p in third.pitches)
    down = m.diatonic(f, -1, C_MAJOR)
    assert down.pitches == (59, 60, 62, 65)
    assert m.diatonic(m.Fragment((m.Note(0, 61, 6),)), 1, C_MAJOR).pitches == (63,)  # off the key: moves as C does


def test_displacement_augmentation_and_placement_move_only_time():
    f = motif()
    later = m.displace(f, TICKS_PER_BEAT)
    assert later.pitches == f.pitches and [n.onset - TICKS_PER_BEAT for n in later.notes] == [n.onset for n in f.notes]
    wide = m.augment(f, 2)
    assert [n.onset - f.start for n in wide.notes] == [0, 12, 24, 36] and {n.duration for n in wide.notes} == {10}
    narrow = m.augment(f, 0.5)
    assert [n.onset - f.start for n in narrow.notes] == [0, 3, 6, 9]
    # in its place in the bar: the second 8th of a bar, the first such tick at or after 200
    at = m.aligned(f, 200)
    assert at >= 200 and at % BAR_TICKS == f.start % BAR_TICKS and at - 200 < BAR_TICKS
    assert m.place(f, at).start == at


def test_fitting_to_the_chords_lands_on_chord_tones_and_a_quote_keeps_its_notes():
    f = motif(start=0)  # C D E G on beats and off-beats
    over_f7 = lambda t: F7
    fitted = m.fit_to_chords(f, over_f7, C_MAJOR)
    assert m.chord_tone_share(fitted, over_f7) > m.chord_tone_share(f, over_f7)
    assert all(p % 12 in C_MAJOR for p in fitted.pitches)  # moved along the call's key
    assert m.fit_to_chords(f, lambda t: None, C_MAJOR) == f  # no chart: nothing to fit
    assert m.fit_to_chords(f, lambda t: C7, C_MAJOR).pitches == f.pitches  # C E G already fit C7 best
    rng = np.random.default_rng(0)
    quoted = m.develop(f, "quote", 100, over_f7, rng)
    # in its place in the bar when that comes within half a bar (144), else in the half bar (120)
    assert quoted.pitches == f.pitches and quoted.start == 120
    assert m.develop(f, "quote", 140, over_f7, rng).start == 144
    ending = m.vary_ending(f, F7.tones, rng)
    assert ending.pitches[:3] == f.pitches[:3] and ending.pitches[3] != 67 and ending.pitches[3] % 12 in F7.tones


def test_fragments_are_runs_of_3_to_8_notes_without_a_breath():
    line = [m.Note(6 * k, 60 + k, 5) for k in range(10)] + [m.Note(200 + 6 * k, 70 + k, 5) for k in range(3)]
    found = m.fragments(line)
    assert found and all(3 <= len(f.notes) <= 8 for f in found)
    assert all(b.onset - (a.onset + a.duration) < TICKS_PER_BEAT for f in found for a, b in zip(f.notes, f.notes[1:]))
    assert any(f.pitches == (70, 71, 72) for f in found)
    chord_call = [m.Note(0, 60, 12), m.Note(0, 64, 12), m.Note(12, 62, 6), m.Note(18, 65, 6)]
    assert m.line_of(chord_call)[0].pitch == 64  # a chord is read as its top note
    assert m.scale_of([m.Note(0, 60, 24), m.Note(24, 62, 12), m.Note(36, 63, 1)], size=2) == frozenset((0, 2))


# -- the daemon's answers ----------------------------------------------------------------------------
CALL = (72, 71, 69, 67, 64, 65, 67, 60)  # a falling line and a turn, in 8ths


def call_performance():
    from improvd.midi.files import Note, Performance

    beat = 0.5  # 120 BPM
    notes = tuple(Note(p, 90, k * beat / 2, k * beat / 2 + beat * 0.45) for k, p in enumerate(CALL))
    return Performance(notes, 120.0, beat, "test")


def answer_pitches(echo: float, seed: int) -> list:
    from improvd.config import load_settings
    from improvd.replay import replay

    s = load_settings(None, {"tempo": 120, "seed": seed, "echo": echo, "bars": 2, "chords": "C7 | F7 | C7 | G7"}, environ={})
    res = replay(call_performance(), s)
    ons = sorted((t, msg.note) for t, msg in res.machine if msg.type == "note_on" and msg.velocity > 0)
    return [p for _t, p in ons]


def shares_a_motif(answer, call=CALL, size=3) -> bool:
    """Does ``answer`` hold ``size`` consecutive notes with the intervals of ``size`` consecutive
    notes of the call (the call's fragment quoted or transposed)?"""
    shape = lambda line: {tuple(b - a for a, b in zip(line[i:i + size], line[i + 1:i + size])) for i in range(len(line) - size + 1)}
    return bool(shape(list(answer)) & shape(list(call)))


def test_a_replayed_call_gets_an_answer_holding_a_fragment_of_it():
    """Through the daemon's own path (engine, mode, voice, rules): with echo 1 every answer
    takes a fragment of the call with its intervals; the model alone (echo 0) takes it rarely."""
    echoed = [shares_a_motif(answer_pitches(1.0, seed)) for seed in range(4)]
    alone = [shares_a_motif(answer_pitches(0.0, seed), size=4) for seed in range(4)]
    assert all(echoed), echoed
    assert sum(alone) < 4


def test_the_voice_keeps_the_call_and_develops_it_in_the_answer():
    """The motif memory hears the performer through the call-response mode, and the answer's
    fragments are transforms of the call's (their pitch shapes found in the call)."""
    from improvd.config import load_settings
    from improvd.models import load_model
    from improvd.replay import replay

    model = load_model("jazz")
    s = load_settings(None, {"tempo": 120, "seed": 3, "echo": 1.0, "bars": 2, "chords": "C7 | F7"}, environ={})
    echo = replay(call_performance(), s, model=model).engine.voice.answer_echo
    assert tuple(n.pitch for n in echo.call) == CALL
    assert echo.fragments and all(len(f.notes) >= m.MIN_NOTES for f in echo.fragments)
    call_shapes = {tuple(b - a for a, b in zip(CALL[i:i + 3], CALL[i + 1:i + 3])) for i in range(len(CALL) - 2)}
    assert any(tuple(b - a for a, b in zip(f.pitches[i:i + 3], f.pitches[i + 1:i + 3])) in call_shapes
               for f in echo.fragments for i in range(len(f.pitches) - 2))


def test_a_call_in_another_key_is_answered_in_the_models_key():
    from improvd.encoding.abc import parse_key
    from improvd.motifs import Note, into_key

    e_flat = [Note(i * 6, p, 6) for i, p in enumerate([63, 65, 67, 68, 70, 72, 74, 75])]
    g = parse_key("G").pitch_classes
    moved = into_key(e_flat, g)
    assert all(n.pitch % 12 in g for n in moved)
    assert [n.pitch - m.pitch for n, m in zip(moved, e_flat)] == [4] * 8  # E flat major up a third is G major
    assert into_key(e_flat, parse_key("Eb").pitch_classes) == tuple(e_flat)  # already home: unchanged
    assert into_key(e_flat, frozenset()) == tuple(e_flat)
