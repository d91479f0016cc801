"""A tiny corpus of sentences (one per line, train/val/test), for tests and smoke runs."""

from __future__ import annotations

import random
from pathlib import Path

from encdec_tasks.translation.fixtures import sentence_pair


def write_sentences(root: str | Path, sizes: dict[str, int] | None = None, seed: int = 0) -> Path:
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    rng = random.Random(seed)
    for split, n in (sizes or {"train": 240, "val": 24, "test": 24}).items():
        (root / f"{split}.txt").write_text("".join(sentence_pair(rng)[1] + "\n" for _ in range(n)), encoding="utf-8")
    return root


def tiny_data_config(root: str | Path) -> dict:
    write_sentences(root)
    return {
        "_target_": "encdec_tasks.textgen.data.TextFile",
        "root": str(root),
        "splits": {"train": "train.txt", "val": "val.txt", "test": "test.txt"},
    }


TINY_TASK_OVERRIDES = ["task.adapter.tokenizer.vocab_size=120"]
