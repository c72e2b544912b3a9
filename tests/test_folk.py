"""The folk family end to end: a tiny training run, export, ONNX parity, the runtime model."""

import json
from pathlib import Path

import numpy as np
import pytest

from improvd.encoding import abc as enc
from improvd.models import load_model
from improvd.models.base import PlayContext, Step
from improvd.models.card import ModelError

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
IRISH = DATA / "abc" / "irish.trainvalid.abc"
BUNDLED = Path(__file__).resolve().parents[1] / "models" / "folk.json"


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    pytest.importorskip("torch")
    if not IRISH.exists():
        pytest.skip("shared data absent")
    from improvd.training.folk import export, train
    from improvd.training.config import TrainConfig

    d = tmp_path_factory.mktemp("folk")
    summary = train(TrainConfig(family="folk", preset="tiny", data=[str(IRISH)], out=str(d / "run"), device="cpu", max_items=60))
    card = export(d / "run", d / "tiny")
    return d, summary, card


def test_tiny_training_learns_and_exports_a_card(tiny):
    d, summary, card = tiny
    hist = summary["history"]
    assert hist[-1]["valid_bits_per_char"] < np.log2(len(enc.VOCAB))  # better than uniform
    c = json.loads(Path(card).read_text())
    assert c["family"] == "folk" and c["encoding"] == {**c["encoding"], "name": "abc-chars", "version": 1, "vocab": enc.VOCAB}
    assert [i["name"] for i in c["inputs"]] == ["char", "h", "c"]
    assert [o["name"] for o in c["outputs"]] == ["logits", "h_out", "c_out"]


def test_onnx_step_matches_torch_over_200_chars(tiny):
    import onnxruntime as ort
    import torch

    from improvd.training.folk import load_run

    d, _s, _c = tiny
    net, _state = load_run(d / "run")
    text = enc.encode(enc.load_irish(IRISH)[0][:200])
    assert len(text) == 200
    with torch.no_grad():
        ref, _ = net(torch.from_numpy(text)[None])
    ref = ref[0].numpy()
    sess = ort.InferenceSession(str(d / "tiny.onnx"), providers=["CPUExecutionProvider"])
    h = np.zeros((net.layers, 1, net.hidden), np.float32)
    c = np.zeros_like(h)
    worst = 0.0
    for i, ch in enumerate(text):
        logits, h, c = sess.run(None, {"char": np.array([ch], np.int64), "h": h, "c": c})
        worst = max(worst, float(np.abs(logits[0] - ref[i]).max()))
    assert worst <= 1e-4


def test_onnx_bits_per_char_agrees_with_torch(tiny):
    import torch

    from improvd.training.folk import load_run, onnx_bits_per_char, stream_bits_per_char

    d, _s, _c = tiny
    net, _ = load_run(d / "run")
    text = enc.encode(enc.join_tunes(enc.load_irish(IRISH)[:2]))[:400]
    m = load_model(str(d / "tiny.json"))
    assert abs(onnx_bits_per_char(m.lm, text) - stream_bits_per_char(net, text, torch.device("cpu"))) < 1e-3


def test_a_card_with_another_vocabulary_is_refused(tiny, tmp_path):
    d, _s, _c = tiny
    card = json.loads((d / "tiny.json").read_text())
    card["encoding"]["vocab"] = enc.VOCAB[::-1]
    (tmp_path / "tiny.onnx").write_bytes((d / "tiny.onnx").read_bytes())
    (tmp_path / "tiny.json").write_text(json.dumps(card))
    with pytest.raises(ModelError, match="vocabulary"):
        load_model(str(tmp_path / "tiny.json"))


def _perform(model, pitches, eighth=6):
    tick = 0
    for i, p in enumerate(pitches):
        on = i * eighth
        for t in range(tick, on + eighth):
            model.listen(Step(t, onsets=((p, 80),) if t == on else (), releases=(p,) if t == on + eighth - 1 else ()))
        tick = on + eighth
    return tick


