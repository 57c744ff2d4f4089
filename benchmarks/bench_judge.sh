#!/usr/bin/env bash
# Issue 29: the judge's resolution and repeatability, measured.  Two compare folders under the demo preset's judge
# recipe (SST-2 + MRPC, 2,000 fine-tuning examples, the rate chosen per family on 500 held-out, 1,000 held-out scoring
# examples, mean pooling):
#   random/     3 x 192 random students distilled 600 steps with 6-4-0 and 0-0-6, 2 distillation seeds x 2 fine-tuning
#               seeds, with the teacher and the undistilled random student;
#   extracted/  3 x 384 students extracted from the teacher (1-2-3, 4-5-6, 1-5-6; the reference rows: the truncation
#               1-2-3 and a random student, both undistilled, since issue 30; the 2-4-6 copy before it), no
#               distillation, 4 fine-tuning seeds; the teacher row read from random/ (--teacher-from), seeds 2-3 added.
# Then benchmarks/bench_judge.py reads both: variance components, the smallest detectable difference, split-half
# Kendall tau over the eight students.
#   usage: TEACHER=... LAYERMAP_DATA=... bash benchmarks/bench_judge.sh [OUT_DIR] [extra --set ...]
#   (STEPS=4 and smaller --set values make a pipeline check of a few minutes; the extra --set come before each
#   folder's own settings, which win)
set -euo pipefail
OUT=${1:-results/judge}
shift || true
COMMON=(--config demo --teacher "$TEACHER" --corpus "$LAYERMAP_DATA/corpus/enwiki_sample.txt"
        --glue-dir "$LAYERMAP_DATA/glue")
layermap compare --mappings 6-4-0,0-0-6 "${COMMON[@]}" "$@" --set compare.max_steps="${STEPS:-600}" \
  --set compare.distill_seeds=2 --set compare.seeds=2 --out "$OUT/random"
layermap compare --mappings 1-2-3,4-5-6,1-5-6 "${COMMON[@]}" "$@" --set 'compare.init="teacher"' \
  --set student.hidden_size=384 --set student.ffn=1536 --set compare.max_steps=0 --set compare.epochs=0 \
  --set compare.distill_seeds=1 --set compare.seeds=4 --teacher-from "$OUT/random" --out "$OUT/extracted"
python benchmarks/bench_judge.py --folders "$OUT/random" "$OUT/extracted" --out "$OUT"
