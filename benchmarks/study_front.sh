#!/usr/bin/env bash
# Issue 23, Deliver 6: the final stage for every member of a joint search's Pareto front, one compare per shape
# (the student shape comes from each exported front file), with the reference rows, at the settings of
# results/compare-demo-2026-12-03 (600 steps, SST-2 and MRPC, 3 fine-tuning seeds); the teacher row is read from that folder
# (--teacher-from) and its 3 x 192 uniform student 2-4-6 is the fixed-shape baseline.  Then
# benchmarks/study_front.py reads the folders.
#   usage: TEACHER=... LAYERMAP_DATA=... bash benchmarks/study_front.sh [FRONT_DIR] [OUT_DIR]
set -euo pipefail
FRONT=${1:-results/front-demo/front}
OUT=${2:-results/front-demo/final}
BASE=${BASE:-results/compare-demo-2026-12-03}
mkdir -p "$OUT"
for f in "$FRONT"/front-*.json; do
  name=$(basename "$f" .json)
  layermap compare --mappings "$f" --config "$BASE/config.toml" --teacher "$TEACHER" \
    --corpus "$LAYERMAP_DATA/corpus/enwiki_sample.txt" --glue-dir "$LAYERMAP_DATA/glue" \
    --teacher-from "$BASE" --out "$OUT/$name"
done