@pytest.mark.skipif(not BUNDLED.exists(), reason="bundled model absent")
def test_bundled_model_answers_a_phrase_on_the_grid():
    m = load_model(str(BUNDLED))
    assert m.family == "folk"
    end = _perform(m, [62, 64, 66, 67, 69, 71, 73, 74, 74, 73, 71, 69, 67, 66, 64, 62])
    # the performer's line, written as ABC; the last note is complete once the answer starts
    assert m.history_text.endswith("K:D Major\nDEFGABcd|dcBAGFE")
    start = 96
    assert end <= start
    m.begin_answer(start)
    assert m.history_text.endswith("DEFGABcd|dcBAGFED|")
    rng = np.random.default_rng(0)
    played = []
    for t in range(start, start + 4 * 48):
        for n in m.play(PlayContext(tick=t, chord=None, rng=rng, starting=t == start)):
            played.append((t, n))
    assert played and played[0][0] == start  # an answer is heard when it is due
    assert len(played) >= 8
    for t, n in played:
        assert 36 <= n.pitch <= 96 and n.duration >= 1 and isinstance(n.duration, int)
    onsets = [t for t, _n in played]
    assert onsets == sorted(onsets)
    m.end_answer(start + 4 * 48)
    assert not m.answering
    # the performer's next phrase is heard again after the answer
    m.listen(Step(start + 4 * 48, onsets=((69, 80),)))
    m.listen(Step(start + 4 * 48 + 6, onsets=((71, 80),)))
    assert m.queue == "" and m.history_text.endswith("A")


@pytest.mark.skipif(not BUNDLED.exists(), reason="bundled model absent")
def test_bundled_model_plays_a_duet_from_silence():
    m = load_model(str(BUNDLED))
    m.begin_answer(0)
    rng = np.random.default_rng(3)
    n = sum(len(m.play(PlayContext(tick=t, chord=None, rng=rng, starting=t == 0))) for t in range(0, 8 * 48))
    assert n >= 16


@pytest.mark.skipif(not BUNDLED.exists(), reason="bundled model absent")
def test_generated_abc_from_the_bundled_model_parses_in_music21():
    pytest.importorskip("music21")
    from improvd.training.folk import check_tune

    m = load_model(str(BUNDLED))
    rng = np.random.default_rng(7)
    for _ in range(3):
        tune = m.lm.sample_tune(rng, temperature=1.0, constrained=True)
        r = check_tune(tune)
        assert r["ok"], (r, tune)
    assert not check_tune("X:1\nT:t\nM:4/4\nL:1/8\nK:G\nAB|")["ok"]  # too few notes
    assert not check_tune("X:1\nT:t\nM:3/4\nL:1/8\nK:G\nABcdefga|ABcdefga|ABcdefga|ABcdefga|\n")["ok"]  # bars of 4/4


@pytest.mark.skipif(not BUNDLED.exists(), reason="bundled model absent")
def test_an_answer_cut_short_leaves_only_what_sounded_in_the_lm():
    """Bars sampled ahead that never began to sound are rolled back out of the LSTM state when
    the answer ends, so the performer's next phrase follows the answer as it was heard."""
    m = load_model(str(BUNDLED))
    _perform(m, [62, 64, 66, 67, 69, 71, 73, 74])
    start = 96
    m.begin_answer(start)
    rng = np.random.default_rng(1)
    end = start + 48 + 6  # the first bar sounded, the second had begun
    for t in range(start, end):
        m.play(PlayContext(tick=t, chord=None, rng=rng, starting=t == start))
    bars, before = m.bars, m.lm.snapshot()
    unheard = [(t0, snap) for t0, snap in bars.starts if m.origin + t0 >= end]
    assert unheard, "the look-ahead should have sampled a bar that had not begun"
    m.end_answer(end)
    assert np.array_equal(m.lm.h, unheard[0][1][0]) and np.array_equal(m.lm.c, unheard[0][1][1])
    assert not np.array_equal(m.lm.h, before[0])


@pytest.mark.skipif(not BUNDLED.exists(), reason="bundled model absent")
@pytest.mark.parametrize("name", ["folk.mid", "tunes"])
def test_generate_writes_the_file_named_or_into_the_folder_named(tmp_path, name):
    """`generate folk -o folk.mid` made a folder called folk.mid; a file name is a file."""
    pytest.importorskip("music21")
    from improvd.training.folk import generate

    written = generate(str(BUNDLED), tmp_path / name, 400, 1, None, None)
    stem = tmp_path / ("tunes/tune" if name == "tunes" else "folk")
    assert {p.suffix for p in written} == {".abc", ".mid", ".png"}
    assert all(p.is_file() and p.with_suffix("") == stem for p in written), written
