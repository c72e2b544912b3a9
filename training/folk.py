"""The folk family: the character-level LSTM over ABC tunes of MIT 6.S191 lab 1 ('mit'), and a
smaller, regularised, early-stopped LSTM on more ABC ('default'). Data, model, training, ONNX
export, evaluation (bits per char, valid-tune rate) and generation.

Both presets are scored on the same text: the valid tunes (10 %, seeded, by whole tune) of the
lab's irish.abc, read as one stream with the state carried across tunes.
"""

from __future__ import annotations

import math
import re
import time
from pathlib import Path

import numpy as np

from improvd import ImprovdError
from improvd.encoding import abc as enc

PRESETS = {
    # MIT 6.S191 lab 1: Embedding 256 -> LSTM 1024 -> Dense, seq 100, Adam 5e-3, 2000 iterations,
    # random windows of the lab's corpus only, no dropout, no early stopping (the last weights).
    "mit": dict(emb=256, hidden=1024, layers=1, dropout=0.0, seq_len=100, batch_size=32, lr=5e-3,
                iters_per_epoch=100, epochs=20, patience=0, select="last", extra_data=False, irish_share=1.0,
                optimizer="adam", schedule=False, weight_decay=0.0),
    # the bundled default: small enough for a live CPU step, more data, dropout, early stopping
    "default": dict(emb=64, hidden=512, layers=2, dropout=0.25, seq_len=200, batch_size=128, lr=3e-3,
                    iters_per_epoch=250, epochs=60, patience=6, select="best", extra_data=True, irish_share=0.35,
                    optimizer="adamw", schedule=True, weight_decay=1e-4),
    # CPU smoke tests
    "tiny": dict(emb=16, hidden=32, layers=1, dropout=0.0, seq_len=50, batch_size=8, lr=1e-2,
                 iters_per_epoch=10, epochs=2, patience=0, select="last", extra_data=False, irish_share=1.0,
                 optimizer="adam", schedule=False, weight_decay=0.0),
}

VALID_SEED = 0
VALID_FRACTION = 0.1


def shared_data() -> Path:
    from improvd.evaluation.data import shared

    return shared("")


# -- data ---------------------------------------------------------------------------------------

def load_corpora(data: list[str], extra: bool, max_items: int | None = None) -> dict:
    """{'train': irish train text, 'valid': irish valid text, 'extra': other ABC text, 'counts': ...}.

    ``data``: the irish.abc path first (default: the shared copy), then optional folders or files
    of ABC; with ``extra`` and no further paths, Nottingham train and music21's O'Neill's and
    Ryan's collections are added."""
    from improvd.evaluation.data import default_data
    from improvd.progress import stage

    irish = Path(data[0]) if data else default_data("abc/irish.trainvalid.abc", "FILE.abc")
    tunes = enc.load_irish(irish)
    if max_items:
        tunes = tunes[:max_items]
    train, valid = enc.split_valid(tunes, VALID_FRACTION, VALID_SEED)
    others: list[str] = []
    counts = {"irish_train": len(train), "irish_valid": len(valid)}
    if extra:
        paths = [Path(p) for p in data[1:]]
        if not paths:
            nott = shared_data() / "nottingham_abc" / "train"
            if nott.is_dir():
                paths.append(nott)
            paths.append(Path("music21:oneills1850,ryansMammoth"))
        for p in paths:
            with stage(f"reading ABC {p}", unit="tunes") as s:  # music21's collections: seconds
                if str(p).startswith("music21:"):
                    got = enc.load_music21_abc(tuple(str(p).split(":", 1)[1].split(",")))
                elif p.is_dir():
                    got = enc.load_folder(p)
                else:
                    got = enc.load_abc_file(p, normalize=True)
                s.update(completed=len(got))
            counts[str(p)] = len(got)
            others += got
    return {"train": enc.join_tunes(train), "valid": enc.join_tunes(valid), "extra": enc.join_tunes(others) if others else "",
            "counts": counts, "valid_titles": [enc.header(t).get("T", "") for t in valid]}


