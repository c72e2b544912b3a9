"""Replay: a recorded performer drives the daemon on a virtual clock, and the answer is checked the
way a musician listening to it would: when it comes in, where it sits, that it stops when
interrupted, that it follows the chords, and that nothing is left ringing."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import mido
import numpy as np
import pytest

import phrases
from conftest import PHRASES, file_events, hanging
from improvd import ImprovdError
from improvd.chords import NOTE_NAMES, Progression
from improvd.config import load_settings
from improvd.encoding import BAR_TICKS, TICKS_PER_BEAT
from improvd.midi.files import read_midi
from improvd.replay import replay, select, write_result

FIXTURES = sorted(phrases.PHRASES)
EPS = 1e-6


def run(path, seed=1, tracks=None, beats=None, **flags):
    perf = select(read_midi(path), tracks, beats)
    flags = {"tempo": round(perf.tempo, 3), "seed": seed, **flags}
    s = load_settings(None, flags, environ={})
    return s, replay(perf, s)


def silences(performer, split=None):
    """(release, next_onset) of every moment the performer's melody hand leaves the keys and
    the sustain pedal lets them go."""
    down, sustained, pedal, out, start = set(), set(), False, [], None
    order = lambda x: (x[0], 0 if x[1].type in ("note_off", "control_change") else 1)
    for t, m in sorted(performer, key=order):
        if m.type == "control_change":
            if m.control != 64:
                continue
            pedal = m.value >= 64
            if not pedal and sustained:
                sustained.clear()
                if not down:
                    start = t
            continue
        if split is not None and m.note < split:
            continue  # the left hand below the split point plays chords, not phrases
        if m.type == "note_on":
            if not down and not sustained and start is not None:
                out.append((start, t))
            down.add(m.note)
            sustained.discard(m.note)
        else:
            down.discard(m.note)
            if pedal:
                sustained.add(m.note)
            elif not down and not sustained:
                start = t
    out.append((start, float("inf")))
    return out


def machine_notes(res):
    """[(on, off, pitch)] of what improvd played, paired in time order."""
    open_, notes = {}, []
    for t, m in sorted(res.machine, key=lambda x: (x[0], 0 if x[1].type == "note_off" else 1)):
        if m.type == "note_on" and m.velocity > 0:
            assert m.note not in open_, f"pitch {m.note} struck again at {t:.3f}s without a note-off"
            open_[m.note] = t
        elif m.type in ("note_off", "note_on"):
            if m.note in open_:
                notes.append((open_.pop(m.note), t, m.note))
    assert not open_, f"improvd left {sorted(open_)} sounding"
    return sorted(notes)


def check_call_response(s, res, bars=None):
    """The whole contract of call and response, as timings on the performer's silences."""
    tick = 60.0 / s.tempo / TICKS_PER_BEAT
    wait = s.wait_ticks * tick
    bar = BAR_TICKS * tick
    notes = machine_notes(res)
    answers = 0
    for release, nxt in silences(res.performer, s.split):
        inside = [n for n in notes if release < n[0] < nxt]
        if nxt <= release + wait - EPS:
            assert not inside, f"improvd played during a {nxt - release:.2f}s pause, shorter than the wait"
            continue
        if nxt < release + wait + tick + EPS:
            continue  # the performer came back on the answer's first tick: either is right
        assert inside, f"no answer after the phrase ending at {release:.3f}s"
        answers += 1
        first = inside[0][0]
        assert release + wait - EPS <= first <= release + wait + tick + EPS, \
            f"answer starts {first - release:.3f}s after the phrase, wait is {wait:.3f}s"
        longest = (bars or s.max_bars) * bar
        for on, off, pitch in inside:
            assert s.rules.range_low <= pitch <= s.rules.range_high
            assert first - EPS <= on and off <= first + longest + EPS, "a note outside the answer's bars"
            assert off <= nxt + EPS, f"a note rings on past the performer's return at {nxt:.3f}s"
    # and nothing plays while the performer plays
    for on, _off, _p in notes:
        assert any(r + wait - EPS <= on < n for r, n in silences(res.performer, s.split)), f"note at {on:.3f}s is not in an answer"
    return answers, notes


