#!/usr/bin/env bash
# Multi30k de->en quality runs through the platform's own CLI (issue 2). Run from the repo
# root after `make install`; each training is time-boxed by its experiment config.
#   bash bench/quality_translation.sh transformer|gru|lstm
set -euo pipefail
model=${1:-transformer}
export ENCDEC_DATA_DIR=${ENCDEC_DATA_DIR:-$(cd .. && pwd)/shared/datasets} HF_HUB_OFFLINE=1
run=bench/runs/multi30k_${model}
mkdir -p bench/logs
start=$(date +%s)
.venv/bin/encdec-train experiment=multi30k_${model} "logger=[csv,tensorboard]" hydra.run.dir=$run \
  > bench/logs/multi30k_${model}.log 2>&1
echo "train wall seconds: $(( $(date +%s) - start ))" | tee -a bench/logs/multi30k_${model}.log
for decoding in greedy beam; do
  .venv/bin/encdec-eval run_dir=$run split=test decoding=$decoding progress=false \
    | tee -a bench/logs/multi30k_${model}.log
done
