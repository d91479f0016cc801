"""A tiny generated interaction log in RecBole's atomic format, for tests and smoke runs.

Users walk a fixed Markov chain over a small catalogue (each item has one likely successor),
so a sequence model can learn to predict the next item; timestamps include ties, as real
logs do. Every adapter ships `tiny_data_config(root)` for the adapter contract test.
"""

from __future__ import annotations

import random
from pathlib import Path

NUM_ITEMS = 30


def markov_sequences(num_users: int = 60, length: tuple[int, int] = (8, 20), num_items: int = NUM_ITEMS,
                     stay: float = 0.9, seed: int = 0) -> dict[str, list[str]]:
    """user -> item ids ("i<n>"); with probability `stay` the next item is the chain's
    successor of the current one (a fixed random permutation), else uniform."""
    rng = random.Random(seed)
    successor = list(range(num_items))
    rng.shuffle(successor)
    out = {}
    for u in range(num_users):
        item = rng.randrange(num_items)
        seq = [item]
        for _ in range(rng.randint(*length) - 1):
            item = successor[item] if rng.random() < stay else rng.randrange(num_items)
            seq.append(item)
        out[f"u{u}"] = [f"i{i}" for i in seq]
    return out


def write_atomic(root: str | Path, dataset: str = "tiny", sequences: dict[str, list[str]] | None = None,
                 seed: int = 0) -> Path:
    """Writes <root>/<dataset>/<dataset>.inter and .item (lines shuffled: readers must sort
    by time); returns the folder."""
    folder = Path(root) / dataset
    folder.mkdir(parents=True, exist_ok=True)
    sequences = sequences or markov_sequences(seed=seed)
    rng = random.Random(seed + 1)
    rows = []
    for user, seq in sequences.items():
        time = 880000000 + rng.randrange(10_000)
        for item in seq:
            time += rng.choice([0, 1, 60, 3600])  # some equal timestamps: ties keep file order
            rows.append((user, item, rng.randint(1, 5), time))
    # group each user's rows in time order, users interleaved: ties stay in sequence order
    rng.shuffle(rows)
    rows.sort(key=lambda r: (r[0], r[3]))
    lines = ["user_id:token\titem_id:token\trating:float\ttimestamp:float"]
    lines += [f"{u}\t{i}\t{r}\t{t}" for u, i, r, t in rows]
    (folder / f"{dataset}.inter").write_text("\n".join(lines) + "\n", encoding="utf-8")
    items = sorted({i for seq in sequences.values() for i in seq}, key=lambda s: int(s[1:]))
    item_lines = ["item_id:token\tmovie_title:token_seq\trelease_year:token\tclass:token_seq"]
    item_lines += [f"{i}\tFilm Number {i[1:]}\t{1990 + int(i[1:]) % 10}\t{'Drama' if int(i[1:]) % 2 else 'Comedy Action'}"
                   for i in items]
    (folder / f"{dataset}.item").write_text("\n".join(item_lines) + "\n", encoding="utf-8")
    return folder


def tiny_data_config(root: str | Path) -> dict:
    """`data` config (Hydra style) for the log written into `root`."""
    write_atomic(root)
    return {"_target_": "encdec_tasks.recommendation.data.AtomicFiles", "root": str(root), "dataset": "tiny"}


# nothing to shrink: the tiny catalogue is already small
TINY_TASK_OVERRIDES: list[str] = []