def save_cache(corpora: dict, path: Path) -> None:
    """Encoded corpora as .npz, for a training box without music21."""
    np.savez_compressed(path, train=enc.encode(corpora["train"]), valid=enc.encode(corpora["valid"]),
                        extra=enc.encode(corpora["extra"]), counts=np.array(repr(corpora["counts"])))


def load_cache(path: Path) -> dict:
    z = np.load(path)
    import ast
    return {"train": z["train"], "valid": z["valid"], "extra": z["extra"], "counts": ast.literal_eval(str(z["counts"]))}


# -- model ----------------------------------------------------------------------------------------

def _torch():
    import torch
    import torch.nn as nn
    return torch, nn


def build_model(emb: int, hidden: int, layers: int, dropout: float, vocab: int = len(enc.VOCAB)):
    torch, nn = _torch()

    class FolkLSTM(nn.Module):
        """Embedding -> LSTM -> Linear, as in the lab."""

        def __init__(self):
            super().__init__()
            self.hidden, self.layers = hidden, layers
            self.emb = nn.Embedding(vocab, emb)
            self.lstm = nn.LSTM(emb, hidden, layers, batch_first=True, dropout=dropout if layers > 1 else 0.0)
            self.drop = nn.Dropout(dropout)
            self.head = nn.Linear(hidden, vocab)

        def forward(self, x, state=None):
            y, state = self.lstm(self.emb(x), state)
            return self.head(self.drop(y)), state

    return FolkLSTM()


def step_module(net):
    """One character: the graph the daemon runs, with (h, c) in and out."""
    torch, nn = _torch()

    class FolkStep(nn.Module):
        def __init__(self):
            super().__init__()
            self.net = net

        def forward(self, char, h, c):
            y, (h2, c2) = self.net.lstm(self.net.emb(char)[:, None, :], (h, c))
            return self.net.head(y[:, 0]), h2, c2

    return FolkStep()


# -- training ---------------------------------------------------------------------------------------

def _windows(text: np.ndarray, n: int, seq_len: int, rng: np.random.Generator) -> np.ndarray:
    starts = rng.integers(0, len(text) - seq_len - 1, n)
    return np.stack([text[s:s + seq_len + 1] for s in starts])


def stream_bits_per_char(net, text: np.ndarray, device, chunk: int = 2000) -> float:
    """Cross-entropy in bits per char over ``text`` read as one stream (state carried), torch."""
    torch, _ = _torch()
    import torch.nn.functional as F

    x = torch.from_numpy(np.asarray(text, np.int64)).to(device)
    total, n, state = 0.0, 0, None
    with torch.no_grad():
        for s in range(0, len(x) - 1, chunk):
            inp = x[s:min(s + chunk, len(x) - 1)][None]
            tgt = x[s + 1:s + 1 + inp.shape[1]][None]
            logits, state = net(inp, state)
            total += float(F.cross_entropy(logits.float().reshape(-1, logits.shape[-1]), tgt.reshape(-1), reduction="sum"))
            n += tgt.numel()
    return total / max(n, 1) / math.log(2)


