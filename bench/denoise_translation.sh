#!/usr/bin/env bash
# Denoising pre-training -> Multi30k de->en fine-tuning, against training from scratch with
# the same total number of optimiser steps (the machine is shared, so budgets are in steps,
# not minutes; wall times are reported). Same model, optimiser and batch size as
# experiment=multi30k_transformer; each stage has its own warmup + cosine schedule.
#   bash bench/denoise_translation.sh [STEPS_PER_STAGE] [RUNS_PREFIX]
set -euo pipefail
export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 HF_HUB_OFFLINE=1 WANDB_MODE=offline
export ENCDEC_DATA_DIR=${ENCDEC_DATA_DIR:-../shared/datasets}
N=${1:-200}
P=${2:-bench/runs/denoise}
COMMON=(experiment=multi30k_transformer "logger=[csv]" optim.schedule.warmup_steps=100
        trainer.max_time=null trainer.check_val_every_n_epoch=1000)
time_it() { local t0=$SECONDS; "$@"; echo "wall: $((SECONDS - t0)) s for: ${*: -1}"; }
# 1. denoising pre-training on the English (target) side of Multi30k train
time_it .venv/bin/encdec-train "${COMMON[@]}" objective=denoise trainer.max_steps=$N \
    test_after_training=false hydra.run.dir=${P}_pretrain
# 2. fine-tuning on translation from it (init_from brings the pre-training run's vocabulary)
time_it .venv/bin/encdec-train "${COMMON[@]}" trainer.max_steps=$N \
    init_from=${P}_pretrain/checkpoints/last.ckpt \
    hydra.run.dir=${P}_finetune
# 3. from scratch, all 2N steps on translation
time_it .venv/bin/encdec-train "${COMMON[@]}" trainer.max_steps=$((2 * N)) hydra.run.dir=${P}_scratch
for run in ${P}_finetune ${P}_scratch; do
    .venv/bin/encdec-eval run_dir=$run split=test decoding=greedy checkpoint=last progress=false
done
