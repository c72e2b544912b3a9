"""RNN-RBM: clamped Gibbs sampling, CD training, AIS against an exact partition function,
frame accuracy, ONNX export parity, and the runtime harmonizer."""

import itertools
import math
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from improvd.encoding import pianoroll as pr  # noqa: E402
from improvd.models.base import PlayContext, Step  # noqa: E402
from improvd.models.rnnrbm import gibbs_clamped, voice_lead  # noqa: E402
from improvd.training.rnnrbm.data import collate  # noqa: E402
from improvd.training.rnnrbm.evaluate import evaluate  # noqa: E402
from improvd.training.rnnrbm.metrics import ais_log_z, bay_accuracy, frame_accuracy, log_likelihood, marginal_accuracy  # noqa: E402
from improvd.training.rnnrbm.model import RnnRbm, net_from_arrays  # noqa: E402
from improvd.training.rnnrbm.runs import export  # noqa: E402

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
JSB = DATA / "polyphonic" / "jsb_chorales.trainvalid.json"
BUNDLED = Path(__file__).resolve().parents[1] / "models" / "rnnrbm.json"
torch.set_num_threads(1)  # tiny matrices: a second thread only adds hand-offs


def _random_net(seed=0, nh=24, nr=12, scale=0.3, cell="rnn"):
    torch.manual_seed(seed)
    net = RnnRbm(88, nh, nr, learn_u0=True, cell=cell)
    with torch.no_grad():
        for p in net.parameters():
            p.copy_(torch.randn_like(p) * scale)
    return net.eval()


def test_clamped_units_stay_on_in_every_sample():
    rng = np.random.default_rng(1)
    W = rng.normal(0, 1.0, (88, 30))
    bv, bh = rng.normal(-2, 1, 88), rng.normal(0, 1, 30)
    clamp = np.zeros(88, bool)
    clamp[[60 - 21, 64 - 21, 67 - 21]] = True
    allow = np.zeros(88, bool)
    allow[36 - 21:96 - 21 + 1] = True
    for k in range(1, 26):
        v, marg = gibbs_clamped(W, bv, bh, k, rng, clamp, allow)
        assert v[clamp].all() and (marg[clamp] == 1).all()
        assert not v[~allow & ~clamp].any()
    # the torch sampler clamps too
    net = _random_net()
    c = torch.zeros(1, 88)
    c[0, 39] = 1
    for k in range(1, 10):
        s, _ = net.gibbs(torch.zeros(1, 88), net.bv[None], net.bh[None], k, clamp=c)
        assert s[0, 39] == 1


def _exact_log_z(W, bv, bh):
    vs = torch.tensor(list(itertools.product([0.0, 1.0], repeat=W.shape[0])))
    neg_f = vs @ bv + torch.nn.functional.softplus(vs @ W + bh).sum(-1)
    return float(torch.logsumexp(neg_f, 0))


def test_ais_matches_exact_partition_function():
    g = torch.Generator().manual_seed(0)
    torch.manual_seed(3)
    W = torch.randn(10, 8) * 1.0
    bv = torch.randn(2, 10) * 0.5 - 0.5
    bh = torch.randn(2, 8) * 0.5
    est = ais_log_z(W, bv, bh, chains=200, betas=1000, generator=g)
    for i in range(2):
        exact = _exact_log_z(W, bv[i], bh[i])
        assert abs(float(est[i]) - exact) < 0.1, (float(est[i]), exact)


def test_bay_accuracy_hand_made():
    truth = torch.tensor([[1, 1, 0, 0], [0, 1, 0, 0], [0, 0, 0, 0]], dtype=torch.float32)
    pred = torch.tensor([[1, 0, 1, 0], [0, 1, 0, 0], [0, 0, 0, 0]], dtype=torch.float32)
    assert bay_accuracy(pred, truth) == pytest.approx(2 / (2 + 1 + 1))
    assert bay_accuracy(truth, truth) == 1.0


def test_frame_accuracy_of_a_model_that_always_plays_c_major():
    net = RnnRbm(88, 4, 4)
    with torch.no_grad():
        net.W.zero_()
        net.Wuv.zero_()
        net.bv.fill_(-30.0)
        net.bv[[60 - 21, 64 - 21, 67 - 21]] = 30.0
    roll = pr.to_roll([[60, 64, 67], [60, 64, 67], [62, 65, 69], [60, 64, 67]])
    r = frame_accuracy(net, [roll], "cpu", samples=3, k=5)
    # TP 9, FP 3, FN 3 over the four frames
    assert r["acc"] == pytest.approx(9 / 15)


