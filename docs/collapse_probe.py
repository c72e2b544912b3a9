"""The evidence behind docs/collapse.md: why ``improvd replay original_metheny.mid --track 11
--beats 476:548`` answers with an ostinato. Run from the repository root (about 3 minutes on
one core): ``python docs/collapse_probe.py``.

Every answer here comes from :func:`improvd.replay.replay`, the engine ``improvd replay`` runs;
the probes only change its input (the performer's controllers), its settings (temperature,
rules, chart) or read the model's distributions on the way, never the engine itself.
"""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path

import numpy as np

from improvd.chords import detect_chord
from improvd.clock import Clock
from improvd.config import load_settings
from improvd.encoding import jazz as enc
from improvd.evaluation import response as rs
from improvd.midi.files import read_midi
from improvd.models import load_model
from improvd.replay import replay, select
from improvd.sampling import softmax

METHENY = Path(__file__).resolve().parents[2] / "shared" / "data" / "jazz" / "original_metheny.mid"
GUITAR = 11
ACCOMPANIMENT = {6, 7, 8, 9, 10}  # piano, bass, organ, strings, electric piano
COLLAPSED = 0.5  # repeated 4-grams: the soloists' most repetitive 8 bars stay far below (docs/collapse.md)


class Watch:
    """The jazz model's pitch draws during answers: (token's pitch, entropy at T 1, entropy at
    the temperature used, p(chosen), temperature), read where the runtime calls ``sample``."""

    def __init__(self, model):
        import improvd.models.jazz as runtime

        self.model, self.runtime, self.plain, self.draws = model, runtime, runtime.sample, []
        runtime.sample = self.sample

    def sample(self, logits, rng, temperature=1.0, top_p=1.0, mask=None):
        token = self.plain(logits, rng, temperature, top_p, mask)
        if self.model.answering and len(logits) == enc.N_PITCH:
            z = np.where(mask, -np.inf, logits) if mask is not None else np.asarray(logits, float)
            p1, pt = softmax(z, 1.0), softmax(z, temperature)
            entropy = lambda p: float(-(p[p > 0] * np.log(p[p > 0])).sum())
            self.draws.append((enc.token_pitch(token), entropy(p1), entropy(pt), float(pt[token]), float(temperature)))
        return token


def answer_figures(perf, model, seed, watch, **flags) -> tuple[dict, set]:
    """The degeneration figures of one replayed answer, and the temperatures it was drawn at."""
    s = load_settings(None, {"tempo": round(perf.tempo, 3), "seed": seed, **flags}, environ={})
    model.reset()
    watch.draws.clear()
    res = replay(perf, s, model=model)
    notes = rs.machine_notes(res.machine, Clock(s.tempo), 0, lambda t: None)
    return rs.degeneration(notes), {round(d[-1], 2) for d in watch.draws}


def without_cc1(perf):
    return dataclasses.replace(perf, controls=tuple(c for c in perf.controls if c[2] != 1))


def chart_from_accompaniment(perf0, beats) -> str:
    """A chord a beat, detected from what the band plays under the window (tracks 6-10)."""
    b0, b1 = beats
    band = [n for n in perf0.notes if n.track in ACCOMPANIMENT and n.channel != 9]
    bars, last = [], None
    for bar in range(int(b0), int(b1), 4):
        row = []
        for beat in range(bar, bar + 4):
            t0, t1 = beat * perf0.beat_seconds, (beat + 1) * perf0.beat_seconds
            chord = detect_chord([n.pitch for n in band if n.start < t1 and n.end > t0]) or last
            last = chord
            row.append(chord.name if chord else "N.C.")
        bars.append(" ".join(row))
    return " | ".join(bars)


