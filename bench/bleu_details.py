"""Corpus BLEU with its length ratio and n-gram precisions, for runs decoded the same way:
shows whether a change in BLEU is a change in length (brevity penalty) or in n-grams.
    python bench/bleu_details.py RUN_DIR [RUN_DIR...] --split test --checkpoint best
"""

from __future__ import annotations

import argparse

import torch
from omegaconf import OmegaConf
from sacrebleu.metrics import BLEU

from encdec.decoding import Greedy
from encdec.run_dir import load_run

parser = argparse.ArgumentParser()
parser.add_argument("runs", nargs="+")
parser.add_argument("--split", default="test")
parser.add_argument("--checkpoint", default="best")
args = parser.parse_args()
torch.set_num_threads(1)
for run in args.runs:
    saved, adapter, model = load_run(run, args.checkpoint, stage="eval")
    model.eval()
    search = Greedy(max_len=128, max_len_a=1.5, max_len_b=10)  # as conf/decoding/greedy.yaml with task=translation (task.max_len_a)
    examples = list(adapter.examples(args.split))
    outputs, refs = [], []
    with torch.no_grad():
        for i in range(0, len(examples), 200):
            batch = adapter.collate(examples[i : i + 200])
            outputs += adapter.decode(search(model, batch.src, batch.src_mask).best())
            refs += adapter.references(batch)
    score = BLEU().corpus_score(outputs, [refs])
    print(f"{run} [{args.split}, {args.checkpoint}, greedy]: BLEU {score.score:.2f} "
          f"precisions {'/'.join(f'{p:.1f}' for p in score.precisions)} BP {score.bp:.3f} "
          f"ratio {score.sys_len / score.ref_len:.3f} (hyp {score.sys_len}, ref {score.ref_len})")
