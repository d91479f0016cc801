#!/usr/bin/env python
"""Quality: timm CNN vs timm ViT encoder on the procedural scenes, at an equal budget.

Both runs: `encdec-train experiment=captioning_scenes_{cnn,vit}` (LSTM decoder with additive
attention, d_model 128, batch 32 (image, caption) pairs, AdamW 1e-3, same seed), the same
number of optimiser steps, greedy decoding; scored on the 200 held-out test scenes (5
references each) with the COCO toolkit's CIDEr-D / BLEU-4. The baseline writes the training
set's most frequent caption for every test image.

Reported per encoder: test CIDEr-D, BLEU-4, wall time of the training command, training
images/s (steps x batch / wall time of the whole command, so start-up, two validations
and the test pass are included: a lower bound), greedy decoding images/s on the test set.

    python bench/captioning_cnn_vs_vit.py --steps 400
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def train(encoder: str, steps: int, run_dir: Path, extra: list[str]) -> float:
    cmd = [sys.executable, "-m", "encdec.cli.train", f"experiment=captioning_scenes_{encoder}",
           f"trainer.max_steps={steps}", f"trainer.val_check_interval={steps // 2}", "logger=csv",
           "callbacks=none", f"hydra.run.dir={run_dir}", *extra]
    print("$", " ".join(cmd[1:]), flush=True)
    start = time.perf_counter()
    subprocess.run(cmd, check=True, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=open(run_dir.parent / f"{encoder}.err", "w"))
    return time.perf_counter() - start


def decode_speed(run_dir: Path) -> tuple[float, float]:
    """(images/s greedy decoding the test split incl. image loading, mean output length)."""
    import torch

    from encdec.build import build_component
    from encdec.run_dir import load_run
    from omegaconf import OmegaConf

    cfg, adapter, model = load_run(run_dir, "last", stage="eval")
    search = build_component(OmegaConf.create(cfg.decoding), "decoding")
    examples = list(adapter.examples("test"))
    start, lengths = time.perf_counter(), []
    with torch.no_grad():
        for i in range(0, len(examples), 50):
            batch = adapter.collate(examples[i : i + 50])
            out = adapter.decode(search(model, batch.src, None).best())
            lengths += [len(o.split()) for o in out]
    return len(examples) / (time.perf_counter() - start), sum(lengths) / len(lengths)


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--steps", type=int, default=400)
    p.add_argument("--out", type=Path, default=ROOT / "bench" / "runs" / "captioning_cnn_vs_vit")
    p.add_argument("--encoders", nargs="+", default=["cnn", "vit"])
    args = p.parse_args()
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    import torch

    torch.set_num_threads(1)
    args.out.mkdir(parents=True, exist_ok=True)
    results = {}
    for enc in args.encoders:
        run_dir = args.out / enc
        wall = train(enc, args.steps, run_dir, [])
        test = json.loads((run_dir / "metrics" / "test.json").read_text())
        dec_ips, mean_len = decode_speed(run_dir)
        results[enc] = {"cider_d": test["cider_d"]["value"], "bleu4": test["bleu4"]["value"],
                        "wall_s": wall, "decode_images_per_s": dec_ips, "mean_words": mean_len,
                        "train_images_per_s": args.steps * 32 / wall}
        print(enc, json.dumps(results[enc]), flush=True)

    # the most-frequent-caption baseline on the same test split
    from encdec_tasks.captioning.metrics import caption_scores
    from encdec_tasks.captioning.scenes import ProceduralScenes
    from omegaconf import OmegaConf

    data_cfg = OmegaConf.load(args.out / args.encoders[0] / "config.yaml").data
    data = ProceduralScenes(**{k: v for k, v in OmegaConf.to_container(data_cfg).items() if k != "_target_"})
    top, count = Counter(c for it in data.read("train") for c in it.captions).most_common(1)[0]
    test = data.read("test")
    base = caption_scores([top] * len(test), [it.captions for it in test])
    results["most_frequent_caption"] = {"caption": top, "train_count": count, "cider_d": base["cider_d"], "bleu4": base["bleu4"]}
    print("baseline", json.dumps(results["most_frequent_caption"]), flush=True)
    (args.out / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    print("| encoder | test CIDEr-D | test BLEU-4 | train wall s | train img/s (incl. startup+val) | greedy decode img/s |")
    print("|---|---|---|---|---|---|")
    for enc in args.encoders:
        r = results[enc]
        print(f"| {enc} | {r['cider_d']:.1f} | {r['bleu4']:.1f} | {r['wall_s']:.0f} | {r['train_images_per_s']:.1f} | {r['decode_images_per_s']:.1f} |")
    b = results["most_frequent_caption"]
    print(f"| most frequent caption ({b['caption']!r}) | {b['cider_d']:.1f} | {b['bleu4']:.1f} | - | - | - |")


if __name__ == "__main__":
    main()