def train(cfg) -> dict:
    torch, nn = _torch()
    from improvd.progress import stage
    from improvd.training.loop import RunDir, fit, pick_device, seed_everything, update

    p = dict(PRESETS.get(cfg.preset) or PRESETS["default"])
    for k in ("epochs", "batch_size", "lr", "hidden"):
        if getattr(cfg, k) is not None:
            p[k] = getattr(cfg, k)
    p.update({k: v for k, v in cfg.extra.items() if k in p})
    seed_everything(cfg.seed)
    device = pick_device(cfg.device)
    if cfg.extra.get("cache"):
        data = load_cache(Path(cfg.extra["cache"]))
        if not p["extra_data"]:
            data["extra"] = np.zeros(0, np.int64)
    else:
        c = load_corpora(cfg.data, p["extra_data"], cfg.max_items)
        data = {"train": enc.encode(c["train"]), "valid": enc.encode(c["valid"]),
                "extra": enc.encode(c["extra"]), "counts": c["counts"]}
    train_text, valid_text, extra_text = data["train"], data["valid"], data["extra"]
    use_extra = p["extra_data"] and len(extra_text) > p["seq_len"] + 2
    with stage("building the model"):  # torch's first optimiser imports its compiler: seconds
        net = build_model(p["emb"], p["hidden"], p["layers"], p["dropout"]).to(device)
        if p["optimizer"] == "adam":
            opt = torch.optim.Adam(net.parameters(), lr=p["lr"])
        else:
            opt = torch.optim.AdamW(net.parameters(), lr=p["lr"], weight_decay=p["weight_decay"])
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=p["epochs"], eta_min=p["lr"] / 20) if p["schedule"] else None
    rng = np.random.default_rng(cfg.seed)
    use_amp = cfg.amp and device.type == "cuda"
    loss_fn = nn.CrossEntropyLoss()

    def batches(epoch):
        for _ in range(p["iters_per_epoch"]):
            if use_extra:
                n_irish = int(rng.binomial(p["batch_size"], p["irish_share"]))
                parts = [_windows(train_text, n_irish, p["seq_len"], rng), _windows(extra_text, p["batch_size"] - n_irish, p["seq_len"], rng)]
                yield np.concatenate(parts)
            else:
                yield _windows(train_text, p["batch_size"], p["seq_len"], rng)

    def step(batch):
        b = torch.from_numpy(batch).to(device, non_blocking=True)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=use_amp):
            logits, _ = net(b[:, :-1])
        loss = loss_fn(logits.float().reshape(-1, logits.shape[-1]), b[:, 1:].reshape(-1))
        update(opt, loss, net.parameters(), 5.0)
        return float(loss.detach())

    def evaluate():
        bpc = stream_bits_per_char(net, valid_text, device)
        return {"valid_loss": bpc * math.log(2), "valid_bits_per_char": bpc}

    cfg.patience = p["patience"]
    run = RunDir(cfg.out)
    describe = {"arch": {k: p[k] for k in ("emb", "hidden", "layers", "dropout")}, "preset_params": p,
                "counts": data["counts"], "train_chars": int(len(train_text)), "extra_chars": int(len(extra_text)) if use_extra else 0,
                "valid_chars": int(len(valid_text)), "select": p["select"],
                "iterations": p["iters_per_epoch"] * p["epochs"], "vocab": enc.VOCAB}
    return fit(net, opt, cfg, run, p["epochs"], batches, step, evaluate, device, sched, describe,
               loss_label="cross-entropy (nats/char)")


def load_run(run_dir: Path):
    from improvd.training.loop import RunDir

    rd = RunDir(run_dir)
    state = rd.load("last")
    if state is None:
        raise ImprovdError(f"run {run_dir} has no checkpoint (last.pt): train first")
    if state.get("describe", {}).get("select", "best") == "best" and (rd.path / "best.pt").exists():
        state = rd.load("best")
    a = state["describe"]["arch"]
    net = build_model(a["emb"], a["hidden"], a["layers"], a["dropout"])
    net.load_state_dict({k: v.float() for k, v in state["model"].items()})
    return net.eval(), state


# -- export -----------------------------------------------------------------------------------------

