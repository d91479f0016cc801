#!/usr/bin/env bash
# Quality-diversity curve on real text (Caccia et al. 2020): an MLE language model and its
# SeqGAN fine-tune on Multi30k English, each sampled at several temperatures and scored by
# BLEU-n against the test sentences (quality) and self-BLEU (diversity, lower = more diverse).
#   ENCDEC_DATA_DIR=/work/shared/datasets bash bench/textgen_temperature.sh [mle_epochs] [adv_rounds]
set -euo pipefail
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1} MKL_NUM_THREADS=${MKL_NUM_THREADS:-1}
PY=${PY:-.venv/bin/python}
OUT=${OUT:-bench/runs/textgen}
MLE_EPOCHS=${1:-2}
ADV_ROUNDS=${2:-30}
TEMPS=${TEMPS:-"0.6 0.8 1.0 1.2"}

$PY -m encdec.cli.train experiment=textgen_multi30k_mle trainer.max_epochs="$MLE_EPOCHS" \
  test_after_training=false hydra.run.dir="$OUT/mle"
$PY -m encdec.cli.train experiment=textgen_multi30k_seqgan init_from="$OUT/mle/checkpoints/last.ckpt" \
  objective.adversarial_rounds="$ADV_ROUNDS" trainer.check_val_every_n_epoch=1000 \
  test_after_training=false hydra.run.dir="$OUT/seqgan"
for run in mle seqgan; do
  for t in $TEMPS; do
    $PY -m encdec.cli.evaluate run_dir="$OUT/$run" checkpoint=last decoding=sampling decoding.temperature="$t" \
      decoding.max_len_a=0 decoding.max_len=33 name="temp$t" progress=false > /dev/null
    $PY - "$OUT/$run/eval/temp$t/results.json" "$run" "$t" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))["metrics"]
print(json.dumps({"model": sys.argv[2], "temperature": float(sys.argv[3]),
                  **{k.split("/")[-1]: round(v, 4) for k, v in r.items()}}))
PY
  done
done
