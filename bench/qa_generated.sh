#!/usr/bin/env bash
# QA on the generated bAbI-like set (conf/data/generated_qa.yaml, v2.0, 50% unseen-name
# stories in test) at an equal wall-clock budget (trainer.max_time=5 min each, one thread):
# plain Transformer, + copy attention, pretrained all-MiniLM-L6-v2 encoder (+ copy).
# Scored on the test split (1 800+ questions) with greedy decoding. Needs the `pretrained`
# extra and the MiniLM folder (README.md, "Pretrained text encoder").
set -euo pipefail
cd "$(dirname "$0")/.."
export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 HF_HUB_OFFLINE=1 WANDB_MODE=offline
OUT=${OUT:-bench/runs/qa}
mkdir -p "$OUT"
run() {
  local name=$1; shift
  local start=$(date +%s)
  .venv/bin/encdec-train "$@" hydra.run.dir="$OUT/$name" > "$OUT/$name.log" 2>&1
  echo "$name wall_s=$(( $(date +%s) - start ))" | tee -a "$OUT/times.txt"
}
run plain experiment=qa_generated
run copy experiment=qa_generated decoder.copy=true
run minilm_copy experiment=qa_minilm
.venv/bin/python bench/qa_summary.py "$OUT"/plain "$OUT"/copy "$OUT"/minilm_copy
