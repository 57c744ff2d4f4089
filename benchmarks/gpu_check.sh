#!/usr/bin/env bash
# The GPU check of the population engine in one device call (at most 8 minutes on an H200): agreement of lockstep
# K = 16 with sequential runs in bf16, a sync-debug ("error") proxy evaluation, MFU at the paper shape and genomes per
# hour at the demo shape for K = 1, 4, 16, 64 -> results/benchmarks/population_cuda.json (and $OUT when set).
# Prepare here with `bash ../shared/gpu/prepare.sh`, then in the device call: carry [".device"], command
#   bash benchmarks/gpu_check.sh
# Extra arguments go to benchmarks/gpu_check.py (e.g. --sections agreement sync).
set -euo pipefail
cd "$(dirname "$0")/.."
if [ -f .device/setup.sh ]; then
  source .device/setup.sh
fi
out=results/benchmarks/population_cuda.json
args=(--out "$out")
[ -n "${TEACHER:-}" ] && args+=(--teacher "$TEACHER")
[ -n "${CORPUS:-}" ] && args+=(--corpus "$CORPUS")
[ -n "${GLUE:-}" ] && args+=(--glue-dir "$GLUE")
python3 benchmarks/gpu_check.py "${args[@]}" --set proxy.max_train=2000 "$@" > /dev/null
if [ -n "${OUT:-}" ]; then
  cp "$out" "$OUT/"
fi
python3 -c "import json,sys; d=json.load(open('$out')); print(json.dumps({k: v for k, v in d.items() if k != 'machine'}, indent=1)[:6000])"