def export(run_dir: Path, out_prefix: Path, name: str | None = None) -> Path:
    import torch

    from improvd.training.export import export_step, specs, write_card

    net, state = load_run(Path(run_dir))
    out_prefix = Path(out_prefix)
    L, H = net.layers, net.hidden
    ex = {"char": torch.tensor([enc.CHAR_INDEX["X"]]), "h": torch.zeros(L, 1, H), "c": torch.zeros(L, 1, H)}
    outs = ["logits", "h_out", "c_out"]
    stepper = step_module(net).eval()
    export_step(stepper, ex, outs, out_prefix)
    with torch.no_grad():
        res = stepper(**ex)
    hist = state.get("history", [])
    chosen = hist[-1] if state["describe"].get("select") == "last" or not hist else min(hist, key=lambda r: r.get("valid_loss", math.inf))
    d = state["describe"]
    card = write_card(
        out_prefix, family="folk",
        encoding={"name": enc.ENCODING_NAME, "version": enc.ENCODING_VERSION, "vocab": enc.VOCAB,
                  "defaults": {"key": "D Major", "meter": "4/4", "unit": "1/8"}},
        grid={"ticks_per_beat": 12, "beats_per_bar": 4, "unit": "char"},
        inputs=specs(ex), outputs=specs(dict(zip(outs, res))),
        state={"h": "h_out", "c": "c_out"},
        sampling={"temperature": 1.0, "top_p": 1.0},
        training={"preset": state.get("config", {}).get("preset"), "arch": d["arch"], "counts": d.get("counts"),
                  "train_chars": d.get("train_chars"), "extra_chars": d.get("extra_chars"), "valid_chars": d.get("valid_chars"),
                  "iterations": d.get("iterations"), "epochs_run": len(hist), "select": d.get("select"),
                  "preset_params": d.get("preset_params"), "valid_split": f"irish.abc, {VALID_FRACTION:.0%} of tunes, seed {VALID_SEED}"},
        metrics={k: v for k, v in chosen.items() if k.startswith("valid") or k in ("epoch", "train_loss")},
    )
    return out_prefix.with_suffix(".json")


# -- evaluation ----------------------------------------------------------------------------------------

def onnx_bits_per_char(lm, text: np.ndarray, progress: str | None = None) -> float:
    """Bits per char over ``text`` as one stream, with the exported graph (onnxruntime);
    ``progress``: the stage to show it as (a char a step: tens of seconds for a valid split)."""
    from improvd.progress import stage

    lm.reset()
    total = 0.0
    with stage(progress or "", total=max(len(text) - 1, 0), unit="chars", quiet=progress is None) as shown:
        for i in range(len(text) - 1):
            logits = lm.step(int(text[i]))
            z = logits.astype(np.float64)
            m = z.max()
            total += (m + math.log(np.exp(z - m).sum())) - z[int(text[i + 1])]
            if i % 500 == 499:
                shown.advance(500)
        shown.update(completed=max(len(text) - 1, 0))
    return total / max(len(text) - 1, 1) / math.log(2)


def check_tune(text: str) -> dict:
    """Is a generated tune valid? music21 parses it into a score with >= 8 notes, and its X: T: M:
    L: K: headers are present and agree with the notes: the meter music21 reads is M:, and at
    least 75 % of the bars (first and last bars of each line aside: pickups and their
    complements) last one M: bar."""
    import warnings

    from music21 import converter, meter as m21meter

    from improvd.abcstream import parse_text

    head = enc.header(text)
    missing = [f for f in enc.HEADER_FIELDS if f not in head]
    res = {"ok": False, "notes": 0, "reason": ""}
    if missing:
        res["reason"] = "missing " + "".join(missing)
        return res
    try:
        enc.parse_key(head["K"])
        enc.parse_unit(head["L"])
        bar = enc.parse_meter(head["M"])
    except ImprovdError as e:
        res["reason"] = f"bad header: {e}"
        return res
    if bar is None:
        res["reason"] = "no meter"
        return res
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            score = converter.parse(text, format="abc")
    except Exception as e:  # music21 raises many types on broken ABC
        res["reason"] = f"music21: {type(e).__name__}"
        return res
    notes = [n for n in score.flatten().notes if not n.duration.isGrace and type(n).__name__ not in ("ChordSymbol", "NoChord")]
    res["notes"] = len(notes)
    if len(notes) < 8:
        res["reason"] = "fewer than 8 notes"
        return res
    ts = score.recurse().getElementsByClass(m21meter.TimeSignature).first()
    if ts is None or abs(ts.barDuration.quarterLength - float(bar) * 4) > 1e-6:
        res["reason"] = "meter differs"
        return res
    full = bar * enc.TICKS_PER_WHOLE
    inner = []
    for line in _body_lines(text):
        _n, s = parse_text(line, key=head["K"], meter=head["M"], unit=head["L"])
        inner += s.bar_lengths[1:-1]
    if inner:
        share = sum(1 for b in inner if b == full) / len(inner)
        res["bar_share"] = round(share, 3)
        if share < 0.75:
            res["reason"] = f"bars disagree with M: ({share:.0%} full)"
            return res
    res["ok"] = True
    return res


