"""Full ranking: the first decoding step's scores over the whole vocabulary, best first.

For next-item recommendation the first step of a decoder scores every item, so ranking all
items is one `step` and a top-k; beam search (search.py) over the same decoder gives n-best
lists or sequences of future items instead.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from encdec.decoding.search import NEG_INF, Hypotheses, Search


def exclude_source_ids(src_ids: Tensor, src_mask: Tensor | None):
    """A logits processor that bans every (real) source token: already-seen items."""

    def process(logprobs: Tensor, tokens: Tensor) -> Tensor:
        ids = src_ids if src_mask is None else src_ids.masked_fill(~src_mask, 0)
        banned = torch.zeros_like(logprobs, dtype=torch.bool).scatter_(1, ids, True)
        if src_mask is not None:  # position 0 stood in for padding: unban it unless it is real
            real_zero = ((src_ids == 0) & src_mask).any(1)
            banned[:, 0] = real_zero
        return logprobs.masked_fill(banned, NEG_INF)

    return process


class TopKRanking(Search):
    """Returns one hypothesis per source: the k best tokens of the first step, best first.

    k: list length (null = every token that is not banned: a full ranking).
    exclude_source: never rank a token of the source (an item the user already has).
    The special tokens (BOS, EOS, pad) are never ranked. Tokens are [B, 1, k], padded where
    fewer than k tokens are allowed; the score is the log-probability of the top-ranked token.
    """

    def __init__(self, k: int | None = 20, exclude_source: bool = False, **kwargs):
        super().__init__(**kwargs)
        if k is not None and k < 1:
            raise ValueError(f"decoding.k must be >= 1 (or null for a full ranking), got {k}")
        self.k, self.exclude_source = k, exclude_source

    def search(self, decoder, enc, bos, eos, pad) -> Hypotheses:
        rows, device = enc.memory.size(0), enc.memory.device
        state = decoder.init_state(enc)
        logits, _ = decoder.step(torch.full((rows,), bos, dtype=torch.long, device=device), state)
        logprobs = F.log_softmax(logits.float(), dim=-1)
        specials = sorted({bos, eos, pad})
        logprobs[:, specials] = NEG_INF
        if self.exclude_source and enc.src_ids is not None:
            logprobs = exclude_source_ids(enc.src_ids, enc.memory_mask)(logprobs, None)
        allowed = logprobs.size(-1) - len(specials)
        k = allowed if self.k is None else min(self.k, allowed)
        scores, tokens = logprobs.topk(k, dim=-1)  # sorted, best first
        # banned tokens only fill up a list longer than what is left: they read as padding
        tokens = tokens.masked_fill(scores == NEG_INF, pad)
        return Hypotheses(tokens[:, None, :], scores[:, :1])
