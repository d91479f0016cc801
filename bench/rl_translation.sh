#!/usr/bin/env bash
# Self-critical training (objective=scst) on Multi30k de->en from the MLE Transformer of
# `bench/quality_translation.sh transformer`, then test with the same decodings as that run.
#   bash bench/rl_translation.sh [MLE_RUN_DIR] [RUN_DIR] [extra overrides...]
set -euo pipefail
export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 HF_HUB_OFFLINE=1 WANDB_MODE=offline
export ENCDEC_DATA_DIR=${ENCDEC_DATA_DIR:-../shared/datasets}
MLE=${1:-bench/runs/multi30k_transformer}
RUN=${2:-bench/runs/multi30k_transformer_scst}
shift 2 || true
.venv/bin/encdec-train experiment=multi30k_transformer objective=scst \
    init_from="$MLE" \
    objective.samples_per_source=4 loader.max_tokens=1024 \
    optim.optimizer.lr=5e-5 optim.schedule._target_=encdec.optim.constant \
    '~optim.schedule.warmup_steps' '~optim.schedule.total_steps' '~optim.schedule.min_ratio' \
    trainer.max_steps=100000 trainer.max_time=00:00:15:00 trainer.check_val_every_n_epoch=1 \
    trainer.val_check_interval=50 trainer.log_every_n_steps=10 \
    "logger=[csv,tensorboard]" hydra.run.dir="$RUN" "$@"
.venv/bin/encdec-eval run_dir="$RUN" split=test decoding=greedy
.venv/bin/encdec-eval run_dir="$RUN" split=test decoding=beam
