#!/usr/bin/env bash
# Issue 29: the judge's resolution and repeatability, measured.  Two compare folders under the demo preset's judge
# recipe (2,000 fine-tuning examples, the rate chosen per family on 500 held-out, 1,000 held-out scoring examples, mean
# pooling):
#   RANDOM     (results/compare-demo)     3 x 192 random students distilled 600 steps with 6-4-0, 2-4-6 and 0-0-6,
#              2 distillation seeds x 2 fine-tuning seeds, SST-2 + MRPC, with the teacher and the undistilled student;
#   EXTRACTED  (results/judge/extracted)  3 x 384 students extracted from the teacher (2-4-6, 4-5-6, 1-5-6, 1-2-4,
#              3-4-5; the reference rows are the truncation 1-2-3 and a random 3 x 384 student), no distillation,
#              2 fine-tuning seeds, SST-2 (the proxy's task) only, for time; the teacher row read from RANDOM.
# Then benchmarks/bench_judge.py reads both: variance components, the smallest detectable difference and its cost
# (RANDOM), split-half Kendall tau over the twelve students on SST-2 (both).
#   usage: TEACHER=... LAYERMAP_DATA=... bash benchmarks/bench_judge.sh [RANDOM] [EXTRACTED] [extra --set ...]
#   (STEPS=4 and smaller --set values make a pipeline check of a few minutes; the extra --set come before each
#   folder's own settings, which win)
set -euo pipefail
RANDOM_DIR=${1:-results/compare-demo}
EXTRACTED_DIR=${2:-results/judge/extracted}
shift 2 || shift $# || true
COMMON=(--config demo --teacher "$TEACHER" --corpus "$LAYERMAP_DATA/corpus/enwiki_sample.txt"
        --glue-dir "$LAYERMAP_DATA/glue")
layermap compare --mappings 6-4-0,2-4-6,0-0-6 "${COMMON[@]}" "$@" --set compare.max_steps="${STEPS:-600}" \
  --set compare.distill_seeds=2 --set compare.seeds=2 --out "$RANDOM_DIR"
layermap compare --mappings 2-4-6,4-5-6,1-5-6,1-2-4,3-4-5 "${COMMON[@]}" "$@" --set 'compare.init="teacher"' \
  --set student.hidden_size=384 --set student.ffn=1536 --set compare.max_steps=0 --set compare.epochs=0 \
  --set compare.distill_seeds=1 --set compare.seeds=2 --set 'compare.tasks=["sst2"]' \
  --teacher-from "$RANDOM_DIR" --out "$EXTRACTED_DIR"
python benchmarks/bench_judge.py --folders "$RANDOM_DIR" "$EXTRACTED_DIR" --out "$(dirname "$EXTRACTED_DIR")"