@pytest.mark.parametrize("name", FIXTURES)
def test_committed_fixtures_match_the_script(name, tmp_path):
    built = tmp_path / f"{name}.mid"
    phrases.PHRASES[name]().save(str(built))
    assert built.read_bytes() == (PHRASES / f"{name}.mid").read_bytes(), "run python tests/phrases.py"


@pytest.mark.parametrize("name", [n for n in FIXTURES if n != "ballad"])
@pytest.mark.parametrize("seed", [1, 2])
def test_answer_follows_each_hand_made_phrase(name, seed):
    flags = {"split": 60} if name == "split_chord" else {}
    s, res = run(PHRASES / f"{name}.mid", seed=seed, bars=2, **flags)
    answers, notes = check_call_response(s, res, bars=2)
    assert answers >= 1 and len(notes) >= 2


@pytest.mark.parametrize("wait", ["2beats", "500ms", "1bar"])
def test_the_wait_is_the_configured_one(wait):
    s, res = run(PHRASES / "bebop.mid", seed=4, wait=wait, bars=1)
    assert check_call_response(s, res, bars=1)[0] == 1


def test_ballad_pedal_is_audible_in_live_engine_terms():
    """With the pedal the ballad is still one call: answered a wait after the pedal lets go."""
    s, res = run(PHRASES / "ballad.mid", seed=1, bars=2)
    assert check_call_response(s, res, bars=2)[0] == 1


def test_ballad_answer_waits_for_the_pedal():
    s, res = run(PHRASES / "ballad.mid", seed=1, bars=2)
    beat = 60.0 / s.tempo
    pedal_up = 8.0 * beat
    first = machine_notes(res)[0][0]
    assert first >= pedal_up + s.wait_ticks * beat / TICKS_PER_BEAT - EPS


def test_split_point_reads_the_left_hand_as_the_chord():
    s, res = run(PHRASES / "split_chord.mid", seed=1, bars=2, split=60)
    assert res.engine.performer.detected is not None and res.engine.performer.detected.name == "G7"
    # the left hand is still down when the answer starts: below the split it does not hold the answer back
    perf = read_midi(PHRASES / "split_chord.mid")
    melody_end = max(n.end for n in perf.notes if n.pitch >= 60)
    left_end = max(n.end for n in perf.notes if n.pitch < 60)
    first = machine_notes(res)[0][0]
    wait = s.wait_ticks * 60.0 / s.tempo / TICKS_PER_BEAT
    assert melody_end + wait - EPS <= first < left_end


def test_barge_in_stops_the_answer_at_once():
    cut_seen = 0
    for seed in range(1, 7):
        s, res = run(PHRASES / "barge_in.mid", seed=seed, bars=1)
        check_call_response(s, res, bars=1)
        beat = 60.0 / s.tempo
        barge = 8.25 * beat  # the second call's first note
        first_answer_start = 3.9 * beat + s.wait_ticks * beat / TICKS_PER_BEAT
        notes = machine_notes(res)
        before = [n for n in notes if n[0] < barge]
        assert before and before[0][0] >= first_answer_start - EPS  # the first answer had begun
        assert all(off <= barge + EPS for _on, off, _p in before), "a note rang past the barge-in"
        cut_seen += sum(1 for _on, off, _p in before if abs(off - barge) < EPS)
        # no note-on from improvd until the second call is over and the wait has passed
        second_end = max(t for t, m in res.performer if m.type == "note_off")
        assert all(on >= second_end + s.wait_ticks * beat / TICKS_PER_BEAT - EPS for on, _o, _p in notes if on >= barge)
    assert cut_seen >= 3, "the barge-in should cut sounding notes short in most seeds"