def _body_lines(text: str) -> list[str]:
    lines = text.split("\n")
    k = next((i for i, ln in enumerate(lines) if ln.startswith("K:")), len(lines))
    return [ln + "\n" for ln in lines[k + 1:] if ln.strip() and not (len(ln) > 1 and ln[1] == ":")]


def abc2midi_check(text: str) -> dict | None:
    """The seeds' own renderer on one tune: abc2midi's exit status and its messages, split into
    errors ("Error in line-char ...") and warnings ("Warning in line-char ..."); None where
    abc2midi is not installed. ``ok``: exit 0, a MIDI file written and no error line."""
    import shutil
    import subprocess
    import tempfile

    exe = shutil.which("abc2midi")
    if exe is None:
        return None
    with tempfile.TemporaryDirectory() as d:
        src = Path(d) / "t.abc"
        src.write_text(text + "\n")
        try:
            r = subprocess.run([exe, str(src), "-o", str(Path(d) / "t.mid")], capture_output=True, text=True,
                               timeout=20)
            rc, out, made = r.returncode, r.stdout + r.stderr, (Path(d) / "t.mid").exists()
        except subprocess.TimeoutExpired:
            rc, out, made = -1, "Error in line-char 0-0 : abc2midi timed out", False
    lines = [ln.strip() for ln in out.split("\n")]
    errors = [ln for ln in lines if ln.startswith("Error")]
    warns = [ln for ln in lines if ln.startswith("Warning")]
    ok = rc == 0 and made and not errors
    return {"rc": rc, "errors": errors, "warnings": warns, "ok": ok, "clean": ok and not warns}


def abc2midi_ok(text: str) -> bool | None:
    """abc2midi renders the tune with no error (warnings allowed); None where it is not installed."""
    r = abc2midi_check(text)
    return None if r is None else r["ok"]


def abc2midi_message_kind(line: str) -> str:
    """A message without its position and numbers: "Warning: Track 0 Bar N has N time units
    while the time signature has N in repeat", so that like messages count together."""
    s = re.sub(r"\s*in line-char \d+-\d+\s*", "", line)
    s = re.sub(r"\s*:\s*", ": ", s, count=1)
    s = re.sub(r"Ignoring text: .*", "Ignoring text: ...", s)
    s = re.sub(r"\d+(/\d+)?", "N", s)
    return re.sub(r"\s+", " ", s).strip()


