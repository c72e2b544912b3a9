"""Writes the example performances in this folder (hand-written phrases, no third-party music).

    python examples/make_examples.py
"""

from pathlib import Path

import mido

HERE = Path(__file__).parent


def write(name: str, notes, tempo: int = 120, tpb: int = 480) -> None:
    """notes: [(pitch, start_beats, length_beats, velocity)]"""
    mid = mido.MidiFile(type=1, ticks_per_beat=tpb)
    meta = mido.MidiTrack([mido.MetaMessage("set_tempo", tempo=mido.bpm2tempo(tempo), time=0),
                           mido.MetaMessage("time_signature", numerator=4, denominator=4, time=0)])
    tr = mido.MidiTrack([mido.MetaMessage("track_name", name="performer", time=0)])
    ev = []
    for p, s, l, v in notes:
        ev.append((round(s * tpb), 1, mido.Message("note_on", note=p, velocity=v)))
        ev.append((round((s + l) * tpb), 0, mido.Message("note_off", note=p, velocity=0)))
    last = 0
    for t, _o, m in sorted(ev, key=lambda e: (e[0], e[1])):
        tr.append(m.copy(time=t - last))
        last = t
    mid.tracks += [meta, tr]
    mid.save(HERE / name)


# Two calls over an F blues (F7 Bb7 F7 C7), five bars apart: room for a one-bar wait and a four-bar answer.
swing8 = [(0, 0.66), (0.66, 0.34)]
call1 = [(65, 0, 1, 88), (68, 1, 0.66, 80), (69, 1.66, 0.34, 76), (72, 2, 1, 92), (70, 3, 0.5, 80),
         (68, 3.5, 0.5, 78), (65, 4, 1.5, 90), (63, 6, 0.66, 82), (65, 6.66, 0.34, 78), (68, 7, 1, 86),
         (70, 8, 0.66, 84), (72, 8.66, 0.34, 80), (75, 9, 0.66, 90), (74, 9.66, 0.34, 84), (72, 10, 2, 94),
         (67, 12, 0.66, 80), (70, 12.66, 0.34, 76), (69, 13, 1, 84), (65, 14, 2, 88)]
call2 = [(p, s + 36, l, v) for p, s, l, v in
         [(72, 0, 0.5, 90), (74, 0.5, 0.5, 86), (75, 1, 0.5, 88), (77, 1.5, 0.5, 92), (75, 2, 1, 86),
          (72, 3, 1, 82), (70, 4, 0.66, 84), (68, 4.66, 0.34, 80), (65, 5, 3, 90)]]
write("blues_calls.mid", call1 + call2, tempo=132)