def test_metheny_solo_every_phrase_answered(metheny):
    s, res = run(metheny, seed=3, tracks={11}, beats=(476, 548))
    answers, notes = check_call_response(s, res)
    # a guitar solo hardly breathes for a bar: the answer comes at its end, as long as the phrase, at most 8 bars
    assert answers >= 1 and len(notes) >= 30
    assert s.tempo == pytest.approx(112, abs=0.5)  # the file's tempo, as the CLI takes it


def test_metheny_solo_with_fixed_answer_length(metheny):
    s, res = run(metheny, seed=5, tracks={11}, beats=(476, 548), bars=1, wait="500ms")
    answers, _ = check_call_response(s, res, bars=1)
    assert answers >= 4  # three breaths inside the solo (two cut short by the guitar coming back) and its end


def test_duet_plays_throughout():
    s, res = run(PHRASES / "bebop.mid", seed=2, mode="duet")
    notes = machine_notes(res)
    perf = res.performer
    start, end = perf[0][0], max(t for t, _m in perf)
    bar = BAR_TICKS * 60.0 / s.tempo / TICKS_PER_BEAT
    assert notes[0][0] < bar, "the duet voice starts in the first bar"
    during = [n for n in notes if start <= n[0] <= end]
    assert len(during) >= 4, "the duet voice plays while the performer plays"
    onsets = [0.0] + [n[0] for n in notes] + [end]
    assert max(b - a for a, b in zip(onsets, onsets[1:])) <= 2 * bar + EPS
    assert all(s.rules.range_low <= p <= s.rules.range_high for _on, _off, p in notes)


def _on_beat_chord_tone_ratio(res, prog, tempo):
    tick_s = 60.0 / tempo / TICKS_PER_BEAT
    hits = n = 0
    for t, m in res.machine:
        if m.type == "note_on":
            tick = round(t / tick_s)
            if tick % TICKS_PER_BEAT == 0:
                n += 1
                hits += (m.note % 12) in prog.at(tick).tones
    return hits, n


def test_chords_change_what_is_played():
    """Over several seeds, answers over a chart land more chord tones of it on the beat than
    answers played over random charts do (measured against the same chart)."""
    chart = "Dm7 G7 | Cmaj7 | Fmaj7 | Bm7b5 E7"
    prog = Progression.parse(chart, BAR_TICKS)
    rng = np.random.default_rng(0)
    given, other = [0, 0], [0, 0]
    for seed in range(12):
        s, res = run(PHRASES / "bebop.mid", seed=seed, bars=8, chords=chart)
        h, n = _on_beat_chord_tone_ratio(res, prog, s.tempo)
        given[0] += h
        given[1] += n
        rnd = " | ".join(NOTE_NAMES[rng.integers(12)] + ("maj7", "7", "m7", "m7b5")[rng.integers(4)] for _ in range(4))
        s, res = run(PHRASES / "bebop.mid", seed=seed, bars=8, chords=rnd)
        h, n = _on_beat_chord_tone_ratio(res, prog, s.tempo)
        other[0] += h
        other[1] += n
    assert given[1] >= 40 and other[1] >= 40
    r_given, r_other = given[0] / given[1], other[0] / other[1]
    assert r_given > r_other + 0.1, f"chord tones on beats: {r_given:.2f} over the chart vs {r_other:.2f} over random charts"


def test_same_seed_same_answer_different_seed_different_answer():
    a = run(PHRASES / "bebop.mid", seed=11)[1]
    b = run(PHRASES / "bebop.mid", seed=11)[1]
    c = run(PHRASES / "bebop.mid", seed=12)[1]
    key = lambda r: [(round(t, 9), str(m)) for t, m in r.machine]
    assert key(a) == key(b)
    assert key(a) != key(c)


def test_written_file_has_both_tracks_and_no_hanging_note(tmp_path):
    s, res = run(PHRASES / "fast_run.mid", seed=3, bars=2)
    out = tmp_path / "answer.mid"
    write_result(res, out)
    ev = file_events(out)
    assert set(ev) >= {"performer", "improvd"}
    assert hanging(ev["improvd"]) == [] and hanging(ev["performer"]) == []
    ons = [e for e in ev["improvd"] if e[1] == "note_on"]
    assert len(ons) == sum(1 for _t, m in res.machine if m.type == "note_on" and m.velocity > 0)
    # the file keeps the timing to within one file tick
    file_tick = 60.0 / s.tempo / 480
    assert ons[0][0] == pytest.approx(machine_notes(res)[0][0], abs=file_tick)
    assert mido.MidiFile(str(out)).tracks[0][0].tempo == mido.bpm2tempo(s.tempo)


