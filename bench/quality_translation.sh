#!/usr/bin/env bash
# Multi30k de->en quality runs through the platform's own CLI. Run from the repo root after
# `make install`, with nothing else heavy running; each training is time-boxed by its
# experiment config. Evaluates best.ckpt with greedy and beam search, then (when the run kept
# epoch checkpoints) the averages of the last 5 and of the last 10.
#   bash bench/quality_translation.sh transformer|gru|lstm
set -euo pipefail
model=${1:-transformer}
export ENCDEC_DATA_DIR=${ENCDEC_DATA_DIR:-$(cd .. && pwd)/shared/datasets} HF_HUB_OFFLINE=1
run=bench/runs/multi30k_${model}
log=bench/logs/multi30k_${model}.log
mkdir -p bench/logs
uptime | tee $log
start=$(date +%s)
.venv/bin/encdec-train experiment=multi30k_${model} "logger=[csv,tensorboard]" hydra.run.dir=$run "${@:2}" >> $log 2>&1
echo "train wall seconds: $(( $(date +%s) - start ))" | tee -a $log
uptime | tee -a $log
for decoding in greedy beam; do
  .venv/bin/encdec-eval run_dir=$run split=test decoding=$decoding progress=false name=test-$decoding 2>&1 | tee -a $log
done
if ls $run/checkpoints/epoch-*.ckpt > /dev/null 2>&1; then
  kept=$(ls $run/checkpoints/epoch-*.ckpt | wc -l)
  for n in 5 10; do
    [ "$n" -le "$kept" ] || continue
    .venv/bin/encdec-average run_dir=$run last=$n output=$run/checkpoints/averaged-$n.ckpt 2>&1 | tee -a $log
    for decoding in beam greedy; do
      .venv/bin/encdec-eval run_dir=$run split=test decoding=$decoding checkpoint=$run/checkpoints/averaged-$n.ckpt \
        progress=false name=test-$decoding-averaged-$n 2>&1 | tee -a $log
    done
  done
fi
uptime | tee -a $log
