#!/usr/bin/env bash
# Train folk configurations on the lent GPU, time the steps there, bring back slim
# model-only checkpoints (a 1024-unit one in fp16 to fit the transfer limit).
# Usage (GPU box, repo root): bash scripts/gpu_folk.sh CACHE.npz NAME=PRESET[:JSON] ...
set -uo pipefail
export PYTHONUNBUFFERED=1 PYTHONPATH=.
cache=$1; shift
out=${OUT:-out}
mkdir -p "$out"
nvidia-smi --query-gpu=name --format=csv,noheader || true
for spec in "$@"; do
  name=${spec%%=*}; rest=${spec#*=}; preset=${rest%%:*}; over=${rest#"$preset"}; over=${over#:}
  timeout 170 python3 - "$name" "$preset" "$cache" "${over:-{\}}" <<'PY' 2>&1 | tee "$out/train-$name.log"
import json, sys
from improvd.training.config import TrainConfig
from improvd.training.folk import train
name, preset, cache, over = sys.argv[1:5]
s = train(TrainConfig(family="folk", preset=preset, out=f"runs/folk-{name}", extra={"cache": cache, **json.loads(over)}))
print(f"{name}: best valid {s['best_valid_loss']:.4f} nats/char, {s['epochs_run']} epochs, {s['wall_seconds']} s on {s['device_name']}")
PY
done
python3 scripts/gpu_folk_slim.py "$out" .folkdata/folk-mit
