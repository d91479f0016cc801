#!/usr/bin/env bash
# QA on the generated bAbI-like set (conf/data/generated_qa.yaml, v2.0, 50% unseen-name
# stories in test) at an equal wall-clock budget per run (trainer.max_time, one thread):
# plain Transformer decoder, + copy attention (Transformer and GRU decoders), pretrained
# all-MiniLM-L6-v2 encoder (+ copy). Scored on the test split (~1 800 questions), greedy.
# Needs the `pretrained` extra and the MiniLM folder (README.md, "pretrained text encoder").
#   bench/qa_generated.sh                      # round 1: 5 min each, experiment defaults
#   OUT=bench/runs/qa2 EXTRA="trainer.max_time=00:00:06:00 optim.optimizer.lr=3e-3 loader.max_tokens=2048 optim.schedule.warmup_steps=100" RUNS="plain copy gru_copy minilm_frozen_copy" bench/qa_generated.sh
set -euo pipefail
cd "$(dirname "$0")/.."
export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 HF_HUB_OFFLINE=1 WANDB_MODE=offline
OUT=${OUT:-bench/runs/qa}
EXTRA=${EXTRA:-}
RUNS=${RUNS:-plain copy minilm_copy}
mkdir -p "$OUT"
declare -A ARGS=(
  [plain]="experiment=qa_generated"
  [copy]="experiment=qa_generated decoder.copy=true"
  [gru_copy]="experiment=qa_generated decoder=gru decoder.copy=true ~decoder.layers ~decoder.ffn decoder.hidden_size=256"
  [minilm_copy]="experiment=qa_minilm"
  [minilm_frozen_copy]="experiment=qa_minilm encoder.freeze=true"
)
dirs=()
for name in $RUNS; do
  start=$(date +%s)
  # shellcheck disable=SC2086
  .venv/bin/encdec-train ${ARGS[$name]} $EXTRA hydra.run.dir="$OUT/$name" > "$OUT/$name.log" 2>&1
  echo "$name wall_s=$(( $(date +%s) - start ))" | tee -a "$OUT/times.txt"
  dirs+=("$OUT/$name")
done
.venv/bin/python bench/qa_summary.py "${dirs[@]}"
