"""``improvd evaluate jazz``: likelihood on held-out solos and the statistics a jazz teacher
would look at, for real solos and for solos the models improvise over the same chords.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from improvd import ImprovdError
from improvd.chords import Progression
from improvd.encoding import BAR_TICKS
from improvd.encoding import jazz as enc
from improvd.encoding.events import REST, Event
from improvd.models import load_model, resolve
from improvd.models.base import PlayContext
from improvd.models.card import ModelCard

DEFAULT_DATA = "jazz/wjazzd_chords.trainvalid.jsonl"  # under the shared data folder
MAX_BARS = 32
REPEATS = 3


# -- statistics: pure functions over event lists ----------------------------------------------
def notes_of(events):
    return [e for e in events if e.pitch != REST]


def chord_tone_ratio_on_beats(events) -> float:
    on = [e for e in notes_of(events) if e.onset % 12 == 0 and e.chord is not None]
    return float(np.mean([e.pitch % 12 in e.chord.tones for e in on])) if on else float("nan")


def scale_tone_ratio(events) -> float:
    ns = [e for e in notes_of(events) if e.chord is not None]
    return float(np.mean([e.pitch % 12 in (e.chord.scale | e.chord.tones) for e in ns])) if ns else float("nan")


def mean_abs_interval(events) -> float:
    ps = [e.pitch for e in notes_of(events)]
    return float(np.mean(np.abs(np.diff(ps)))) if len(ps) > 1 else float("nan")


def pitch_range(events) -> float:
    ps = [e.pitch for e in notes_of(events)]
    return float(max(ps) - min(ps)) if ps else float("nan")


def notes_per_bar(events) -> float:
    if not events:
        return float("nan")
    span = events[-1].onset + events[-1].duration - events[0].onset
    return len(notes_of(events)) / max(1.0, span / BAR_TICKS)


STATS = {
    "chord tones on beats %": lambda e: 100 * chord_tone_ratio_on_beats(e),
    "scale tones %": lambda e: 100 * scale_tone_ratio(e),
    "mean |interval| (semitones)": mean_abs_interval,
    "pitch range (semitones)": pitch_range,
    "notes per bar": notes_per_bar,
}


def summarise(solos) -> dict:
    return {k: float(np.nanmean([f(s) for s in solos])) for k, f in STATS.items()}


# -- data ---------------------------------------------------------------------------------------
def read_solos(path: Path) -> list:
    """[(name, events)] of a WJazzD-style JSON-lines file, one solo a line."""
    from improvd.encoding.jazz import events_from_wjazzd

    if not path.is_file():
        raise ImprovdError(f"evaluation data {path} is not a file: pass --data FILE.jsonl (one solo a line)")
    solos = []
    with open(path) as f:
        for i, line in enumerate(f, 1):
            if line.strip():
                try:
                    rec = json.loads(line)
                    solos.append((f"melid{rec.get('melid', i)}", events_from_wjazzd(rec)))
                except (json.JSONDecodeError, KeyError, ValueError, TypeError) as e:
                    raise ImprovdError(f"{path}:{i} is not a solo record ({e}): jazz evaluates WJazzD-style JSON lines, "
                                       "one solo a line") from None
    return solos


def load_solos(data: list[str], split: str | None, card: ModelCard | None) -> tuple[list, str]:
    """(solos, what a table calls them). No --data: the valid split of the shared WJazzD file,
    the solos the model's card names as held out (a card without them, deepjazz's: the split
    jazz training makes, 10 % of solos, seed 0; the same 26). Files given with --data: whole,
    unless --split valid/train asks for the same split of them."""
    from improvd.evaluation.data import choose_split, default_data, describe, seeded_how, split_by_piece

    paths = [Path(d) for d in data] or [default_data(DEFAULT_DATA, "FILE.jsonl")]
    chosen = choose_split(split, bool(data))
    solos = [s for p in paths for s in read_solos(p)]
    how = ""
    if chosen in ("valid", "train"):
        names = set(((card.training or {}).get("valid_names") or []) if card is not None else [])
        if names:
            held = [s for s in solos if s[0] in names]
            if not held:
                raise ImprovdError(f"none of the solos in {' + '.join(str(p) for p in paths)} is one the model held out "
                                   f"({len(names)} named in its card): drop --split to score the whole file")
            solos = held if chosen == "valid" else [s for s in solos if s[0] not in names]
            how = (f"the model's {len(names)} held-out solos" if len(held) == len(names)
                   else f"{len(held)} of the model's {len(names)} held-out solos")
        else:
            train, valid = split_by_piece(solos)
            solos = valid if chosen == "valid" else train
            how = seeded_how("solos")
    return solos, describe(chosen, paths, how)


def chord_lookup(events):
    starts = np.array([e.onset for e in events])

    def at(tick):
        i = int(np.searchsorted(starts, tick, side="right")) - 1
        return events[max(0, i)].chord
    return at


def improvise(model, chord_at, n_ticks: int, rng, temperature=None) -> list[Event]:
    """A solo over ``chord_at`` through the daemon's own code path (begin_answer, play)."""
    model.reset()
    model.begin_answer(0)
    t = temperature if temperature is not None else float(model.card.sampling.get("temperature", 1.0))
    top_p = float(model.card.sampling.get("top_p", 1.0))
    out = []
    for tick in range(n_ticks):
        for n in model.play(PlayContext(tick=tick, chord=chord_at(tick), rng=rng, temperature=t, top_p=top_p,
                                        starting=tick == 0, pitch_range=(28, 108), chord_at=chord_at)):
            out.append(Event(n.pitch, n.duration, tick, chord_at(tick)))
    return out


