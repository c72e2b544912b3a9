"""The deepjazz family end to end: a tiny training run, export, the live model, generation."""

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "jazz" / "original_metheny.mid"
needs_data = pytest.mark.skipif(not DATA.exists(), reason="../shared/data/jazz/original_metheny.mid is not here")

torch = pytest.importorskip("torch")
pytest.importorskip("music21")

from improvd.chords import Chord, Progression  # noqa: E402
from improvd.encoding import grammar as g  # noqa: E402
from improvd.models import load_model  # noqa: E402
from improvd.models.base import PlayContext, Step  # noqa: E402
from improvd.models.card import ModelError  # noqa: E402


def test_windows_shift_targets_by_one():
    from improvd.training.deepjazz import windows

    corpus = [f"C,0.250,<m{1 + i % 2},P-4>" if i % 3 else "R,0.250" for i in range(50)]
    values = g.vocabulary([corpus])
    X, Y = windows(corpus, values, m=8, tx=10, seed=0)
    assert X.shape == (8, 10, len(values)) and Y.shape == (8, 10)
    assert not X[:, 0].any()  # the first input is zeros
    assert (Y[:, -1] == -100).all()  # the last step has no target
    assert (X[:, 1:].argmax(-1) == Y[:, :-1]).all()  # step t's target is step t+1's input


@pytest.fixture(scope="module")
def bundle(tmp_path_factory):
    if not DATA.exists():
        pytest.skip("../shared/data/jazz/original_metheny.mid is not here")
    from improvd.training.deepjazz import export, train
    from improvd.training.config import TrainConfig

    tmp = tmp_path_factory.mktemp("deepjazz")
    summary = train(TrainConfig(family="jazz", preset="deepjazz", data=[str(DATA)], out=str(tmp / "run"),
                                epochs=2, device="cpu"))
    card = export(tmp / "run", tmp / "dj")
    return tmp, summary, card


def test_tiny_training_run_and_card(bundle):
    tmp, summary, card = bundle
    assert summary["epochs_run"] == 2
    first = summary["history"][0]["train_loss"]
    # cross-entropy summed over 30 steps (29 with a target) starts near 29 ln(V)
    n_values = summary["arch"]["n_values"]
    assert 78 <= n_values <= 90
    assert 0.8 * 29 * np.log(n_values) < first < 1.2 * 29 * np.log(n_values)
    raw = json.loads(card.read_text())
    assert raw["family"] == "deepjazz"
    assert raw["encoding"]["name"] == "deepjazz-values" and len(raw["encoding"]["values"]) == n_values
    assert len(raw["training"]["chords"]) == 19


def test_onnx_step_matches_torch(bundle):
    tmp, _, card = bundle
    from improvd.training.deepjazz import DeepJazzStep, load_run

    net, _ = load_run(tmp / "run")
    m = load_model(str(card))
    rng = np.random.default_rng(0)
    seq = rng.integers(0, len(m.values), 6)
    h = torch.zeros(1, 1, net.n_a)
    c = torch.zeros(1, 1, net.n_a)
    x = torch.zeros(1, net.n_values)
    for idx in seq:
        with torch.no_grad():
            ref, h, c = DeepJazzStep(net)(x, h, c)
        got, gh, gc = m.run()
        np.testing.assert_allclose(got, ref[0].numpy(), atol=1e-4)
        m.commit(int(idx), gh, gc)
        x = torch.zeros(1, net.n_values)
        x[0, idx] = 1.0


def test_runtime_model_plays_two_bars_in_range(bundle):
    _, _, card = bundle
    m = load_model(str(card))
    assert m.family == "deepjazz"
    prog = Progression.parse("Dm7 G7 | Cmaj7 %", 48)
    rng = np.random.default_rng(1)
    m.begin_answer(0)
    notes = []
    for tick in range(96):
        ctx = PlayContext(tick=tick, chord=prog.at(tick), rng=rng, temperature=1.0, starting=tick == 0,
                          pitch_range=(48, 84), chord_at=prog.at)
        for n in m.play(ctx):
            notes.append((tick, n))
    assert notes and notes[0][0] == 0  # an answer opens with a note
    for tick, n in notes:
        assert 48 <= n.pitch <= 84
        assert n.duration > 0 and n.duration % 3 == 0  # a multiple of a sixteenth
    onsets = [t for t, _ in notes]
    assert onsets == sorted(set(onsets))  # monophonic


