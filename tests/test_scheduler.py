"""The scheduler is the only thing that sends notes: every note it starts, it ends."""

import math

from hypothesis import given, settings as hsettings, strategies as st

from improvd.scheduler import Scheduler


class Wire:
    """What a synth hears: (due, now, type, pitch)."""

    def __init__(self):
        self.log = []

    def __call__(self, msg, due, now):
        self.log.append((due, now, msg.type, getattr(msg, "note", None), getattr(msg, "velocity", None),
                         getattr(msg, "control", None)))

    def sounding(self):
        on = set()
        for _d, _n, kind, pitch, vel, _c in self.log:
            if kind == "note_on" and vel > 0:
                on.add(pitch)
            elif kind == "note_off":
                on.discard(pitch)
        return on

    def double_strikes(self):
        """note-ons of a pitch the synth already hears sounding (a re-strike without an off)."""
        on, bad = set(), []
        for d, _n, kind, pitch, vel, _c in self.log:
            if kind == "note_on":
                if pitch in on:
                    bad.append((d, pitch))
                on.add(pitch)
            elif kind == "note_off":
                on.discard(pitch)
        return bad


def test_a_note_starts_and_ends_on_time():
    w = Wire()
    s = Scheduler(w, channel=3)
    s.note(60, 100, 1.0, 1.5)
    assert s.next_due() == 1.0
    assert s.flush(0.99) == 0 and w.log == []
    s.flush(1.001)
    assert w.log[0][:4] == (1.0, 1.001, "note_on", 60) and w.log[0][4] == 100
    assert s.sounding == {60: s.sounding[60]}
    s.flush(1.6)
    assert w.log[1][:4] == (1.5, 1.6, "note_off", 60)
    assert s.sounding == {} and s.next_due() is None
    assert s.sent_on == 1 and s.sent_off == 1


def test_channel_and_velocity_clamp():
    msgs = []
    s = Scheduler(lambda m, d, n: msgs.append(m), channel=9)
    s.note(60, 0, 0.0, 1.0)
    s.note(61, 300, 0.0, 1.0)
    s.flush(2.0)
    ons = [m for m in msgs if m.type == "note_on"]
    assert all(m.channel == 9 for m in msgs)
    assert sorted(m.velocity for m in ons) == [1, 127]  # a velocity-0 note-on would be a note-off


def test_restrike_of_a_sounding_pitch_sends_an_off_first():
    w = Wire()
    s = Scheduler(w)
    s.note(64, 90, 0.0, 2.0)
    s.note(64, 80, 1.0, 1.5)
    s.flush(3.0)
    kinds = [(k, d) for d, _n, k, p, _v, _c in w.log if p == 64]
    assert kinds == [("note_on", 0.0), ("note_off", 1.0), ("note_on", 1.0), ("note_off", 1.5)]
    # the first note's own off (due 2.0) is not sent again over the second note
    assert w.double_strikes() == [] and w.sounding() == set()


def test_max_note_guard_ends_a_forgotten_note():
    w = Wire()
    s = Scheduler(w, max_note=4.0)
    s.note(48, 90, 1.0, 1000.0)
    s.start_now(50, 90, 2.0)  # a harmony voice held "until stop_now" that never comes
    s.flush(5.0)
    assert 48 not in w.sounding()
    s.flush(6.0)
    assert w.sounding() == set()
    offs = {p: d for d, _n, k, p, _v, _c in w.log if k == "note_off"}
    assert offs == {48: 5.0, 50: 6.0}


def test_zero_length_note_still_sounds():
    w = Wire()
    s = Scheduler(w)
    s.note(60, 90, 1.0, 0.5)  # end before start: a blip, never an off before its on
    s.flush(2.0)
    assert [k for _d, _n, k, _p, _v, _c in w.log] == ["note_on", "note_off"]
    assert w.log[1][0] > w.log[0][0]


def test_release_all_ends_everything_now_and_sends_nothing_planned():
    w = Wire()
    s = Scheduler(w)
    for i, p in enumerate((60, 64, 67)):
        s.note(p, 90, 0.1 * i, 5.0)
    s.note(72, 90, 3.0, 4.0)
    s.flush(1.0)
    assert w.sounding() == {60, 64, 67}
    s.release_all(1.25)
    assert w.sounding() == set()
    assert all(d == 1.25 for d, _n, k, _p, _v, _c in w.log if k == "note_off")
    s.flush(100.0)
    assert [p for _d, _n, k, p, _v, _c in w.log if k == "note_on"] == [60, 64, 67]


def test_close_sends_all_notes_off():
    w = Wire()
    s = Scheduler(w, channel=2)
    s.note(60, 90, 0.0, 5.0)
    s.flush(0.1)
    s.close(0.2)
    assert w.sounding() == set()
    assert w.log[-1][2] == "control_change" and w.log[-1][5] == 123


def test_stop_now_ends_a_held_voice_and_its_plans():
    w = Wire()
    s = Scheduler(w)
    s.start_now(55, 80, 0.0)
    s.note(55, 80, 2.0, 3.0)
    s.stop_now(55, 1.0)
    s.flush(10.0)
    assert [(k, d) for d, _n, k, p, _v, _c in w.log] == [("note_on", 0.0), ("note_off", 1.0)]


ops = st.lists(st.one_of(
    st.tuples(st.just("note"), st.integers(36, 48), st.floats(0, 10), st.floats(-1, 20)),
    st.tuples(st.just("flush"), st.floats(0, 0.8)),
    st.tuples(st.just("release"), st.floats(0, 0.5)),
    st.tuples(st.just("start_now"), st.integers(36, 48)),
    st.tuples(st.just("stop_now"), st.integers(36, 48)),
), max_size=60)


@given(ops, st.floats(0.5, 10))
@hsettings(max_examples=400, deadline=None)
def test_no_hanging_notes_whatever_happens(plan, max_note):
    """Random plans, flushes, barge-ins and cancels: the synth never hears a note without its end."""
    w = Wire()
    s = Scheduler(w, max_note=max_note)
    now = 0.0
    for op in plan:
        if op[0] == "note":
            start = now + op[2]
            s.note(op[1], 90, start, start + op[3])
        elif op[0] == "flush":
            now += op[1]
            s.flush(now)
        elif op[0] == "release":
            now += op[1]
            s.flush(now)  # the daemon's loop sends what is due before it handles the input
            s.release_all(now)
            assert w.sounding() == set()  # a barge-in leaves nothing sounding at once
        elif op[0] == "start_now":
            s.start_now(op[1], 90, now)
        else:
            s.stop_now(op[1], now)
        assert set(s.sounding) == w.sounding()  # the scheduler knows exactly what sounds
    # let time run out: every note ends by itself within max_note
    horizon = now + 30 + max_note
    s.flush(horizon)
    assert w.sounding() == set() and s.sounding == {}
    assert s.next_due() is None or s.next_due() > horizon
    assert w.double_strikes() == []
    # nothing is sent before it is due, and the on/off counts agree with what the wire heard
    assert all(n >= d - 1e-9 for d, n, *_ in w.log)
    assert s.sent_on == sum(1 for x in w.log if x[2] == "note_on")
    assert s.sent_off == sum(1 for x in w.log if x[2] == "note_off")
    # no note lasts longer than the guard
    started = {}
    for d, _n, k, p, _v, _c in w.log:
        if k == "note_on":
            started[p] = d
        elif k == "note_off" and p in started:
            assert d - started.pop(p) <= max_note + 1e-6