def test_tiny_training_lowers_the_cd_objective():
    """Some CPU steps of CD-1 on three chorales: the reconstruction cross-entropy (the
    tutorial's monitor) falls and the AIS log-likelihood of the frames rises."""
    if JSB.exists():
        rolls = [r for _, r in pr.load(str(JSB), "train")[:3]]
    else:
        rng = np.random.default_rng(0)
        rolls = [pr.to_roll([[60, 64, 67] if t % 2 else [62, 65, 69] for t in range(40)]) for _ in range(3)]
    torch.manual_seed(0)
    net = RnnRbm(88, 16, 8, learn_u0=True)
    opt = torch.optim.Adam(net.parameters(), lr=1e-2)
    g = torch.Generator().manual_seed(0)
    v, m = collate(rolls, 0, __import__("random").Random(0))
    before = log_likelihood(net, rolls, "cpu", 8, 100)["ll_per_step"]
    mons = []
    for _ in range(40):
        cost, mon = net.cd_cost(v, m, 1, g)
        opt.zero_grad()
        cost.backward()
        opt.step()
        mons.append(float(mon))
    after = log_likelihood(net, rolls, "cpu", 8, 100)["ll_per_step"]
    assert np.mean(mons[-5:]) < np.mean(mons[:5]) - 5
    assert after > before + 5


def _export_tiny(tmp_path, net):
    from improvd.training.loop import RunDir

    run = RunDir(tmp_path / "run")
    run.save_checkpoint({"model": net.state_dict(), "history": [], "config": {"preset": "tiny"},
                         "describe": {"frame_ticks": 12, "arch": {"hidden": 24, "recurrent": 12}}}, best=True)
    return export(run.path, tmp_path / "out" / "tiny")


