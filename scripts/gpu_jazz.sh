#!/usr/bin/env bash
# Train jazz presets on the lent GPU and bring back model-only checkpoints.
# Usage (on the GPU box, repo root, improvd installed: pip install -e . --no-deps):
#   bash scripts/gpu_jazz.sh DATA.jsonl PRESET [PRESET...]
set -euo pipefail
export PYTHONUNBUFFERED=1
data=$1; shift
nvidia-smi --query-gpu=name --format=csv,noheader || true
out=${OUT:-out}; mkdir -p "$out"
for preset in "$@"; do
  python3 -m improvd.training.cli_train jazz --preset "$preset" --data "$data" --out "runs/jazz-$preset" 2>&1 | grep -vE "Warning|warn" | tail -4
  python3 - "$preset" "$out" <<'PY'
import sys, torch, shutil
preset, out = sys.argv[1], sys.argv[2]
s = torch.load(f"runs/jazz-{preset}/best.pt", map_location="cpu", weights_only=True)  # data only, never code
torch.save({k: s[k] for k in ("model", "describe", "history", "config", "epoch", "best")}, f"{out}/{preset}.best.pt")
shutil.copy(f"runs/jazz-{preset}/metrics.json", f"{out}/{preset}.metrics.json")
shutil.copy(f"runs/jazz-{preset}/loss.png", f"{out}/{preset}.loss.png")
PY
done
