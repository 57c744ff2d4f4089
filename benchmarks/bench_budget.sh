#!/usr/bin/env bash
# Issue 30, Deliver 3: when does distillation pay for a student extracted from the teacher?  3 x 384 students whose
# layers are copied from the teacher layers their genome names, distilled for STEPS steps at learning rate LR with
# that genome as the mapping, then judged by the final stage's recipe (docs/final-stage.md "The judge's recipe") on
# SST-2, 2 fine-tuning seeds, 1 distillation seed.
#   ZERO  (results/judge/extracted, made by bench_judge.sh)  the 0-step points: every genome undistilled, the
#         teacher, the plain truncation 1-2-3 and a random 3 x 384 student (the yardsticks);
#   results/budget/s<STEPS>-lr<LR>  one compare folder per budget and rate, no reference rows of its own, each
#         student fine-tuned at the rate its undistilled self was given in ZERO (--recipe-from), so the only change
#         from the 0-step point is the distillation.
# Then benchmarks/bench_budget.py reads them all: results/budget/budget.json/.txt/.png.
#   usage: TEACHER=... LAYERMAP_DATA=... [STEPS="240 1000"] [LRS="1e-4 3e-4"] [MAPPINGS=1-2-3,2-4-6,4-5-6,1-2-4] \
#          bash benchmarks/bench_budget.sh [ZERO] [OUT] [extra --set ...]
#   (the four genomes: the truncation, the every-other-layer copy ending at the teacher's top, the top layers and the
#   judge's best undistilled genome; 4,000 steps is a GPU's budget: STEPS=4000 --device cuda)
set -euo pipefail
ZERO=${1:-results/judge/extracted}
OUT=${2:-results/budget}
shift 2 || shift $# || true
COMMON=(--config demo --teacher "$TEACHER" --corpus "$LAYERMAP_DATA/corpus/enwiki_sample.txt"
        --glue-dir "$LAYERMAP_DATA/glue")
for steps in ${STEPS:-240 1000}; do
  for lr in ${LRS:-1e-4 3e-4}; do
    layermap compare --mappings "${MAPPINGS:-1-2-3,2-4-6,4-5-6,1-2-4}" "${COMMON[@]}" "$@" \
      --set 'compare.init="teacher"' --set student.hidden_size=384 --set student.ffn=1536 \
      --set compare.max_steps="$steps" --set compare.learning_rate="$lr" --set compare.distill_seeds=1 \
      --set compare.seeds=2 --set 'compare.tasks=["sst2"]' --set compare.references=false \
      --recipe-from "$ZERO" --out "$OUT/s$steps-lr$lr"
  done
done
python benchmarks/bench_budget.py --zero "$ZERO" --folders "$OUT"/s*-lr* --out "$OUT"
