"""Batches of similar-length examples under a token budget (fairseq's `max_tokens`)."""

from __future__ import annotations

import random
from typing import Iterator, Sequence

from encdec.errors import ConfigError


class TokenBudgetBatchSampler:
    """Sorts examples by length, cuts batches whose padded size (longest x count) stays
    within `max_tokens`, and shuffles the order of batches every epoch.

    Sharding across processes takes every world_size-th batch, so each rank sees whole
    batches and DDP needs no DistributedSampler: training drops the last few batches so every
    rank has as many, evaluation keeps them all. Deterministic given (seed, epoch).
    """

    def __init__(
        self,
        lengths: Sequence[int],
        max_tokens: int,
        max_sentences: int | None = None,
        shuffle: bool = True,
        seed: int = 0,
        rank: int = 0,
        world_size: int = 1,
    ):
        if max_tokens < max(lengths, default=0):
            raise ConfigError(
                f"loader.max_tokens={max_tokens} is smaller than the longest example "
                f"({max(lengths)} tokens); raise it or cap lengths in the task config"
            )
        self.lengths, self.max_tokens, self.max_sentences = list(lengths), max_tokens, max_sentences
        self.shuffle, self.seed, self.rank, self.world_size = shuffle, seed, rank, world_size
        self.epoch = 0
        self._skip: tuple[int, int] | None = None  # (epoch, batches) to skip once, on resume

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def _batches(self) -> list[list[int]]:
        rng = random.Random(self.seed + self.epoch)
        # a random tie-break among equal lengths varies batch composition between epochs
        keys = [(n, rng.random()) if self.shuffle else (n, i) for i, n in enumerate(self.lengths)]
        order = sorted(range(len(self.lengths)), key=keys.__getitem__)
        batches, current, longest = [], [], 0
        for idx in order:
            longest_if_added = max(longest, self.lengths[idx])
            too_many = self.max_sentences is not None and len(current) >= self.max_sentences
            if current and (longest_if_added * (len(current) + 1) > self.max_tokens or too_many):
                batches.append(current)
                current, longest_if_added = [], self.lengths[idx]
            current.append(idx)
            longest = longest_if_added
        if current:
            batches.append(current)
        if self.shuffle:
            rng.shuffle(batches)
        if not self.shuffle:  # evaluation: every example is scored, ranks may differ by one batch
            return batches[self.rank :: self.world_size]
        # training: equal batch counts on every rank, so no rank waits at a gradient all-reduce
        if len(batches) < self.world_size:
            raise ConfigError(
                f"{len(batches)} training batch(es) for {self.world_size} processes: "
                "lower loader.max_tokens or use fewer devices"
            )
        usable = len(batches) - len(batches) % self.world_size
        return batches[self.rank : usable : self.world_size]

    def resume_at(self, epoch: int, consumed: int) -> None:
        """The next pass over `epoch` starts after its first `consumed` batches (a run resumed
        mid-epoch); `len()` stays the whole epoch's, as the training loop counts from there."""
        self._skip = (epoch, consumed)

    def __iter__(self) -> Iterator[list[int]]:
        # A generator: the batch order is computed at the first batch, after the loop has
        # called set_epoch, not when the loader's iterator is created.
        batches = self._batches()
        if self._skip is not None and self._skip[0] == self.epoch:
            batches = batches[self._skip[1] :]
        self._skip = None
        yield from batches

    def __len__(self) -> int:
        return len(self._batches())
