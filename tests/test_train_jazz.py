"""Training smoke test, export parity and refusal of mismatched artifacts (jazz family)."""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("onnx")

from improvd.encoding import jazz as enc  # noqa: E402
from improvd.models import load_model  # noqa: E402
from improvd.models.card import ModelError  # noqa: E402

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "jazz" / "wjazzd_chords.trainvalid.jsonl"
REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    """One epoch of the tiny preset on a handful of solos, on the CPU, through the real CLI."""
    if not DATA.exists():
        pytest.skip("../shared/data is not beside the repo")
    out = tmp_path_factory.mktemp("run")
    r = subprocess.run([sys.executable, "-m", "improvd", "train", "jazz", "--preset", "tiny", "--data", str(DATA),
                        "--max-items", "8", "--device", "cpu", "--out", str(out / "run"), "--seed", "3"],
                       capture_output=True, text=True, timeout=120, cwd=REPO)
    assert r.returncode == 0, r.stderr[-2000:]
    (out / "train.stdout").write_text(r.stdout)
    (out / "train.stderr").write_text(r.stderr)
    r = subprocess.run([sys.executable, "-m", "improvd", "export", str(out / "run"), "-o", str(out / "m" / "tiny")],
                       capture_output=True, text=True, timeout=120, cwd=REPO)
    assert r.returncode == 0, r.stderr[-2000:]
    return out


def test_training_writes_checkpoints_metrics_and_curve(tiny_run):
    run = tiny_run / "run"
    for f in ("last.pt", "best.pt", "metrics.json", "loss.png"):
        assert (run / f).exists(), f
    m = json.loads((run / "metrics.json").read_text())
    assert m["epochs_run"] == 1 and m["device"] == "cpu"
    # one epoch on 8 solos already beats a uniform guess over pitch x duration
    assert np.isfinite(m["best_valid_loss"]) and m["best_valid_loss"] < np.log(enc.N_PITCH) + np.log(enc.N_DUR)
    assert m["history"][0]["valid_top5"] > 0


def test_training_shows_its_stages_on_stderr_and_keeps_stdout_to_the_summary(tiny_run):
    """Not a terminal (a pipe here, a CI log): each stage says when it starts and ends on stderr,
    reading the data included (music21 corpora took minutes with nothing shown); stdout holds
    only the run's summary line."""
    err = (tiny_run / "train.stderr").read_text().splitlines()
    assert "improvd: reading wjazzd_chords.trainvalid.jsonl: 0/259 solos" in err
    assert any(ln.startswith("improvd: reading wjazzd_chords.trainvalid.jsonl: done, 259/259 solos, ") for ln in err)
    assert err.index("improvd: training jazz/tiny: 0/1 epochs") > err.index("improvd: reading wjazzd_chords.trainvalid.jsonl: 0/259 solos")
    assert any(ln.startswith("improvd: training jazz/tiny: done, 1/1 epochs, ") for ln in err)
    assert any(ln.startswith("epoch 1/1 train ") for ln in err)  # the epoch's figures go to the log too
    out = (tiny_run / "train.stdout").read_text().splitlines()
    assert len(out) == 1 and out[0].startswith("run ") and "best valid loss" in out[0], out