def unpaired_note_ons(path) -> list:
    """(track, channel, pitch) of every note-on that no later note-off ends, in file order: what
    a synth would hold to the end of the file."""
    left = []
    for ti, track in enumerate(mido.MidiFile(str(path)).tracks):
        sounding: dict = {}
        for msg in track:
            if msg.type == "note_on" and msg.velocity > 0:
                sounding[(msg.channel, msg.note)] = sounding.get((msg.channel, msg.note), 0) + 1
            elif msg.type in ("note_on", "note_off") and sounding.get((msg.channel, msg.note)):
                sounding[(msg.channel, msg.note)] -= 1
        left += [(ti, *key) for key, n in sounding.items() for _ in range(n)]
    return left


REPLAY_INPUTS = sorted(PHRASES.glob("*.mid")) + [Path(__file__).resolve().parents[1] / "examples" / "blues_calls.mid"]


@pytest.mark.parametrize("model, mode", [("jazz", "call-response"), ("rnnrbm", "duet")])
@pytest.mark.parametrize("path", REPLAY_INPUTS, ids=lambda p: p.stem)
def test_every_written_note_on_has_a_later_note_off(path, model, mode, tmp_path):
    """The metronome's last click and the answer's re-struck notes start and end at one instant
    of the file; written off-then-on they rang to its end (59 of 108 seeded replays did)."""
    for seed in (1, 2):
        _s, res = run(path, seed=seed, model=model, mode=mode, metronome="on")
        out = tmp_path / f"{seed}.mid"
        write_result(res, out)
        assert unpaired_note_ons(out) == []


def test_file_order_at_one_tick():
    """A re-strike ends the sounding note first; a zero-length note is written on, then off."""
    from improvd.midi.files import file_order

    on = lambda p, ch=0: mido.Message("note_on", note=p, velocity=90, channel=ch)
    off = lambda p, ch=0: mido.Message("note_off", note=p, channel=ch)
    kinds = lambda ordered: [(t, m.type, m.note) for t, m in ordered]
    # 60 sounds from tick 0; at 10 it is re-struck (listed before its own end) and 62 lasts no time
    got = file_order([(0, on(60)), (10, on(60)), (10, off(62)), (10, off(60)), (10, on(62)), (20, off(60))])
    assert kinds(got) == [(0, "note_on", 60), (10, "note_off", 60), (10, "note_on", 60), (10, "note_on", 62),
                          (10, "note_off", 62), (20, "note_off", 60)]
    # the same pitch on another channel is another note
    got = file_order([(0, on(60, 9)), (5, off(60, 0)), (5, on(60, 0)), (5, off(60, 9))])
    assert kinds(got)[1:] == [(5, "note_off", 60), (5, "note_on", 60), (5, "note_off", 60)]
    assert [m.channel for _t, m in got] == [9, 9, 0, 0]


def test_a_file_without_notes_is_an_error(tmp_path):
    empty = tmp_path / "empty.mid"
    mid = mido.MidiFile()
    mid.tracks.append(mido.MidiTrack([mido.MetaMessage("set_tempo", tempo=500000)]))
    mid.save(str(empty))
    with pytest.raises(ImprovdError, match="no notes"):
        run(empty)


# -- the command line ------------------------------------------------------------------------

def improvd(*args, timeout=60):
    return subprocess.run([sys.executable, "-m", "improvd", *map(str, args)], capture_output=True, text=True,
                          timeout=timeout)


