#!/usr/bin/env bash
# Self-critical training (objective=scst, CIDEr-D reward) on the procedural captioning scenes
# from an MLE ViT run, then test before and after with the same decoding (greedy).
#   bash bench/rl_captioning.sh [MLE_RUN_DIR] [RUN_DIR] [extra overrides...]
# The MLE start: encdec-train experiment=captioning_scenes_vit trainer.max_steps=800 \
#   trainer.val_check_interval=400 logger=csv hydra.run.dir=bench/runs/captioning_vit_mle
set -euo pipefail
export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 HF_HUB_OFFLINE=1 WANDB_MODE=offline
MLE=${1:-bench/runs/captioning_vit_mle}
RUN=${2:-bench/runs/captioning_vit_scst}
shift 2 || true
.venv/bin/encdec-eval run_dir="$MLE" split=test decoding=greedy
.venv/bin/encdec-train experiment=captioning_scenes_vit objective=scst init_from="$MLE" \
    objective.samples_per_source=5 objective.baseline=greedy \
    optim.optimizer.lr=5e-5 optim.schedule._target_=encdec.optim.constant \
    '~optim.schedule.warmup_steps' \
    trainer.max_steps=300 trainer.max_time=00:00:15:00 trainer.val_check_interval=100 \
    trainer.log_every_n_steps=10 logger=csv hydra.run.dir="$RUN" "$@"
.venv/bin/encdec-eval run_dir="$RUN" split=test decoding=greedy
