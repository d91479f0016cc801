"""The evaluation protocol: chronological per-user sequences, minimum-count filters,
leave-one-out splits and every-prefix training examples.

It follows RecBole 1.2.1's sequential setting (eval_args split LS valid_and_test, order TO)
so figures compare with it: interactions are sorted by timestamp per user, stably (ties keep
file order); the last item of each user is the test target, the second to last the
validation target; every earlier item is a training target with the (at most max_history)
items before it as history, RecBole's sequential data augmentation.
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass

from encdec_tasks.recommendation.data import Interactions

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Case:
    """One prediction: a user's history (oldest first) and the item(s) that came next."""

    user: str
    history: tuple[str, ...]
    targets: tuple[str, ...]


def filter_min_counts(log_: Interactions, min_user_count: int = 0, min_item_count: int = 0) -> Interactions:
    """Drop interactions of users / items with fewer than the minimum, repeated until both
    hold (removing items can push a user under the minimum, as in RecBole's filter)."""
    keep = list(range(len(log_)))
    while True:
        users = Counter(log_.users[i] for i in keep)
        items = Counter(log_.items[i] for i in keep)
        kept = [
            i for i in keep
            if users[log_.users[i]] >= min_user_count and items[log_.items[i]] >= min_item_count
        ]
        if len(kept) == len(keep):
            break
        keep = kept
    if len(keep) < len(log_):
        log.info("min-count filters kept %d of %d interactions", len(keep), len(log_))
    return Interactions(
        users=[log_.users[i] for i in keep], items=[log_.items[i] for i in keep],
        times=[log_.times[i] for i in keep], titles=log_.titles, genres=log_.genres,
    )


def chronological_sequences(log_: Interactions) -> dict[str, list[str]]:
    """user -> items ordered by timestamp; equal timestamps keep their file order."""
    order = sorted(range(len(log_)), key=lambda i: log_.times[i])  # sorted() is stable
    sequences: dict[str, list[str]] = {}
    for i in order:
        sequences.setdefault(log_.users[i], []).append(log_.items[i])
    return sequences


def leave_one_out(sequences: dict[str, list[str]], max_history: int, target_len: int = 1) -> dict[str, list[Case]]:
    """train / val / test cases. A user with fewer than 3 items has no validation and test
    case: all its prefixes go to training. target_len > 1 makes training targets the next
    target_len items (within the training part); val/test keep the single next item."""
    if max_history < 1 or target_len < 1:
        raise ValueError(f"task.adapter.max_history and target_len must be >= 1, got {max_history}, {target_len}")
    splits: dict[str, list[Case]] = {"train": [], "val": [], "test": []}
    for user, seq in sequences.items():
        n = len(seq)
        end = n - 2 if n >= 3 else n  # training part
        for t in range(1, end):
            splits["train"].append(
                Case(user, tuple(seq[max(0, t - max_history) : t]), tuple(seq[t : min(t + target_len, end)]))
            )
        if n >= 3:
            splits["val"].append(Case(user, tuple(seq[max(0, n - 2 - max_history) : n - 2]), (seq[n - 2],)))
            splits["test"].append(Case(user, tuple(seq[max(0, n - 1 - max_history) : n - 1]), (seq[n - 1],)))
    return splits


@dataclass(frozen=True)
class Window:
    """A stretch of a user's training sequence, encoded once, with a target for each of its
    positions: the item(s) after that position, or () for a position that is only context."""

    user: str
    items: tuple[str, ...]
    targets: tuple[tuple[str, ...], ...]


def training_windows(sequences: dict[str, list[str]], max_history: int, stride: int,
                     target_len: int = 1) -> list[Window]:
    """The training targets of `leave_one_out`, each exactly once, grouped into windows of at
    most max_history items that a causal encoder reads in one pass.

    The first window of a user covers its first max_history targets with their full
    histories; each next window advances by `stride` targets and keeps the max_history items
    before its last target, so every target sees between max_history - stride + 1 and
    max_history items of history (stride 1: exactly the every-prefix histories, at the
    every-prefix cost; stride = max_history: no overlap, the cheapest).
    """
    if not 1 <= stride <= max_history:
        raise ValueError(f"task.adapter.train_stride must be in [1, max_history={max_history}], got {stride}")
    windows = []
    for user, seq in sequences.items():
        end = len(seq) - 2 if len(seq) >= 3 else len(seq)  # training part, as in leave_one_out

        def next_items(t: int) -> tuple[str, ...]:
            return tuple(seq[t : min(t + target_len, end)])

        if end < 2:
            continue
        last = min(max_history, end - 1)
        windows.append(Window(user, tuple(seq[:last]), tuple(next_items(t) for t in range(1, last + 1))))
        first = last + 1
        while first <= end - 1:
            last = min(first + stride - 1, end - 1)
            start = last - max_history
            targets = tuple(
                next_items(start + p + 1) if start + p + 1 >= first else () for p in range(max_history)
            )
            windows.append(Window(user, tuple(seq[start:last]), targets))
            first = last + 1
    return windows
