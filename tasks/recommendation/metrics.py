"""Top-K metrics for next-item prediction with one relevant item per user.

Hand-written rather than torchmetrics' retrieval metrics: those score a full [queries x
items] score matrix with per-query indexes, while decoding hands the adapter ranked lists
(top-k ids); with a single relevant item every metric has a closed form in its rank r
(1-based): HR@K = [r <= K], NDCG@K = [r <= K] / log2(r + 1), MRR@K = [r <= K] / r, the
definitions RecBole 1.2.1 uses (Hit, NDCG, MRR), averaged over users.
"""

from __future__ import annotations

import math
import random
from typing import Sequence


def rank_of(target, ranked: Sequence) -> int | None:
    """1-based position of target in ranked, None when absent."""
    for position, item in enumerate(ranked, start=1):
        if item == target:
            return position
    return None


def hit(rank: int | None, k: int) -> float:
    return 1.0 if rank is not None and rank <= k else 0.0


def ndcg(rank: int | None, k: int) -> float:
    return 1.0 / math.log2(rank + 1) if rank is not None and rank <= k else 0.0


def mrr(rank: int | None, k: int) -> float:
    return 1.0 / rank if rank is not None and rank <= k else 0.0


METRICS = {"hr": hit, "ndcg": ndcg, "mrr": mrr}


def ranking_metrics(ranks: list[int | None], ks: Sequence[int]) -> dict[str, float]:
    """{'hr@5': .., 'ndcg@5': .., 'mrr@5': .., ...} averaged over the ranks of all users."""
    n = max(len(ranks), 1)
    return {f"{name}@{k}": sum(fn(r, k) for r in ranks) / n for k in ks for name, fn in METRICS.items()}


def sampled_rank(target, ranked: Sequence, negatives: Sequence) -> int | None:
    """Rank of target among itself and `negatives` given a full ranking `ranked`; None when
    the ranking misses the target or a negative (it is then not a full ranking)."""
    position = {item: i for i, item in enumerate(ranked)}
    if target not in position or any(n not in position for n in negatives):
        return None
    return 1 + sum(position[n] < position[target] for n in negatives)


def sample_negatives(catalog: Sequence, exclude: set, count: int, rng: random.Random) -> list:
    """`count` distinct items drawn uniformly from catalog minus exclude (a user's own items)."""
    pool = [item for item in catalog if item not in exclude]
    return rng.sample(pool, min(count, len(pool)))
