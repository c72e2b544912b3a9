#!/usr/bin/env bash
# Train the bundled jazz model on the lent GPU and bring back a model-only checkpoint.
# Usage (on the GPU box, repo root): bash training/gpu_jazz.sh DATA.jsonl
set -euo pipefail
export PYTHONUNBUFFERED=1
data=${1:-.data/wjazzd_chords.trainvalid.jsonl}
nvidia-smi --query-gpu=name --format=csv,noheader || true
python3 -m training.cli_train jazz --data "$data" --out runs/jazz "${@:2}"
python3 - <<'PY'
import torch, os, shutil
s = torch.load("runs/jazz/best.pt", map_location="cpu", weights_only=False)
slim = {k: s[k] for k in ("model", "describe", "history", "config", "epoch", "best")}
out = os.environ.get("OUT", "out")
os.makedirs(out, exist_ok=True)
torch.save(slim, f"{out}/best.pt")
for f in ("metrics.json", "loss.png"):
    shutil.copy(f"runs/jazz/{f}", out)
PY