def test_resume_continues_from_last_epoch(tiny_run, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(tiny_run / "run", run)
    r = subprocess.run([sys.executable, "-m", "improvd", "train", "jazz", "--preset", "tiny", "--data", str(DATA),
                        "--max-items", "8", "--device", "cpu", "--out", str(run), "--epochs", "2", "--resume"],
                       capture_output=True, text=True, timeout=120, cwd=REPO)
    assert r.returncode == 0, r.stderr[-2000:]
    hist = json.loads((run / "metrics.json").read_text())["history"]
    assert [h["epoch"] for h in hist] == [1, 2]


def test_same_seed_same_weights(tmp_path):
    if not DATA.exists():
        pytest.skip("no shared data")
    from improvd.training import jazz
    from improvd.training.config import TrainConfig

    sums = []
    for i in range(2):
        jazz.train(TrainConfig(family="jazz", preset="tiny", data=[str(DATA)], out=str(tmp_path / f"r{i}"),
                               max_items=4, device="cpu", seed=11))
        sd = torch.load(tmp_path / f"r{i}" / "last.pt", weights_only=True)["model"]  # a checkpoint is data only
        sums.append(sum(float(v.double().sum()) for v in sd.values()))
    assert sums[0] == sums[1]


def test_onnx_step_matches_torch_over_200_steps(tiny_run):
    """The exported step graph, run step by step with its state fed back, against the torch
    module run over the whole sequence: max abs logit difference <= 1e-4."""
    from improvd.training.jazz import load_run
    from improvd.training.corpora import load_wjazzd

    net, _ = load_run(tiny_run / "run")
    events = [e for _, ev in load_wjazzd(DATA)[:3] for e in ev][:200]
    x, _tp, _td = enc.encode(events)
    with torch.no_grad():
        pl, dl, _ = net(*(torch.from_numpy(a)[None] for a in (x.prev_pitch, x.prev_dur, x.pos, x.cond)))
    m = load_model(str(tiny_run / "m" / "tiny.json"))
    h, c = m.h, m.c
    worst = 0.0
    for i in range(len(events)):
        out = m.sess.run(None, {"prev_pitch": x.prev_pitch[i:i + 1], "prev_dur": x.prev_dur[i:i + 1],
                                "pos": x.pos[i:i + 1], "cond": x.cond[i:i + 1], "h": h, "c": c})
        h, c = out[2], out[3]
        worst = max(worst, float(np.abs(out[0][0] - pl[0, i].numpy()).max()), float(np.abs(out[1][0] - dl[0, i].numpy()).max()))
    assert len(events) == 200
    assert worst <= 1e-4, worst


def _copy_model(src: Path, dst: Path, name: str = "m") -> Path:
    dst.mkdir(parents=True, exist_ok=True)
    shutil.copy(src.with_suffix(".onnx"), dst / f"{name}.onnx")
    card = json.loads(src.read_text())
    card["onnx_file"] = f"{name}.onnx"
    (dst / f"{name}.json").write_text(json.dumps(card))
    return dst / f"{name}.json"


BUNDLED = REPO / "models" / "jazz.json"


def test_truncated_graph_is_refused(tmp_path):
    p = _copy_model(BUNDLED, tmp_path)
    data = (tmp_path / "m.onnx").read_bytes()
    (tmp_path / "m.onnx").write_bytes(data[: len(data) // 2])
    card = json.loads(p.read_text())
    card["sha256"] = hashlib.sha256(data[: len(data) // 2]).hexdigest()  # the hash agrees: the graph itself is refused
    p.write_text(json.dumps(card))
    with pytest.raises(ModelError, match="cannot be loaded"):
        load_model(str(p))
    card["sha256"] = ""  # an empty hash no longer switches the integrity check off
    p.write_text(json.dumps(card))
    with pytest.raises(ModelError, match="sha256"):
        load_model(str(p))


def test_graph_from_another_run_is_refused(tmp_path):
    p = _copy_model(BUNDLED, tmp_path)
    with open(tmp_path / "m.onnx", "ab") as f:
        f.write(b"\0")
    with pytest.raises(ModelError, match="does not match its card"):
        load_model(str(p))


def test_other_encoding_is_refused(tmp_path):
    p = _copy_model(BUNDLED, tmp_path)
    card = json.loads(p.read_text())
    card["encoding"]["version"] = 99
    p.write_text(json.dumps(card))
    with pytest.raises(ModelError, match="encoding"):
        load_model(str(p))


def test_card_naming_wrong_inputs_is_refused(tmp_path):
    p = _copy_model(BUNDLED, tmp_path)
    card = json.loads(p.read_text())
    card["inputs"][0]["name"] = "tokens"
    p.write_text(json.dumps(card))
    with pytest.raises(ModelError, match="no input 'tokens'"):
        load_model(str(p))


def test_not_json_card_is_refused(tmp_path):
    p = _copy_model(BUNDLED, tmp_path)
    p.write_text("{not json")
    with pytest.raises(ModelError, match="not valid JSON"):
        load_model(str(p))


def test_cli_refuses_a_corrupt_model_with_one_line(tmp_path):
    p = _copy_model(BUNDLED, tmp_path)
    (tmp_path / "m.onnx").write_bytes(b"garbage")
    r = subprocess.run([sys.executable, "-m", "improvd", "replay", str(REPO / "examples" / "blues_calls.mid"),
                        "-o", str(tmp_path / "out.mid"), "--model", str(p)], capture_output=True, text=True, timeout=60)
    assert r.returncode == 2
    assert len(r.stderr.strip().splitlines()) == 1 and "re-export" in r.stderr
    assert not (tmp_path / "out.mid").exists()


def test_bundled_model_is_small_and_trained():
    card = json.loads(BUNDLED.read_text())
    assert (REPO / "models" / "jazz.onnx").stat().st_size < 20 * 2**20
    assert card["metrics"]["valid_loss"] < 5.0  # an untrained model sits near ln(82)+ln(54) = 8.4
    assert card["training"]["train_pieces"] > 200


def test_user_folder_with_chords_files(tmp_path):
    """A user's folder of MIDI files, each with song.chords beside it, becomes training solos."""
    import mido

    from improvd.training.corpora import load_event_pieces

    for k, (name, chart) in enumerate([("a", "Dm7 G7 | Cmaj7 %"), ("b", "F7 | Bb7 | F7 | C7")]):
        mid = mido.MidiFile(ticks_per_beat=96)
        tr = mido.MidiTrack()
        for i in range(16):
            tr.append(mido.Message("note_on", note=60 + (i * 5 + k) % 12, velocity=80, time=0 if i == 0 else 0))
            tr.append(mido.Message("note_off", note=60 + (i * 5 + k) % 12, velocity=0, time=48))
        mid.tracks.append(tr)
        mid.save(tmp_path / f"{name}.mid")
        (tmp_path / f"{name}.chords").write_text(chart)
    pieces = load_event_pieces([str(tmp_path)], tmp_path / "none")
    assert [n for n, _ in pieces] == ["a", "b"]
    ev = pieces[0][1]
    assert len(ev) == 16 and all(e.duration == 6 for e in ev)  # 8ths on the 12-per-beat grid
    assert ev[0].chord.name == "Dm7" and ev[4].chord.name == "G7" and ev[8].chord.name == "Cmaj7"
    assert pieces[1][1][0].chord.name == "F7"


def test_metheny_guitar_solo_with_detected_chords():
    from improvd.training.corpora import load_event_pieces

    src = DATA.parent / "original_metheny.mid"
    if not src.exists():
        pytest.skip("no shared data")
    (name, ev), = load_event_pieces([f"{src}@11"], src)
    notes = [e for e in ev if e.pitch >= 0]
    assert len(notes) > 1000 and min(e.pitch for e in notes) >= 47 and max(e.pitch for e in notes) <= 84
    assert sum(e.chord is not None for e in ev) > 0.9 * len(ev)


def test_music21_bundled_corpus_needs_no_data():
    pytest.importorskip("music21")
    from improvd.training.corpora import load_music21

    pieces = load_music21("bach", limit=3)
    assert pieces and all(len(ev) >= 8 for _, ev in pieces)
    assert any(e.chord is not None for _, ev in pieces for e in ev)
