"""The Coursera 'Improvise a Jazz Solo with an LSTM' model on deepjazz's grammar, faithfully:
data, training, one-step ONNX export, and the seed's own offline generation pipeline.

Data: the values of measures 1..18 of the Metheny solo (improvd.encoding.grammar.parse_solo),
60 random windows of Tx=30 values; input step t is the one-hot of value t (zeros at t=0), the
target of step t is value t+1 (the last step has no target). Model: one LSTM of n_a=64 and a
dense softmax shared over the steps. Loss: cross-entropy summed over the 30 steps, averaged
over the batch (Keras sums the losses of its 30 outputs): ~126 = 29 ln(78..90) at the start.
Adam lr 0.01 with Keras' legacy decay lr / (1 + 0.01 * iterations), batch 32, 100 epochs.
"""

from __future__ import annotations

import random
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from improvd import ImprovdError
from improvd.encoding import grammar as g
from improvd.training.corpora import shared
from improvd.training.config import TrainConfig
from improvd.training.loop import RunDir, fit, pick_device, seed_everything, update

PRESETS = {
    "deepjazz": dict(hidden=64, epochs=100, batch_size=32, lr=0.01, decay=0.01, m=60, tx=30),
}
TY = 50  # values generated per chord set
TEMPO = 130
SEGMENTS = 5  # the Coursera loop: range(1, int(19 / 3))


class DeepJazzLSTM(nn.Module):
    """LSTM(n_a) -> Dense(n_values) at every step, initialised as Keras initialises them."""

    def __init__(self, n_values: int, n_a: int = 64):
        super().__init__()
        self.n_values, self.n_a = n_values, n_a
        self.lstm = nn.LSTM(n_values, n_a, batch_first=True)
        self.dense = nn.Linear(n_a, n_values)
        # Keras: glorot-uniform kernels, orthogonal recurrent kernel, zero biases with the
        # forget gate's set to 1 (unit_forget_bias). torch orders the gates i, f, g, o.
        nn.init.xavier_uniform_(self.lstm.weight_ih_l0)
        nn.init.orthogonal_(self.lstm.weight_hh_l0)
        nn.init.zeros_(self.lstm.bias_ih_l0)
        nn.init.zeros_(self.lstm.bias_hh_l0)
        with torch.no_grad():
            self.lstm.bias_ih_l0[n_a:2 * n_a] = 1.0
        nn.init.xavier_uniform_(self.dense.weight)
        nn.init.zeros_(self.dense.bias)

    def forward(self, x, state=None):
        y, state = self.lstm(x, state)
        return self.dense(y), state


class DeepJazzStep(nn.Module):
    """One value: the graph the daemon runs, (h, c) in and out, logits for the next value."""

    def __init__(self, net: DeepJazzLSTM):
        super().__init__()
        self.net = net

    def forward(self, x, h, c):
        y, (h2, c2) = self.net.lstm(x[:, None, :], (h, c))
        return self.net.dense(y[:, 0]), h2, c2


def windows(corpus: list[str], values: list[str], m: int = 60, tx: int = 30, seed: int = 0):
    """The Coursera data: m windows of tx values at random starts (one seeded draw each).

    Returns (X one-hot float [m, tx, V], Y int64 [m, tx]) with X[:, 0] = 0, X[:, j] = value j,
    Y[:, j] = value j+1 and Y[:, tx-1] = -100 (no target, as the seed's all-zero row)."""
    if len(corpus) <= tx:
        raise ImprovdError(f"the corpus has {len(corpus)} values, fewer than a window of {tx}: give a longer solo")
    index = {v: i for i, v in enumerate(values)}
    rs = np.random.RandomState(seed)
    X = np.zeros((m, tx, len(values)), np.float32)
    Y = np.full((m, tx), -100, np.int64)
    for i in range(m):
        start = rs.choice(len(corpus) - tx)
        for j, v in enumerate(corpus[start:start + tx]):
            if j:
                X[i, j, index[v]] = 1.0
                Y[i, j - 1] = index[v]
    return X, Y


def load_solo(cfg: TrainConfig) -> g.Solo:
    path = Path(cfg.data[0]) if cfg.data else shared("jazz/original_metheny.mid")
    if len(cfg.data) > 1:
        raise ImprovdError("the deepjazz seed trains on one MIDI solo: pass a single --data FILE.mid")
    if not path.exists():
        raise ImprovdError(f"training data {path} does not exist: pass --data original_metheny.mid (shared/data/jazz/)")
    from improvd.progress import stage

    with stage(f"parsing {path.name} (music21)"):  # seconds, before the first epoch
        return g.parse_solo(str(path))


