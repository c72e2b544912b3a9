"""The jazz encoding shared by training and the daemon: WJazzD rows, tokens, and live events."""

import json
from pathlib import Path

import numpy as np
import pytest

from improvd.chords import Chord, parse_chord
from improvd.encoding import BAR_TICKS
from improvd.encoding import jazz as enc
from improvd.encoding.events import REST, Event, EventTracker, transpose

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "jazz" / "wjazzd_chords.trainvalid.jsonl"
G7, C = parse_chord("G7"), parse_chord("Cmaj7")


@pytest.mark.skipif(not DATA.exists(), reason="WJazzD data not in ../shared")
def test_wjazzd_onsets_land_on_the_bar_positions_the_data_states():
    solos = checked = 0
    for line in DATA.read_text().splitlines()[:120]:
        rec = json.loads(line)
        events = enc.events_from_wjazzd(rec)
        rows = rec["events"]
        assert len(events) == len(rows)
        for e, (pitch, dur, pos, root, kind) in zip(events, rows):
            assert e.onset % BAR_TICKS == pos
            assert e.pitch == pitch and e.duration == max(1, dur)
            assert e.chord == Chord(root % 12, kind)
            checked += 1
        onsets = [e.onset for e in events]
        assert all(b > a for a, b in zip(onsets, onsets[1:]))
        solos += 1
    assert solos == 120 and checked > 30000


def test_wjazzd_reanchors_on_the_stated_bar_position():
    # the second note's duration says it ends at 20, the data says the next onset is at 24
    rec = {"melid": 0, "ticks_per_beat": 12, "events": [
        [60, 12, 0, 7, "dom7"], [62, 8, 12, 7, "dom7"], [64, 12, 24, 0, "maj"], [65, 30, 36, 0, "maj"],
        [67, 6, 18, 0, "maj"]]}  # 36+30 = 66 -> bar 1 position 18
    ev = enc.events_from_wjazzd(rec)
    assert [e.onset for e in ev] == [0, 12, 24, 36, BAR_TICKS + 18]
    assert ev[0].chord == G7 and ev[2].chord == C
    with pytest.raises(ValueError):
        enc.events_from_wjazzd({"ticks_per_beat": 480, "events": []})


def test_pitch_tokens_round_trip_and_fold():
    for p in range(enc.PITCH_LO, enc.PITCH_HI + 1):
        t = enc.pitch_token(p)
        assert 1 <= t < enc.N_PITCH and enc.token_pitch(t) == p
    assert enc.pitch_token(REST) == 0 and enc.token_pitch(0) == REST
    assert enc.token_pitch(enc.pitch_token(enc.PITCH_LO - 1)) == enc.PITCH_LO + 11  # folds up an octave
    assert enc.token_pitch(enc.pitch_token(enc.PITCH_HI + 1)) == enc.PITCH_HI - 11
    assert len({enc.pitch_token(p) for p in range(enc.PITCH_LO, enc.PITCH_HI + 1)}) == enc.N_PITCH - 1


def test_duration_tokens_round_trip_and_round_to_nearest():
    for i, d in enumerate(enc.DURATIONS):
        assert enc.duration_token(d) == i and enc.token_duration(i) == d
    assert enc.token_duration(enc.duration_token(50)) in (48, 54)
    assert enc.token_duration(enc.duration_token(1000)) == 96
    assert enc.token_duration(enc.duration_token(0)) == 1


def test_encode_shifts_the_previous_event_into_the_input():
    ev = [Event(60, 6, 0, G7), Event(REST, 6, 6, G7), Event(67, 12, 12, C), Event(64, 24, 60, None)]
    x, tp, td = enc.encode(ev)
    assert x.prev_pitch[0] == enc.BOS and x.prev_dur[0] == 0
    assert list(x.prev_pitch[1:]) == [enc.pitch_token(60), 0, enc.pitch_token(67)]
    assert list(x.prev_dur[1:]) == [enc.duration_token(6), enc.duration_token(6), enc.duration_token(12)]
    assert list(x.pos) == [0, 6, 12, 12]  # 60 is beat 2 of the second bar
    assert list(tp) == [enc.pitch_token(60), 0, enc.pitch_token(67), enc.pitch_token(64)]
    assert list(td) == [enc.duration_token(d) for d in (6, 6, 12, 24)]
    # conditioning: chord tones multi-hot + root one-hot; no chord is all zeros
    assert x.cond.shape == (4, enc.COND_DIM) and x.cond.dtype == np.float32
    assert set(np.flatnonzero(x.cond[0][:12])) == set(G7.tones) and np.flatnonzero(x.cond[0][12:]) == [7]
    assert not x.cond[3].any()


def test_tracker_turns_steps_into_notes_and_rests():
    tr = EventTracker()
    assert tr.step(0, [(60, 90)], [], G7) == []
    assert tr.step(6, [], [60], G7) == []  # released: the rest is not known to be over yet
    done = tr.step(12, [(62, 90)], [], C)
    assert done == [Event(60, 6, 0, G7), Event(REST, 6, 6, G7)]
    # legato: the next onset ends the note, no rest between
    assert tr.step(18, [(64, 90)], [], C) == [Event(62, 6, 12, C)]
    assert tr.step(19, [], [62], C) == []  # releasing a key that is not the line's note changes nothing
    assert tr.step(30, [(65, 90)], [64], C) == [Event(64, 12, 18, C)]


def test_tracker_highest_new_note_wins():
    tr = EventTracker()
    tr.step(0, [(60, 90), (67, 80), (64, 70)], [], C)
    done = tr.step(12, [(48, 90), (55, 90)], [], C)
    assert done == [Event(67, 12, 0, C)]
    assert tr.step(24, [(40, 90)], [], C)[0].pitch == 55


def test_tracker_caps_long_events_and_handles_answers():
    tr = EventTracker(max_duration=96)
    tr.step(0, [(60, 90)], [], C)
    tr.step(10, [], [60], C)
    done = tr.step(500, [(62, 90)], [], C)
    assert done == [Event(60, 10, 0, C), Event(REST, 96, 10, C)]
    # an answer starts: the current note and its silence are closed at the answer's tick
    assert tr.step(520, [], [62], C) == []
    assert tr.flush_rest(530) == [Event(62, 20, 500, C), Event(REST, 10, 520, C)]
    assert tr.flush_rest(531) == []
    # after the answer, the silence until the performer's next note is a rest event
    tr.start_rest(600, G7)
    assert tr.step(624, [(67, 90)], [], C) == [Event(REST, 24, 600, G7)]


def test_transpose_moves_pitches_and_chords():
    ev = [Event(60, 6, 0, G7), Event(REST, 6, 6, None), Event(100, 6, 12, C)]
    out = transpose(ev, 5, 36, 96)
    assert [e.pitch for e in out] == [65, REST, 93]  # 105 folds into range
    assert out[0].chord == parse_chord("C7") and out[1].chord is None and out[2].chord == parse_chord("Fmaj7")