def test_cli_same_seed_byte_identical_files(tmp_path, metheny):
    a, b, c = tmp_path / "a.mid", tmp_path / "b.mid", tmp_path / "c.mid"
    common = ("replay", metheny, "--track", "11", "--beats", "476:548")
    for out, seed in ((a, 3), (b, 3), (c, 4)):
        p = improvd(*common, "-o", out, "--seed", seed)
        assert p.returncode == 0, p.stderr
        assert "improvd notes" in p.stdout
    assert a.read_bytes() == b.read_bytes()
    assert file_events(a)["improvd"] != file_events(c)["improvd"]
    ev = file_events(a)
    assert hanging(ev["improvd"]) == []
    assert len([e for e in ev["improvd"] if e[1] == "note_on"]) >= 30


def test_cli_replay_each_phrase_and_plot(tmp_path):
    for name in FIXTURES:
        out, png = tmp_path / f"{name}.mid", tmp_path / f"{name}.png"
        extra = ("--split", "60") if name == "split_chord" else ()
        p = improvd("replay", PHRASES / f"{name}.mid", "-o", out, "--seed", "1", "--plot", png, *extra)
        assert p.returncode == 0, p.stderr
        ev = file_events(out)
        assert hanging(ev["improvd"]) == [] and any(e[1] == "note_on" for e in ev["improvd"])
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_cli_chords_change_the_file(tmp_path):
    a, b = tmp_path / "a.mid", tmp_path / "b.mid"
    assert improvd("replay", PHRASES / "bebop.mid", "-o", a, "--seed", "2", "--bars", "4").returncode == 0
    p = improvd("replay", PHRASES / "bebop.mid", "-o", b, "--seed", "2", "--bars", "4", "--chords", "F#7 | Bmaj7")
    assert p.returncode == 0, p.stderr
    assert file_events(a)["improvd"] != file_events(b)["improvd"]


def _truncated(tmp_path, metheny):
    data = metheny.read_bytes() if metheny.exists() else (PHRASES / "bebop.mid").read_bytes()
    p = tmp_path / "half.mid"
    p.write_bytes(data[: len(data) // 2])
    return p


def _no_notes(tmp_path):
    p = tmp_path / "silent.mid"
    mid = mido.MidiFile()
    mid.tracks.append(mido.MidiTrack([mido.MetaMessage("set_tempo", tempo=500000),
                                      mido.Message("control_change", control=64, value=127)]))
    mid.save(str(p))
    return p


def _not_midi(tmp_path):
    p = tmp_path / "notes.mid"
    p.write_text("C D E F G, this is ABC text, not a MIDI file\n")
    return p


def _bad_toml(tmp_path):
    p = tmp_path / "bad.toml"
    p.write_text("[rules]\nrange_low = 200\n")
    return p


@pytest.mark.parametrize("case", ["missing", "truncated", "no_notes", "not_midi", "bad_chords", "bad_config",
                                  "bad_flag_value", "bad_beats", "notes_only_on_other_track"])
def test_cli_bad_input_exits_2_with_one_line_and_no_file(case, tmp_path):
    from conftest import METHENY

    good = PHRASES / "bebop.mid"
    args = {
        "missing": (tmp_path / "nope.mid",),
        "truncated": (_truncated(tmp_path, METHENY),),
        "no_notes": (_no_notes(tmp_path),),
        "not_midi": (_not_midi(tmp_path),),
        "bad_chords": (good, "--chords", "Dm7 | Q7"),
        "bad_config": (good, "--config", _bad_toml(tmp_path)),
        "bad_flag_value": (good, "--tempo", "900"),
        "bad_beats": (good, "--beats", "4-8"),
        "notes_only_on_other_track": (good, "--track", "5"),
    }[case]
    out = tmp_path / "out.mid"
    p = improvd("replay", *args, "-o", out)
    assert p.returncode == 2, (p.stdout, p.stderr)
    lines = [ln for ln in p.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, p.stderr
    assert lines[0].startswith("improvd: error:") and "Traceback" not in p.stderr
    assert not out.exists()
    assert not list(tmp_path.glob(".improvd-*")), "a temporary output was left behind"