def main() -> None:
    perf0 = read_midi(METHENY)
    model = load_model("jazz")
    watch = Watch(model)

    print("1. The guitar track's mod wheel (CC1, improvd's [cc] temperature): gestures in beats")
    cc1 = [(t / perf0.beat_seconds, v) for t, _ch, control, v, track in perf0.controls if track == GUITAR and control == 1]
    gesture: list = []
    for beat, value in cc1 + [(float("inf"), None)]:
        if gesture and beat - gesture[-1][0] > 2:
            print(f"   beats {gesture[0][0]:.2f}..{gesture[-1][0]:.2f}: {len(gesture)} messages, peak {max(v for _, v in gesture)}, "
                  f"last {gesture[-1][1]} -> temperature {0.1 + 1.9 * gesture[-1][1] / 127:.2f} from then on")
            gesture = []
        gesture.append((beat, value))

    windows = [(476, e) for e in (520, 528, 536, 544, 545, 548, 552)] + [(s, 548) for s in (500, 520, 540)]
    seeds = range(6)
    probes = {
        "as recorded (README example)": ({}, False),
        "mod wheel (CC1) messages removed": ({}, True),
        "[cc] temperature = 0 (not mapped)": ({"cc": {"temperature": 0}}, False),
        "CC1 removed, --temperature 0.1": ({"temperature": 0.1}, True),
        "CC1 removed, --temperature 0.1, rules off": ({"temperature": 0.1, "rules": {"order": ["min_length", "polyphony", "velocity"]}}, True),
        "CC1 removed, --temperature 0.1, chart from the band": (None, True),
        "CC1 removed, --temperature 0.3": ({"temperature": 0.3}, True),
        "CC1 removed, --temperature 0.5": ({"temperature": 0.5}, True),
    }
    print(f"\n2. Collapsed answers (repeated 4-grams >= {COLLAPSED}) per window, seeds {seeds.start}..{seeds.stop - 1}")
    for name, (flags, drop) in probes.items():
        cells, total = [], 0
        for beats in windows:
            perf = select(perf0, {GUITAR}, beats)
            perf = without_cc1(perf) if drop else perf
            f = flags if flags is not None else {"temperature": 0.1, "chords": chart_from_accompaniment(perf0, beats)}
            hits, temps = 0, set()
            for seed in seeds:
                d, used = answer_figures(perf, model, seed, watch, **f)
                hits += d["repeated 4-grams"] >= COLLAPSED
                temps |= used
            total += hits
            cells.append(f"{beats[0]}:{beats[1]} {hits}/{len(seeds)} (T {'/'.join(map(str, sorted(temps)))})")
        print(f"   {name}: {total}/{len(windows) * len(seeds)}")
        print("      " + "; ".join(cells))

    print("\n3. The model's next-pitch distribution over the answer to 476:548 (seed 0)")
    for name, perf in (("as recorded (T 0.1 from CC1)", select(perf0, {GUITAR}, (476, 548))),
                       ("CC1 removed (T 1.0)", without_cc1(select(perf0, {GUITAR}, (476, 548))))):
        answer_figures(perf, model, 0, watch)
        log = watch.draws
        print(f"   {name}: the model's own events {' '.join('r' if p < 0 else str(p) for p, *_ in log[:24])} ...")
        print(f"      entropy at T 1 (nats): mean {np.mean([d[1] for d in log]):.2f}; at the temperature used: mean "
              f"{np.mean([d[2] for d in log]):.2f}, last 20 draws {np.mean([d[2] for d in log[-20:]]):.3f}; "
              f"p(chosen) mean {np.mean([d[3] for d in log]):.2f}")

    print("\n4. A fresh state (the model reset, nothing heard) improvising 8 bars, no chart, seeds 0..5")
    from improvd.evaluation.jazz import improvise

    for temperature in (0.1, 1.0):
        reps = []
        for seed in range(6):
            ev = improvise(model, lambda t: None, 8 * 48, np.random.default_rng(seed), temperature)
            reps.append(rs.repeated_ngram_share([e.pitch for e in ev]))
        print(f"   T {temperature}: repeated 4-grams {' '.join(f'{r:.2f}' for r in reps)}")


if __name__ == "__main__":
    sys.exit(main())