def valid_tune_rate(model: str, n: int = 100, seed: int = 0, temperature: float = 1.0, constrained: bool = False,
                    progress: str | None = None) -> dict:
    """``n`` tunes sampled from 'X:': the share music21 reads as a valid tune (``check_tune``),
    and, where abc2midi is installed, the share it renders with no error (exit 0, no "Error"
    line) and the share with no warning either, with its most common messages."""
    from improvd.models import load_model
    from improvd.progress import track

    m = load_model(model)
    rng = np.random.default_rng(seed)
    reasons: dict = {}
    ok = midi_ok = midi_clean = midi_n = 0
    messages: dict = {}
    lengths = []
    samples = []
    times = []
    for _ in track(range(n), progress or "", unit="tunes", quiet=progress is None):
        t0 = time.perf_counter()
        tune = m.lm.sample_tune(rng, temperature=temperature, constrained=constrained)
        times.append((time.perf_counter() - t0, len(tune)))
        samples.append(tune)
        r = check_tune(tune)
        lengths.append(len(tune))
        if r["ok"]:
            ok += 1
        else:
            reasons[r["reason"].split(":")[0]] = reasons.get(r["reason"].split(":")[0], 0) + 1
        a = abc2midi_check(tune)
        if a is not None:
            midi_n += 1
            midi_ok += int(a["ok"])
            midi_clean += int(a["clean"])
            for kind in {abc2midi_message_kind(ln) for ln in a["errors"] + a["warnings"]}:
                messages[kind] = messages.get(kind, 0) + 1  # tunes with this message
    secs = sum(t for t, _n in times)
    out = {"n": n, "valid_tune_rate": ok / n, "reasons": reasons, "mean_chars": float(np.mean(lengths)),
           "constrained": constrained, "temperature": temperature,
           "ms_per_char": 1e3 * secs / max(1, sum(c for _t, c in times))}
    if midi_n:
        out["abc2midi_rate"] = midi_ok / midi_n  # no error
        out["abc2midi_clean_rate"] = midi_clean / midi_n  # no error and no warning
        out["abc2midi_messages"] = dict(sorted(messages.items(), key=lambda kv: -kv[1]))
    out["_samples"] = samples
    return out


def step_latency(model: str, n: int = 2000, seed: int = 0) -> dict:
    """One ONNX step plus one categorical draw, on this machine's CPU, one thread; and one char
    of the constrained bar sampler (mask, draw, checks, step: what the live folk path pays a char),
    timed over the body of tunes in D major 4/4 with no end, as the daemon samples an answer."""
    from improvd.abcstream import AbcStream
    from improvd.models import load_model
    from improvd.models.folk import BarSampler

    m = load_model(model)
    lm = m.lm
    rng = np.random.default_rng(seed)
    lm.reset()
    ch = enc.CHAR_INDEX["X"]
    times = []
    for i in range(n + 50):
        t0 = time.perf_counter()
        ch = lm.sample_next(ch, rng, 1.0)
        times.append(time.perf_counter() - t0)
    t = np.array(times[50:]) * 1e3
    lm.reset()
    lm.feed(enc.header_text("D Major", "4/4", "1/8"))
    bars = BarSampler(lm, AbcStream(key="D Major", meter="4/4", unit="1/8"), allow_end=False)
    ctimes = []
    for i in range(n + 50):
        t0 = time.perf_counter()
        bars.next_bar(rng, 1.0, budget=1)
        ctimes.append(time.perf_counter() - t0)
    c = np.array(ctimes[50:]) * 1e3
    return {"step_ms_p50": float(np.percentile(t, 50)), "step_ms_p99": float(np.percentile(t, 99)), "steps": n,
            "constrained_step_ms_p50": float(np.percentile(c, 50)),
            "constrained_step_ms_p99": float(np.percentile(c, 99))}


N_TUNES = 100  # tunes sampled per figure: the README's and the model card's N