def train(cfg: TrainConfig) -> dict:
    p = dict(PRESETS["deepjazz"])
    for k in ("epochs", "batch_size", "lr", "hidden"):
        if getattr(cfg, k) is not None:
            p[k] = getattr(cfg, k)
    # The seed trains its 100 epochs through: no validation split, no early stopping.
    cfg = replace(cfg, patience=0, valid_fraction=0.0)
    seed_everything(cfg.seed)
    device = pick_device(cfg.device)
    solo = load_solo(cfg)
    values = solo.values
    X, Y = windows(solo.corpus, values, p["m"], p["tx"], cfg.seed)
    Xt, Yt = torch.from_numpy(X).to(device), torch.from_numpy(Y).to(device)
    from improvd.progress import stage

    with stage("building the model"):  # torch's first optimiser imports its compiler: seconds
        net = DeepJazzLSTM(len(values), p["hidden"]).to(device)
        opt = torch.optim.Adam(net.parameters(), lr=p["lr"], betas=(0.9, 0.999), eps=1e-7)
    rng = random.Random(cfg.seed)

    def iterations() -> int:
        st = opt.state.get(next(iter(net.parameters())), {})
        return int(st["step"]) if "step" in st else 0

    def batches(_epoch):
        order = list(range(len(X)))
        rng.shuffle(order)  # Keras fit shuffles every epoch
        for b in range(0, len(order), p["batch_size"]):
            yield torch.tensor(order[b:b + p["batch_size"]], device=device)

    def summed_ce(logits, y):
        ce = F.cross_entropy(logits.reshape(-1, len(values)), y.reshape(-1), ignore_index=-100, reduction="sum")
        return ce / y.shape[0]

    def step(idx):
        for group in opt.param_groups:  # Keras' legacy time decay, per iteration
            group["lr"] = p["lr"] / (1.0 + p["decay"] * iterations())
        logits, _ = net(Xt[idx])
        loss = summed_ce(logits, Yt[idx])
        update(opt, loss)
        return float(loss.detach())

    def evaluate():
        logits, _ = net(Xt)
        mask = Yt != -100
        acc = (logits.argmax(-1)[mask] == Yt[mask]).float().mean()
        return {"windows_loss": float(summed_ce(logits, Yt)), "windows_top1": float(acc),
                "lr": opt.param_groups[0]["lr"]}

    run = RunDir(cfg.out)
    describe = {"arch": {"n_values": len(values), "n_a": p["hidden"]}, "values": values,
                "windows": {"m": p["m"], "tx": p["tx"]}, "optimizer": {"name": "adam", "lr": p["lr"], "decay": p["decay"], "batch_size": p["batch_size"]},
                "corpus_values": len(solo.corpus), "measures": len(solo.measures),
                "chords": [[c.to_json() for c in bar] for bar in solo.chords],
                "data": [str(x) for x in cfg.data] or ["shared/data/jazz/original_metheny.mid"]}
    return fit(net, opt, cfg, run, p["epochs"], batches, step, evaluate, device, None, describe,
               loss_label="cross-entropy summed over 30 steps (nats)")


def load_run(run_dir: Path) -> tuple[DeepJazzLSTM, dict]:
    rd = RunDir(run_dir)
    # The seed keeps the model as it stands after its last epoch, not a best one.
    state = rd.load("last") or rd.load("best")
    if state is None:
        raise ImprovdError(f"run {run_dir} has no checkpoint (last.pt or best.pt): train first with --preset deepjazz")
    a = state["describe"]["arch"]
    net = DeepJazzLSTM(a["n_values"], a["n_a"])
    net.load_state_dict(state["model"])
    return net.eval(), state


def export(run_dir: Path, out_prefix: Path) -> Path:
    from improvd.training.export import export_step, specs, write_card

    net, state = load_run(Path(run_dir))
    d = state["describe"]
    V, H = net.n_values, net.n_a
    ex = {"x": torch.zeros(1, V), "h": torch.zeros(1, 1, H), "c": torch.zeros(1, 1, H)}
    outs = ["logits", "h_out", "c_out"]
    out_prefix = Path(out_prefix)
    export_step(DeepJazzStep(net), ex, outs, out_prefix)
    with torch.no_grad():
        res = DeepJazzStep(net)(**ex)
    hist = state["history"]
    last = hist[-1] if hist else {}
    write_card(
        out_prefix, family="deepjazz",
        encoding={"name": g.ENCODING_NAME, "version": g.ENCODING_VERSION, "values": list(d["values"]),
                  "input": "one-hot of the previous value, zeros before the first"},
        grid={"ticks_per_beat": 12, "beats_per_bar": 4, "unit": "value", "duration_grid_ticks": 3},
        inputs=specs(ex), outputs=specs(dict(zip(outs, res))),
        state={"h": "h_out", "c": "c_out"},
        # Coursera infers greedily (temperature 0); deepjazz samples at 0.5, which is what a
        # live player wants (greedy from the same state repeats itself).
        sampling={"temperature": 0.5, "top_p": 1.0, "greedy_temperature": 0.0, "ty": TY, "tempo": TEMPO},
        training={"data": d.get("data"), "arch": d["arch"], "windows": d["windows"], "optimizer": d["optimizer"],
                  "epochs": len(hist), "measures": d.get("measures"), "corpus_values": d.get("corpus_values"),
                  "config": state.get("config", {}), "chords": d["chords"]},
        metrics={"first_train_loss": hist[0]["train_loss"] if hist else None,
                 **{k: v for k, v in last.items() if k in ("epoch", "train_loss", "windows_loss", "windows_top1")}},
    )
    return out_prefix.with_suffix(".json")