def nll(model, solos, progress: str | None = None) -> dict:
    """Per-event NLL (nats) of pitch and duration, top-1/top-5 next-pitch accuracy (jazz family);
    ``progress``: the stage to show it as (one ONNX step an event: seconds a solo)."""
    from improvd.progress import track

    lp = ld = 0.0
    n = c1 = c5 = 0
    for _name, events in track(solos, progress or "", unit="solos", quiet=progress is None):
        model.reset()
        prev = None
        for e in events:
            pp, pd, pos, cond = enc.step_input(prev, e.onset, e.chord)
            pl, dl, model.h, model.c = model.sess.run(None, {
                "prev_pitch": np.array([pp]), "prev_dur": np.array([pd]), "pos": np.array([pos]),
                "cond": cond[None], "h": model.h, "c": model.c})
            pl, dl = pl[0].astype(np.float64), dl[0].astype(np.float64)
            tp, td = enc.pitch_token(e.pitch), enc.duration_token(e.duration)
            lse_p = np.log(np.exp(pl - pl.max()).sum()) + pl.max()
            lse_d = np.log(np.exp(dl - dl.max()).sum()) + dl.max()
            lp += lse_p - pl[tp]
            ld += lse_d - dl[td]
            top = np.argsort(-pl)[:5]
            c1 += int(top[0] == tp)
            c5 += int(tp in top)
            n += 1
            prev = e
    return {"NLL pitch (nats)": lp / n, "NLL duration (nats)": ld / n, "NLL total (nats)": (lp + ld) / n,
            "top-1 pitch %": 100 * c1 / n, "top-5 pitch %": 100 * c5 / n, "events": n}