def evaluation_text(data: list[str], split: str | None) -> tuple[np.ndarray, str, int]:
    """(encoded text, what the table calls it, tunes) of the part scored: the default irish.abc's
    valid split (10 % of its tunes, seeded, as training holds them out); a file or folder given
    with --data whole (several: all of them), or its seeded valid/train split when --split asks."""
    from improvd.evaluation.data import choose_split, default_data, describe, seeded_how

    paths = [Path(d) for d in data] or [default_data("abc/irish.trainvalid.abc", "FILE.abc")]
    chosen = choose_split(split, bool(data))
    tunes: list[str] = []
    for p in paths:
        tunes += enc.load_folder(p, normalize=False) if p.is_dir() else enc.load_irish(p)
    how = ""
    if chosen in ("valid", "train"):
        train, valid = enc.split_valid(tunes, VALID_FRACTION, VALID_SEED)
        tunes = valid if chosen == "valid" else train
        how = seeded_how("tunes", VALID_FRACTION, VALID_SEED)
    return enc.encode(enc.join_tunes(tunes)), describe(chosen, paths, how), len(tunes)


def evaluate(model: str, data: list[str], split: str | None, n: int | None, seed: int) -> dict:
    """Bits/char with the exported graph (onnxruntime) on the part ``evaluation_text`` picks,
    the valid-tune rate of ``n`` tunes (default 100) sampled from 'X:' at T=1.0, plain and
    constrained, and the step latency; a rich table whose title names the part scored."""
    from rich.console import Console
    from rich.table import Table

    from improvd.models import load_model, resolve

    models = [model] if isinstance(model, str) else list(model)
    n = n or N_TUNES
    rows = []
    text, scored, n_tunes = evaluation_text(data, split)
    for name in models:
        m = load_model(name)
        bpc = onnx_bits_per_char(m.lm, text, f"{m.card.name}: bits/char")
        plain = valid_tune_rate(name, n, seed, 1.0, constrained=False, progress=f"{m.card.name}: sampling tunes")
        cons = valid_tune_rate(name, n, seed, 1.0, constrained=True, progress=f"{m.card.name}: sampling tunes (constrained)")
        lat = step_latency(name, 1000, seed)
        rows.append({"model": str(resolve(name)), "preset": m.card.training.get("preset"), "scored": scored,
                     "bits_per_char": bpc,
                     "valid_tune_rate": plain["valid_tune_rate"], "valid_tune_rate_constrained": cons["valid_tune_rate"],
                     "reasons": plain["reasons"], "reasons_constrained": cons["reasons"],
                     "abc2midi_rate": plain.get("abc2midi_rate"), "abc2midi_rate_constrained": cons.get("abc2midi_rate"),
                     "abc2midi_clean_rate": plain.get("abc2midi_clean_rate"),
                     "abc2midi_clean_rate_constrained": cons.get("abc2midi_clean_rate"),
                     "abc2midi_messages": plain.get("abc2midi_messages"),
                     "abc2midi_messages_constrained": cons.get("abc2midi_messages"),
                     "mean_chars": plain["mean_chars"], "mean_chars_constrained": cons["mean_chars"],
                     "sample_ms_per_char_constrained": cons["ms_per_char"],
                     "n": n, "temperature": 1.0, **lat, "params": m.card.training.get("arch")})
    table = Table(title=f"folk on the {scored}: {n_tunes} tunes, {len(text)} chars; {n} tunes sampled from 'X:' at T=1.0"
                        " (plain / constrained)")
    for col in ("model", "bits/char (onnx)", "music21 valid", "abc2midi no error", "abc2midi no warning",
                "step p50/p99 ms", "constrained step p50/p99 ms"):
        table.add_column(col)
    for r in rows:
        if r["abc2midi_rate"] is None:
            midi = clean = "n/a (abc2midi not installed)"
        else:
            midi = f"{r['abc2midi_rate']:.1%} / {r['abc2midi_rate_constrained']:.1%}"
            clean = f"{r['abc2midi_clean_rate']:.1%} / {r['abc2midi_clean_rate_constrained']:.1%}"
        table.add_row(Path(r["model"]).stem, f"{r['bits_per_char']:.3f}",
                      f"{r['valid_tune_rate']:.1%} / {r['valid_tune_rate_constrained']:.1%}", midi, clean,
                      f"{r['step_ms_p50']:.3f} / {r['step_ms_p99']:.3f}",
                      f"{r['constrained_step_ms_p50']:.3f} / {r['constrained_step_ms_p99']:.3f}")
    Console().print(table)
    for r in rows:
        for label, key in (("plain", "abc2midi_messages"), ("constrained", "abc2midi_messages_constrained")):
            if r.get(key):
                Console().print(f"{Path(r['model']).stem} ({label}): tunes with each abc2midi message, most common first")
                for kind, count in list(r[key].items())[:8]:
                    Console().print(f"  {count:4d}  {kind}", markup=False, highlight=False)
    return {"rows": rows, "scored": scored, "tunes": n_tunes, "chars": int(len(text))}