def test_greedy_opening_is_a_chord_tone_of_the_chord(bundle):
    _, _, card = bundle
    m = load_model(str(card))
    ctx = PlayContext(tick=0, chord=Chord(2, "min7"), rng=np.random.default_rng(0), temperature=0.0, starting=True)
    m.begin_answer(0)
    out = m.play(ctx)
    # starting masks rests and interval values; A and X play as C: the note is a chord tone
    # unless the model opened with an S value
    value = g.retype(m.values[m.prev])
    assert out and value.kind in ("C", "S")
    h = g.Harmony.from_chord(Chord(2, "min7"))
    assert (out[0].pitch % 12 in h.tones) if value.kind == "C" else (out[0].pitch % 12 in h.scale)


def test_listen_feeds_the_performers_values(bundle):
    _, _, card = bundle
    m = load_model(str(card))
    h0 = m.h.copy()
    dm7 = Chord(2, "min7")
    # a line of sixteenth notes on chord tones and scale tones, then a pause
    line = [62, 65, 69, 72, 71, 69, 65, 62]
    for i, p in enumerate(line):
        t = 3 * i
        m.listen(Step(t, onsets=((p, 90),), releases=(line[i - 1],) if i else (), chord=dm7))
    m.listen(Step(24, releases=(line[-1],), chord=dm7))
    m.listen(Step(30, onsets=((62, 90),), chord=dm7))
    assert m.fed >= 5
    assert not np.allclose(m.h, h0)
    snap = m.snapshot()
    m.reset()
    m.restore(snap)
    assert np.allclose(m.h, snap[0])


def test_generate_writes_midi_with_melody_and_chords(bundle, tmp_path):
    import mido

    from improvd.training.deepjazz import generate

    _, _, card = bundle
    files = generate(str(card), tmp_path / "out.mid", 2, 0, None, None)
    assert files[0].exists() and files[1].exists() and files[1].suffix == ".png"
    mid = mido.MidiFile(str(files[0]))
    ons = {t.name: sum(1 for x in t if x.type == "note_on" and x.velocity > 0) for t in mid.tracks}
    # each chord set opens with the seed's 'C,0.25'; a 2-epoch model mostly predicts rests after it
    assert ons["melody"] >= 2 and ons["chords"] > 3
    assert [x.tempo for t in mid.tracks for x in t if x.type == "set_tempo"] == [mido.bpm2tempo(130)]
    sampled = generate(str(card), tmp_path / "t.mid", 1, 3, 0.5, "C,0.250")
    assert sampled[0].exists()


def test_wrong_encoding_is_refused(bundle, tmp_path):
    _, _, card = bundle
    raw = json.loads(card.read_text())
    raw["encoding"]["name"] = "jazz-events"
    shutil.copy(card.with_suffix(".onnx"), tmp_path / "bad.onnx")
    raw["onnx_file"] = "bad.onnx"
    (tmp_path / "bad.json").write_text(json.dumps(raw))
    with pytest.raises(ModelError):
        load_model(str(tmp_path / "bad.json"))
    raw["encoding"]["name"] = "deepjazz-values"
    raw["encoding"]["values"] = raw["encoding"]["values"][:-1]
    (tmp_path / "bad.json").write_text(json.dumps(raw))
    with pytest.raises(ModelError):
        load_model(str(tmp_path / "bad.json"))


def test_bundled_model_loads_and_plays():
    path = Path(__file__).resolve().parents[1] / "models" / "deepjazz.json"
    if not path.exists():
        pytest.skip("models/deepjazz.json is not bundled")
    m = load_model(str(path))
    assert m.family == "deepjazz" and m.card.training["epochs"] == 100
    out = m.play(PlayContext(tick=0, chord=Chord(7, "dom7"), rng=np.random.default_rng(0), starting=True, temperature=0.5))
    assert out and 36 <= out[0].pitch <= 96