def evaluate(model: str, data: list[str], split: str | None, n: int | None, seed: int) -> dict:
    """The statistics of the solos ``load_solos`` picks (the first ``n`` of them when given:
    by default all, as the README's table) beside solos each model generates over their
    chords, and each jazz model's likelihood on all of them; the title names the part scored."""
    from rich.console import Console
    from rich.table import Table

    from improvd.progress import stage

    m = load_model(model)
    solos, scored = load_solos(data, split, m.card)
    if not solos:
        raise ImprovdError(f"{scored} holds no solos: check --data and --split")
    others = [model]
    if m.family == "jazz":
        try:
            resolve("deepjazz")
            others.append("deepjazz")
        except ImprovdError:
            pass
    picked = solos[: n or len(solos)]
    cut = []
    for name, ev in picked:
        end = ev[0].onset + MAX_BARS * BAR_TICKS
        cut.append((name, [e for e in ev if e.onset < end]))
    columns = {"data": summarise([ev for _, ev in cut])}
    likelihood = {}
    for name in others:
        mm = m if name == model else load_model(name)
        rng = np.random.default_rng(seed)
        gen = []
        # several solos per chart: the statistics are of the model, not of one draw
        with stage(f"{mm.card.name}: improvising over the solos' chords", total=REPEATS * len(cut), unit="solos") as shown:
            for _rep in range(REPEATS):
                for _n, ev in cut:
                    span = ev[-1].onset + ev[-1].duration - ev[0].onset
                    shifted = [Event(e.pitch, e.duration, e.onset - ev[0].onset, e.chord) for e in ev]
                    gen.append(improvise(mm, chord_lookup(shifted), span, rng))
                    shown.advance()
        columns[mm.card.name] = summarise(gen)
        if mm.family == "jazz":
            likelihood[mm.card.name] = nll(mm, solos, f"{mm.card.name}: likelihood of the solos")
    of = f"{len(cut)} of {len(solos)} solos" if len(cut) < len(solos) else (f"all {len(solos)} solos" if len(solos) > 1 else "its solo")
    table = Table(title=f"{m.card.name} on the {scored}: statistics over {of}, first {MAX_BARS} bars; "
                        f"{REPEATS} generated over each solo's chords")
    table.add_column("statistic")
    for k in columns:
        table.add_column(k, justify="right")
    for stat in STATS:
        table.add_row(stat, *[f"{columns[k][stat]:.2f}" for k in columns])
    for key in ("NLL pitch (nats)", "NLL duration (nats)", "NLL total (nats)", "top-1 pitch %", "top-5 pitch %"):
        table.add_row(key, "", *[f"{likelihood[k][key]:.3f}" if k in likelihood else "n/a" for k in list(columns)[1:]])
    Console().print(table)
    return {"columns": columns, "likelihood": likelihood, "solos": len(solos), "compared": len(cut), "scored": scored}


def generate(model: str, out: Path, length: int | None, seed: int | None, temperature: float | None, primer: str | None) -> list[Path]:
    """``improvd generate jazz -o solo.mid --bars 16 --primer "Dm7 G7 | Cmaj7 %"``: a solo over a chart."""
    import mido

    from improvd.midi.files import write_midi

    m = load_model(model)
    prog = Progression.parse(primer or "Dm7 G7 | Cmaj7 % | Em7 A7 | Dm7 G7", BAR_TICKS)
    bars = length or 16
    rng = np.random.default_rng(seed)
    events = improvise(m, prog.at, bars * BAR_TICKS, rng, temperature)
    tempo = 140.0
    tick_s = 60.0 / tempo / 12
    solo, chords = [], []
    for e in events:
        solo.append((e.onset * tick_s, mido.Message("note_on", note=e.pitch, velocity=90)))
        solo.append(((e.onset + e.duration) * tick_s - 0.002, mido.Message("note_off", note=e.pitch, velocity=0)))
    for bar in range(bars):
        for half in range(2):
            t0 = bar * BAR_TICKS + half * BAR_TICKS // 2
            ch = prog.at(t0)
            for pc in sorted(ch.tones)[:4]:
                p = 48 + (pc - ch.root) % 12 + ch.root % 12
                chords.append((t0 * tick_s, mido.Message("note_on", channel=1, note=p, velocity=60)))
                chords.append(((t0 + BAR_TICKS // 2) * tick_s - 0.005, mido.Message("note_off", channel=1, note=p, velocity=0)))
    out = Path(out)
    write_midi(out, [("improvd", solo), ("chords", chords)], tempo)
    from improvd.plot import piano_roll
    png = piano_roll(out, out.with_suffix(".png"), f"{m.card.name} over {primer or 'a ii-V-I chart'}")
    return [out, png]
