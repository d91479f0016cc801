"""Logits processors: tiny composable functions on [N, V] log-probabilities.

Each takes (logprobs, tokens_so_far [N, t]) and returns log-probabilities. Search
strategies chain them; none of them knows which decoder produced the scores. Bans write in
place: the searches hand them a fresh log-softmax they own, and a [rows x vocab] copy per
step per ban is measurable in decoding (bench/RESULTS.md).
"""

from __future__ import annotations

import torch
from torch import Tensor

NEG_INF = float("-inf")


def ban_tokens(ids: list[int]):
    """Never generate these tokens (padding: a pad inside a hypothesis reads as its end)."""

    def process(logprobs: Tensor, tokens: Tensor) -> Tensor:
        logprobs[:, ids] = NEG_INF
        return logprobs

    return process


def ban_eos_before(min_len: int, eos_id: int):
    """No EOS until `min_len` tokens (EOS excluded) have been generated."""

    def process(logprobs: Tensor, tokens: Tensor) -> Tensor:
        generated = tokens.size(1) - 1  # tokens starts with BOS
        if generated < min_len:
            logprobs[:, eos_id] = NEG_INF
        return logprobs

    return process


def no_repeat_ngram(n: int):
    """Forbid any token that would complete an n-gram already present in the hypothesis."""

    def process(logprobs: Tensor, tokens: Tensor) -> Tensor:
        generated = tokens[:, 1:]
        t = generated.size(1)
        if n <= 0 or t < n:
            return logprobs
        if n == 1:
            return logprobs.scatter(1, generated, NEG_INF)
        grams = generated.unfold(1, n, 1)  # [N, t-n+1, n]
        prefix = generated[:, t - n + 1 :]  # the last n-1 tokens
        match = (grams[:, :, :-1] == prefix[:, None, :]).all(-1)  # [N, t-n+1]
        banned = torch.where(match, grams[:, :, -1], torch.full_like(grams[:, :, -1], -1))
        rows, cols = (banned >= 0).nonzero(as_tuple=True)
        logprobs = logprobs.clone()
        logprobs[rows, banned[rows, cols]] = NEG_INF
        return logprobs

    return process


def temperature(value: float):
    if value <= 0:
        raise ValueError(f"decoding.temperature must be > 0, got {value}")

    def process(logprobs: Tensor, tokens: Tensor) -> Tensor:
        return torch.log_softmax(logprobs / value, dim=-1)

    return process


def top_k(k: int):
    def process(logprobs: Tensor, tokens: Tensor) -> Tensor:
        if k <= 0 or k >= logprobs.size(-1):
            return logprobs
        kth = logprobs.topk(k, dim=-1).values[:, -1:]
        return logprobs.masked_fill(logprobs < kth, NEG_INF)

    return process


def top_p(p: float):
    """Nucleus: keep the smallest set of tokens whose probability mass reaches p.

    The most likely token always survives, whatever p.
    """

    def process(logprobs: Tensor, tokens: Tensor) -> Tensor:
        if p >= 1.0:
            return logprobs
        sorted_lp, order = logprobs.sort(dim=-1, descending=True)
        probs = sorted_lp.softmax(-1)
        # mass of the strictly more likely tokens (an exclusive cumsum, no cancellation error)
        mass_before = torch.cat([torch.zeros_like(probs[:, :1]), probs[:, :-1].cumsum(-1)], dim=-1)
        drop_sorted = mass_before >= p
        drop_sorted[:, 0] = False
        drop = drop_sorted.scatter(1, order, drop_sorted)
        return logprobs.masked_fill(drop, NEG_INF)

    return process


def chain(processors):
    def process(logprobs: Tensor, tokens: Tensor) -> Tensor:
        for fn in processors:
            logprobs = fn(logprobs, tokens)
        return logprobs

    return process
