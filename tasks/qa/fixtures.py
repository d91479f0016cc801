"""A tiny generated QA set in SQuAD v2.0 JSON, for tests and smoke runs (the adapter
contract test runs every task adapter on its own fixture)."""

from __future__ import annotations

from pathlib import Path

TINY_STORIES = {"train": 60, "val": 6, "test": 6}


def tiny_data_config(root: str | Path) -> dict:
    """`data` config (Hydra style): the generated set, written into `root` on first read."""
    return {
        "_target_": "encdec_tasks.qa.generated.GeneratedQA",
        "root": str(root),
        "stories": dict(TINY_STORIES),
        "seed": 0,
        "version": "v2.0",
    }


# small-vocabulary overrides for a fixture-sized run of this task
TINY_TASK_OVERRIDES = ["task.adapter.tokenizer.vocab_size=200"]
