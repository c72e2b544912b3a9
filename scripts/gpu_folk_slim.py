"""After training on the GPU box: slim checkpoints into $OUT and time the step of each preset
there (torch on CUDA, and onnxruntime with the providers the box has). A job script, not part
of the installed package: scripts/gpu_folk.sh runs it (python3 scripts/gpu_folk_slim.py OUT [RUN ...])."""

from __future__ import annotations

import json
import shutil
import sys
import time
from pathlib import Path

import numpy as np
import torch


def slim(run: Path, out: Path, preset: str) -> None:
    which = "best" if (run / "best.pt").exists() and preset != "mit" else "last"
    from improvd.training.loop import load_checkpoint

    s = load_checkpoint(run / f"{which}.pt")
    model = s["model"]
    if sum(v.numel() for v in model.values()) * 4 > 15e6:
        model = {k: v.half() for k, v in model.items()}  # transfer limit; widened to fp32 on export
    keep = {k: s[k] for k in ("describe", "history", "config", "epoch", "best")}
    torch.save({**keep, "model": model}, out / f"{preset}.pt")
    for f in ("metrics.json", "loss.png"):
        if (run / f).exists():
            shutil.copy(run / f, out / f"{preset}.{f}")


def time_steps(run: Path, n: int = 2000) -> dict:
    from improvd.training.folk import export, load_run, step_module

    net, _ = load_run(run)
    res = {}
    dev = torch.device("cuda")
    stepper = step_module(net).to(dev).eval()
    L, H = net.layers, net.hidden
    h = torch.zeros(L, 1, H, device=dev)
    c = torch.zeros(L, 1, H, device=dev)
    ch = torch.tensor([55], device=dev)
    times = []
    with torch.no_grad():
        for i in range(n + 100):
            t0 = time.perf_counter()
            logits, h, c = stepper(ch, h, c)
            ch = torch.multinomial(torch.softmax(logits, -1), 1)[0]
            int(ch.item())  # the draw is back on the host, as the daemon needs it
            times.append(time.perf_counter() - t0)
    t = np.array(times[100:]) * 1e3
    res["torch_cuda_step_ms_p50"], res["torch_cuda_step_ms_p99"] = float(np.percentile(t, 50)), float(np.percentile(t, 99))
    from improvd.models.runtime import ort as load_ort

    ort = load_ort()  # telemetry off, as everywhere in improvd

    prefix = Path("/tmp") / f"folk-{run.name}"
    export(run, prefix)
    for prov in [p for p in ("CUDAExecutionProvider", "CPUExecutionProvider") if p in ort.get_available_providers()]:
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = 1
        sess = ort.InferenceSession(str(prefix.with_suffix(".onnx")), opts, providers=[prov])
        hh = np.zeros((L, 1, H), np.float32)
        cc = np.zeros((L, 1, H), np.float32)
        x = 55
        rng = np.random.default_rng(0)
        times = []
        for i in range(n + 100):
            t0 = time.perf_counter()
            lo, hh, cc = sess.run(None, {"char": np.array([x], np.int64), "h": hh, "c": cc})
            z = lo[0].astype(np.float64)
            p = np.exp(z - z.max())
            cdf = np.cumsum(p)
            x = int(min(len(p) - 1, np.searchsorted(cdf, rng.random() * cdf[-1], side="right")))
            times.append(time.perf_counter() - t0)
        t = np.array(times[100:]) * 1e3
        res[f"ort_{prov}_step_ms_p50"], res[f"ort_{prov}_step_ms_p99"] = float(np.percentile(t, 50)), float(np.percentile(t, 99))
    return res


if __name__ == "__main__":
    out = Path(sys.argv[1])
    timing = {}
    runs = sorted(Path("runs").glob("folk-*")) + [Path(p) for p in sys.argv[2:]]
    for run in runs:
        preset = run.name.removeprefix("folk-")
        if (run / "last.pt").exists():
            if run.parent.name == "runs":
                slim(run, out, preset)
            try:
                timing[preset] = time_steps(run)
            except Exception as e:  # timing is a report, not the job
                timing[preset] = {"error": repr(e)}
    timing["device"] = torch.cuda.get_device_name(0)
    (out / "gpu_timing.json").write_text(json.dumps(timing, indent=2))
    print(json.dumps(timing, indent=2))
