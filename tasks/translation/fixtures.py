"""A tiny generated parallel corpus in the aligned-files format, for tests and smoke runs.

Every adapter ships `tiny_data_config(root)`: the adapter contract test runs each task
adapter on its own fixture through the same checks.
"""

from __future__ import annotations

import random
from pathlib import Path

LEXICON = {
    "der": "the", "hund": "dog", "katze": "cat", "mann": "man", "frau": "woman", "kind": "child",
    "läuft": "runs", "spielt": "plays", "sitzt": "sits", "springt": "jumps", "im": "in the",
    "park": "park", "garten": "garden", "schnee": "snow", "wasser": "water", "rote": "red",
    "kleine": "small", "große": "big", "und": "and", "mit": "with", "ball": "ball",
}
SUBJECTS = ["hund", "katze", "mann", "frau", "kind"]
VERBS = ["läuft", "spielt", "sitzt", "springt"]
PLACES = ["park", "garten", "schnee", "wasser"]
ADJECTIVES = ["rote", "kleine", "große"]


def sentence_pair(rng: random.Random) -> tuple[str, str]:
    words = ["der"]
    if rng.random() < 0.5:
        words.append(rng.choice(ADJECTIVES))
    words += [rng.choice(SUBJECTS), rng.choice(VERBS), "im", rng.choice(PLACES)]
    if rng.random() < 0.3:
        words += ["mit", "der", "ball"]
    src = " ".join(words).capitalize() + "."
    tgt = " ".join(LEXICON[w] for w in words).capitalize() + "."
    return src, tgt


def write_parallel_corpus(root: str | Path, sizes: dict[str, int] | None = None, seed: int = 0) -> Path:
    """Writes <root>/{train,val,test}.{de,en}; returns root."""
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    rng = random.Random(seed)
    for split, n in (sizes or {"train": 240, "val": 24, "test": 24}).items():
        pairs = [sentence_pair(rng) for _ in range(n)]
        (root / f"{split}.de").write_text("".join(s + "\n" for s, _ in pairs), encoding="utf-8")
        (root / f"{split}.en").write_text("".join(t + "\n" for _, t in pairs), encoding="utf-8")
    return root


def tiny_data_config(root: str | Path) -> dict:
    """`data` config (Hydra style) for the corpus written into `root`."""
    write_parallel_corpus(root)
    return {
        "_target_": "encdec_tasks.translation.data.ParallelText",
        "root": str(root),
        "src_lang": "de",
        "tgt_lang": "en",
        "splits": {"train": "train", "val": "val", "test": "test"},
    }


# small-vocabulary overrides for a fixture-sized run of this task
TINY_TASK_OVERRIDES = ["task.adapter.tokenizer.vocab_size=120"]
