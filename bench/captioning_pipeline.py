#!/usr/bin/env python
"""Speed of the captioning training data path with the image cache off and on
(task.adapter.image_cache_mb), on the config of `encdec-train experiment=captioning_scenes_vit`.

(a) Data path alone: the training examples of `data=scenes` ((image, caption) pairs, shuffled
    per epoch) through `adapter.collate` in batches of --batch, two epochs; images/s of each
    epoch. Off decodes and resizes every image at every read; on fills the cache in epoch 1 and
    reads it in epoch 2. The image files are read once before timing so both start from the OS
    file cache. Rounds are interleaved (which side goes first alternates); medians over rounds.
(b) Optional (--train-steps N > 0): whole training runs, `encdec-train
    experiment=captioning_scenes_vit trainer.max_steps=N` with the cache off and on (one run
    each per round, alternating), images/s read from the progress lines (examples/s over the
    last 50 batches, so an epoch's first lines still average some of the previous epoch's),
    median per epoch. The cache only pays from epoch 2, so N should exceed one epoch's steps
    (625 at the default 4,000 training images x 5 captions / 32) by a few hundred.

    python bench/captioning_pipeline.py --threads 1 --rounds 3                  # (a)
    python bench/captioning_pipeline.py --threads 1 --rounds 1 --train-steps 800 # (a) and (b)
    # a quick check that it works, on 40 training images:
    python bench/captioning_pipeline.py --rounds 1 --set data.sizes.train=40 --train-steps 4

--set passes config overrides to both (a) and (b) (e.g. data.sizes.train=400, data.image_size=224).
"""

from __future__ import annotations

import argparse
import os
import random
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CACHE_ON_MB = 2048  # conf/task/captioning.yaml's default
PROGRESS = re.compile(r"\| epoch (\d+) \|.* \| ([\d,.]+) ex/s")


def data_path_rates(overrides: list[str], cache_mb: float, batch: int, run_dir: Path) -> list[float]:
    """Images/s of `adapter.collate` over two shuffled training epochs, a fresh adapter."""
    import encdec.api
    from encdec.build import build_adapter

    cfg = encdec.api.compose("train", ["experiment=captioning_scenes_vit", f"hydra.run.dir={run_dir}",
                                       f"task.adapter.image_cache_mb={cache_mb}", *overrides])
    adapter = build_adapter(cfg)
    adapter.setup(run_dir, "fit")  # the tokenizer: trained once, then read from run_dir
    examples = list(adapter.examples("train"))
    rates = []
    for epoch in range(2):
        order = random.Random(epoch).sample(examples, len(examples))
        start = time.perf_counter()
        for i in range(0, len(order), batch):
            adapter.collate(order[i:i + batch])
        rates.append(len(order) / (time.perf_counter() - start))
    return rates


def warm_file_cache(overrides: list[str], run_dir: Path) -> int:
    """Reads every training image file once (so no side pays for cold disk reads); their count."""
    import encdec.api
    from encdec.build import build_adapter

    cfg = encdec.api.compose("train", ["experiment=captioning_scenes_vit", f"hydra.run.dir={run_dir}", *overrides])
    items = build_adapter(cfg).data.read("train")
    for it in items:
        it.path.read_bytes()
    return len(items)


def training_rates(overrides: list[str], cache_mb: float, steps: int, run_dir: Path) -> dict[int, float]:
    """Epoch -> median images/s of the progress lines of one `encdec-train` run."""
    cmd = [sys.executable, "-m", "encdec.cli.train", "experiment=captioning_scenes_vit", f"trainer.max_steps={steps}",
           f"task.adapter.image_cache_mb={cache_mb}", f"hydra.run.dir={run_dir}", "callbacks.progress.every_seconds=5",
           "test_after_training=false", "trainer.max_time=null", "logger=csv", *overrides]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        sys.exit(f"encdec-train failed ({proc.returncode}): {' '.join(cmd)}\n{proc.stdout[-2000:]}\n{proc.stderr[-3000:]}")
    per_epoch: dict[int, list[float]] = {}
    for epoch, rate in PROGRESS.findall(proc.stdout + proc.stderr):
        per_epoch.setdefault(int(epoch), []).append(float(rate.replace(",", "")))
    return {epoch: statistics.median(rates) for epoch, rates in sorted(per_epoch.items())}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--train-steps", type=int, default=0, help="also time whole training runs of N steps (0: skip)")
    p.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE", help="config overrides for both parts")
    args = p.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("WANDB_MODE", "offline")
    os.environ["OMP_NUM_THREADS"] = str(args.threads)  # the training subprocesses
    import torch

    torch.set_num_threads(args.threads)
    sides = {"off": 0, "on": CACHE_ON_MB}
    with tempfile.TemporaryDirectory(prefix="captioning_pipeline_") as tmp:
        tmp = Path(tmp)
        images = warm_file_cache(args.set, tmp / "warm")
        print(f"training images: {images}; overrides: {' '.join(args.set) or '(none)'}; threads {args.threads}", flush=True)

        print(f"\n(a) adapter.collate, batches of {args.batch}, two epochs: images/s", flush=True)
        rates: dict[str, list[list[float]]] = {side: [] for side in sides}
        for r in range(args.rounds):
            for side in (list(sides) if r % 2 == 0 else list(sides)[::-1]):
                rates[side].append(data_path_rates(args.set, sides[side], args.batch, tmp / f"a{r}{side}"))
                print(f"  round {r + 1} cache {side:3s}: epoch 1 {rates[side][-1][0]:8.1f}  epoch 2 {rates[side][-1][1]:8.1f}", flush=True)
        med = {side: [statistics.median(run[e] for run in rates[side]) for e in range(2)] for side in sides}
        print("| cache | epoch 1 images/s | epoch 2 images/s |\n|---|---|---|")
        for side in sides:
            print(f"| {side} ({sides[side]} MiB) | {med[side][0]:.1f} | {med[side][1]:.1f} |")
        print(f"| on / off | {med['on'][0] / med['off'][0]:.2f}x | {med['on'][1] / med['off'][1]:.2f}x |", flush=True)

        if args.train_steps:
            print(f"\n(b) encdec-train experiment=captioning_scenes_vit trainer.max_steps={args.train_steps}: "
                  "images/s (progress lines, median per epoch)", flush=True)
            runs: dict[str, list[dict[int, float]]] = {side: [] for side in sides}
            for r in range(args.rounds):
                for side in (list(sides) if r % 2 == 0 else list(sides)[::-1]):
                    runs[side].append(training_rates(args.set, sides[side], args.train_steps, tmp / f"b{r}{side}"))
                    print(f"  round {r + 1} cache {side:3s}: " + ", ".join(
                        f"epoch {e + 1} {v:.1f}" for e, v in runs[side][-1].items()), flush=True)
            epochs = sorted(set.intersection(*(set(run) for side in sides for run in runs[side])))
            if not epochs:
                print("  no progress line was printed: give more --train-steps")
            for e in epochs:
                off, on = (statistics.median(run[e] for run in runs[side]) for side in sides)
                print(f"  epoch {e + 1}: cache off {off:.1f}, on {on:.1f} images/s ({on / off:.2f}x)")


if __name__ == "__main__":
    main()