# -- generation -------------------------------------------------------------------------------------------

def generate(model: str, out: Path, length: int | None, seed: int | None, temperature: float | None,
             primer: str | None) -> list[Path]:
    """tune.abc (sampled from 'X:' or continuing ``primer``), tune.mid (music21) and tune.png."""
    import warnings

    from music21 import converter

    from improvd.models import load_model

    m = load_model(model)
    rng = np.random.default_rng(seed)
    temp = m.card.sampling.get("temperature", 1.0) if temperature is None else temperature
    text = m.lm.sample_tune(rng, temperature=temp, primer=primer or "X:", max_chars=length or 2000, constrained=True)
    out = Path(out)
    # -o tune.abc or -o tune.mid: tune.abc, tune.mid, tune.png side by side (a .mid used to
    # become a folder of that name); anything else is a folder
    abc_path = out.with_suffix(".abc") if out.suffix.lower() in (".abc", ".mid", ".midi") else out / "tune.abc"
    mid = out if out.suffix.lower() in (".mid", ".midi") else abc_path.with_suffix(".mid")
    abc_path.parent.mkdir(parents=True, exist_ok=True)
    abc_path.write_text(text + "\n")
    written = [abc_path]
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            score = converter.parse(text, format="abc")
        score.write("midi", fp=str(mid))
        written.append(mid)
    except Exception as e:
        print(f"music21 could not render the tune to MIDI ({type(e).__name__}, often a repeat it cannot expand): "
              "tune.mid is written from the stream parser's notes, repeats not expanded")
    from improvd.abcstream import parse_text

    notes, _ = parse_text(text)
    if mid not in written:
        written.append(_notes_midi(notes, mid))
    written.append(piano_roll(notes, abc_path.with_suffix(".png"), title=enc.header(text).get("T", "tune"),
                              midi=mid if mid in written else None))
    return written


def _notes_midi(notes, path: Path, tempo: float = 120.0) -> Path:
    import mido

    from improvd.midi.files import write_midi

    beat = 60.0 / tempo
    msgs = []
    for n in notes:
        for p in (n.pitches or ((n.pitch,) if n.pitch is not None else ())):
            msgs.append((n.onset / 12 * beat, mido.Message("note_on", note=p, velocity=90)))
            msgs.append(((n.onset + n.duration) / 12 * beat - 1e-3, mido.Message("note_off", note=p, velocity=0)))
    msgs.sort(key=lambda m: m[0])
    write_midi(path, [("folk", msgs)], tempo)
    return Path(path)


def piano_roll(notes, path: Path, title: str = "", midi: Path | None = None) -> Path:
    """The project's piano roll (improvd/plot.py, from the MIDI file) where there is a MIDI file;
    otherwise the notes the stream parser read, drawn here."""
    if midi is not None:
        try:
            from improvd import plot as iplot
            return iplot.piano_roll(midi, path, title=title)
        except (ImportError, AttributeError):
            pass
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(10, 3.5), dpi=100)
    for n in notes:
        if n.pitch is not None:
            ax.broken_barh([(n.onset / 12, n.duration / 12)], (n.pitch - 0.4, 0.8), color="tab:green")
    ax.set_xlabel("beats")
    ax.set_ylabel("MIDI pitch")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return Path(path)