# -- the seed's offline generation ---------------------------------------------------------------
def _values_from_model(model, n: int, temperature: float | None, np_rng, primer: list[int]) -> list[str]:
    """Ty values from a zero input and zero state: greedy (argmax fed back) or sampled."""
    from improvd.sampling import sample

    model.reset()
    for idx in primer:
        model.feed(idx)
    out = []
    for _ in range(n):
        logits, h, c = model.run()
        idx = int(np.argmax(logits)) if not temperature else sample(logits, np_rng, temperature)
        model.commit(idx, h, c)
        out.append(model.values[idx].text)
    return out


def post_process(values: list[str], chords: list[g.ChordRec], rng) -> list[g.Placed]:
    """The seed's post-processing of one chord set, in its order: 'C,0.25' put in front, A and
    X retyped to C, durations rounded to 0.25 up or down at random, unparsed against the
    measure's chords, repeated pitches of pairs pruned, zero lengths and same-offset notes
    cleaned up."""
    seq = [g.parse_value("C,0.25")] + [g.retype(g.parse_value(v)) for v in values]
    seq = g.prune_grammar(seq, rng)
    harmonies = [(c.offset, c.harmony()) for c in chords]

    def harmony_at(offset):
        h = harmonies[0][1]
        for off, hh in harmonies:
            if off <= offset:
                h = hh
        return h

    placed = g.unparse_line(seq, harmony_at, rng)
    return g.clean_up_notes(g.prune_notes(placed))


def generate(model: str, out: Path, length: int | None = None, seed: int | None = None,
             temperature: float | None = None, primer: str | None = None) -> list[Path]:
    """The Coursera generate_music loop: for chord sets 1..length (5 by default) the model
    plays Ty=50 values from zeros, post-processed and laid at 4 beats per set (the seed's
    layout, so a set's tail overlaps the next), over the original chords, tempo 130.
    ``primer``: values fed before generating (space-separated, from the vocabulary)."""
    import mido

    from improvd.midi.files import write_midi
    from improvd.models import load_model

    m = load_model(model)
    if m.family != "deepjazz":
        raise ImprovdError(f"model {model} is of family {m.family}: deepjazz generation needs a deepjazz model")
    chords = [[g.ChordRec.from_json(r) for r in bar] for bar in m.card.training.get("chords", [])]
    if len(chords) < 2:
        raise ImprovdError(f"model {model} carries no chords of its training solo: re-export it with training.deepjazz.export")
    primer_idx = []
    for v in (primer or "").split():
        if v not in m.index:
            raise ImprovdError(f"primer value {v!r} is not in the model's vocabulary of {len(m.values)} values: use values such as {m.values[0].text}")
        primer_idx.append(m.index[v])
    n = length or SEGMENTS
    rng = random.Random(seed)
    np_rng = np.random.default_rng(seed)
    melody, accomp = [], []
    for i in range(1, n + 1):
        bar = chords[1 + (i - 1) % (len(chords) - 1)]
        values = _values_from_model(m, TY, temperature, np_rng, primer_idx)
        start = 4.0 * (i - 1)
        for x in post_process(values, bar, rng):
            if x.pitch is not None:
                melody.append((start + x.offset, x.pitch, x.duration))
        for c in bar:
            for p in c.pitches:
                accomp.append((start + c.offset, p, c.duration))
    beat = 60.0 / TEMPO

    def timed(notes, channel, velocity):
        ev = []
        for off, p, dur in notes:
            ev.append((off * beat, mido.Message("note_on", note=int(p), velocity=velocity, channel=channel)))
            ev.append(((off + dur) * beat, mido.Message("note_off", note=int(p), velocity=0, channel=channel)))
        return ev

    out = Path(out)
    mid = out if out.suffix.lower() in (".mid", ".midi") else out / "deepjazz.mid"
    write_midi(mid, [("melody", timed(melody, 0, 90)), ("chords", timed(accomp, 1, 70))], TEMPO)
    png = mid.with_suffix(".png")
    from improvd.plot import piano_roll

    piano_roll(mid, png, title=f"deepjazz: {n} chord sets, {'greedy' if not temperature else f'temperature {temperature}'}")
    return [mid, png]