@pytest.mark.parametrize("cell", ["rnn", "gru"])
def test_export_parity_over_200_steps(tmp_path, cell):
    import onnxruntime as ort

    net = _random_net(seed=5, cell=cell)
    card = _export_tiny(tmp_path, net)
    sess = ort.InferenceSession(str(card.with_suffix(".onnx")), providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(0)
    v = (rng.random((200, 88)) < 0.05).astype(np.float32)
    with torch.no_grad():
        U, BV, BH = net.recurrence(torch.from_numpy(v)[None])
    z = np.load(card.with_suffix(".npz"))
    u = z["u0"][None]
    assert np.abs(z["bv0"] - BV[0, 0].numpy()).max() <= 1e-5
    worst = 0.0
    for t in range(200):
        u, bv, bh = sess.run(None, {"v_t": v[t:t + 1], "u_prev": u})
        worst = max(worst, np.abs(u[0] - U[0, t].numpy()).max())
        if t + 1 < 200:
            worst = max(worst, np.abs(bv[0] - BV[0, t + 1].numpy()).max(), np.abs(bh[0] - BH[0, t + 1].numpy()).max())
    assert worst <= 1e-4


def test_voice_leading_prefers_near_pitches_and_skips_clamped():
    marg = np.zeros(88)
    for p, q in ((48, 0.9), (72, 0.9), (55, 0.5), (64, 0.99)):
        marg[p - 21] = q
    clamp = np.zeros(88, bool)
    clamp[64 - 21] = True
    allow = np.ones(88, bool)
    got = voice_lead(marg, np.zeros(88), clamp, allow, previous=[71], max_voices=1)
    assert got == [72]  # 72 is a semitone from the previous 71; 48 is two octaves away
    assert 64 not in voice_lead(marg, np.zeros(88), clamp, allow, [], 4)


@pytest.mark.parametrize("which", ["bundled", "tiny", "tiny-gru"])
def test_runtime_harmonizes_c_e_g(tmp_path, which):
    from improvd.models import load_model

    if which == "bundled":
        if not BUNDLED.exists():
            pytest.skip("no bundled rnnrbm model")
        path = BUNDLED
    else:
        path = _export_tiny(tmp_path, _random_net(seed=2, scale=0.5, cell="gru" if which.endswith("gru") else "rnn"))
    m = load_model(str(path))
    assert m.family == "rnnrbm" and "harmonize" in m.modes
    rng = np.random.default_rng(0)
    held = frozenset({60, 64, 67})
    seen = set()
    for t in range(0, 12 * 20):
        m.listen(Step(t, onsets=tuple((p, 90) for p in held) if t == 0 else (), held=held))
        nxt = t + 1
        if nxt % 12 == 0 or t == 0:
            notes = m.play(PlayContext(tick=nxt, chord=None, rng=rng, held=held, max_voices=3,
                                       pitch_range=(40, 84), onset=True))
            pitches = [n.pitch for n in notes]
            assert len(pitches) <= 3
            assert all(40 <= p <= 84 for p in pitches)
            assert not set(pitches) & held
            assert all(n.duration == 12 for n in notes)
            seen |= set(pitches)
    if which == "bundled":
        assert seen, "the trained model added nothing to a C major triad in 20 frames"
    snap = m.snapshot()
    a = m.play(PlayContext(tick=12 * 30, chord=None, rng=np.random.default_rng(7), held=held, onset=True))
    m.restore(snap)
    b = m.play(PlayContext(tick=12 * 30, chord=None, rng=np.random.default_rng(7), held=held, onset=True))
    assert a == b


def test_duet_plays_only_on_frame_boundaries(tmp_path):
    from improvd.models import load_model

    m = load_model(str(_export_tiny(tmp_path, _random_net(seed=4, scale=0.5))))
    rng = np.random.default_rng(0)
    for t in range(1, 12 * 4):
        notes = m.play(PlayContext(tick=t, chord=None, rng=rng, pitch_range=(36, 96)))
        if t % 12:
            assert notes == []


def test_wrong_npz_is_refused(tmp_path):
    from improvd.models import load_model
    from improvd.models.card import ModelError

    card = _export_tiny(tmp_path, _random_net())
    np.savez(card.with_suffix(".npz"), W=np.zeros((88, 2)))
    with pytest.raises(ModelError, match="does not match its card"):
        load_model(str(card))


@pytest.mark.parametrize("cell", ["rnn", "gru"])
def test_npz_round_trip_rebuilds_the_same_net(tmp_path, cell):
    """The exported parameter file alone rebuilds the net (evaluate/generate read it), for both
    recurrences: same biases and the same log-likelihood path."""
    net = _random_net(seed=6, cell=cell)
    card = _export_tiny(tmp_path, net)
    with np.load(card.with_suffix(".npz")) as z:
        back = net_from_arrays(dict(z))
    assert back.cell == cell
    v = torch.from_numpy((np.random.default_rng(1).random((1, 30, 88)) < 0.05).astype(np.float32))
    with torch.no_grad():
        a, b = net.recurrence(v), back.recurrence(v)
    for x, y in zip(a, b):
        assert torch.allclose(x, y, atol=1e-6)


def test_dropout_only_while_training():
    net = RnnRbm(88, 16, 8, learn_u0=True, cell="gru", dropout=0.5)
    v = torch.from_numpy((np.random.default_rng(2).random((2, 20, 88)) < 0.05).astype(np.float32))
    with torch.no_grad():
        torch.nn.init.normal_(net.Wuv, std=1.0)
        net.eval()
        e1, e2 = net.recurrence(v)[1], net.recurrence(v)[1]
        net.train()
        t1 = net.recurrence(v)[1]
    assert torch.equal(e1, e2) and not torch.equal(e1, t1)


def _c_major_net():
    """An RBM whose one hidden unit, nearly always on, switches on C-E-G (60, 64, 67) and off
    everything else: its marginals are near 1 on C-E-G and near 0 elsewhere."""
    net = RnnRbm(88, 1, 4)
    with torch.no_grad():
        net.bv.fill_(-8.0)
        net.bh.fill_(8.0)
        net.W.zero_()
        for p in (60, 64, 67):
            net.W[p - 21, 0] = 16.0
    return net.eval()


def test_marginal_accuracy_picks_the_model_s_best_guess():
    roll = pr.to_roll([[60, 64, 67]] * 10)
    r = marginal_accuracy(_c_major_net(), [roll], "cpu", threshold=0.5, chains=4, k=10)
    assert r["acc_marginal"] == pytest.approx(1.0)
    wrong = pr.to_roll([[62, 65, 69]] * 10)
    assert marginal_accuracy(_c_major_net(), [wrong], "cpu", 0.5, chains=4, k=10)["acc_marginal"] == 0.0
    # the threshold tuned on training pieces: any t in the grid keeps C-E-G and nothing else
    tuned = marginal_accuracy(_c_major_net(), [roll], "cpu", None, [roll], chains=4, k=10)
    assert tuned["acc_marginal"] == pytest.approx(1.0)


@pytest.mark.parametrize("layout", ["split", "plain"])
def test_evaluate_a_midi_folder(tmp_path, layout):
    """`improvd evaluate rnnrbm --data FOLDER`: a folder with train/ and valid/ is scored on
    valid/ and sets the ACC threshold on train/; a plain folder is scored whole (never split
    again) with the model card's threshold; the title says which."""
    card = _export_tiny(tmp_path, _random_net(seed=8))
    pieces = [[[60, 64, 67], [62, 65, 69], [64, 67, 71], [60, 64, 67]] * 3, [[55, 59, 62], [57, 60, 64]] * 4]
    root = tmp_path / "midi"
    for sub in (("train", "valid") if layout == "split" else ("",)):
        (root / sub).mkdir(parents=True, exist_ok=True)
        for k, steps in enumerate(pieces):
            pr.write_midi(pr.to_roll(steps), root / sub / f"p{k}.mid", 12)
    r = evaluate(str(card), [str(root)], None, n=2, chains=4, betas=20, device="cpu", show=False, marginal_chains=4)
    assert r["frames"] == sum(len(p) for p in pieces)
    assert r["scored"] == ("valid split of midi" if layout == "split" else "whole folder midi")
    assert math.isfinite(r["ll_per_step"]) and r["ll_per_step"] < 0
    assert 0.0 <= r["acc_marginal"] <= 1.0
    assert r["acc_marginal_threshold_from"] == ("training pieces" if layout == "split" else "default")
