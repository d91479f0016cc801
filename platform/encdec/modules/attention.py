"""Recurrent-decoder attention: additive (Bahdanau) and dot / general (Luong).

Each scorer may precompute a key projection of the memory once per source (`prepare`), so a
decoding step costs one query projection and one weighted sum. Queries come in groups that
share one memory (the beams of one source): the memory is neither copied per beam nor
reordered when beams move.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn


class _Attention(nn.Module):
    def prepare(self, memory: Tensor) -> Tensor:
        return memory

    def score(self, query: Tensor, keys: Tensor) -> Tensor:
        """query [B,G,Q] (G queries per memory), keys [B,S,K] -> scores [B,G,S]."""
        raise NotImplementedError

    def forward(
        self, query: Tensor, keys: Tensor, memory: Tensor, memory_mask: Tensor, group: int = 1
    ) -> tuple[Tensor, Tensor]:
        """query [N,Q]; keys = prepare(memory), memory [N/group,S,D], memory_mask [N/group,S]:
        each run of `group` query rows attends to one memory -> (context [N,D], weights [N,S])."""
        n = query.size(0)
        scores = self.score(query.view(n // group, group, -1), keys)
        scores = scores.masked_fill(~memory_mask[:, None, :], float("-inf"))
        weights = F.softmax(scores, dim=-1, dtype=torch.float32).to(memory.dtype)
        return torch.bmm(weights, memory).view(n, -1), weights.view(n, -1)


class AdditiveAttention(_Attention):
    """Bahdanau et al. (2015): v^T tanh(W_q q + W_k k)."""

    def __init__(self, query_dim: int, key_dim: int, attn_dim: int | None = None):
        super().__init__()
        attn_dim = attn_dim or key_dim
        self.w_q = nn.Linear(query_dim, attn_dim, bias=False)
        self.w_k = nn.Linear(key_dim, attn_dim)
        self.v = nn.Linear(attn_dim, 1, bias=False)

    def prepare(self, memory: Tensor) -> Tensor:
        return self.w_k(memory)

    def score(self, query: Tensor, keys: Tensor) -> Tensor:
        return self.v(torch.tanh(keys[:, None] + self.w_q(query)[:, :, None])).squeeze(-1)


class DotAttention(_Attention):
    """Luong et al. (2015) "dot": q . k, scaled by 1/sqrt(d); needs query_dim == key_dim."""

    def __init__(self, query_dim: int, key_dim: int):
        super().__init__()
        if query_dim != key_dim:
            raise ValueError(
                f"dot attention needs equal query and key sizes, got {query_dim} and {key_dim}; "
                "use decoder.attention=general or make decoder.hidden_size equal model.d_model"
            )
        self.scale = key_dim**-0.5

    def score(self, query: Tensor, keys: Tensor) -> Tensor:
        return torch.bmm(query, keys.transpose(1, 2)) * self.scale


class GeneralAttention(_Attention):
    """Luong et al. (2015) "general": q^T W k, with W k precomputed per source."""

    def __init__(self, query_dim: int, key_dim: int):
        super().__init__()
        self.w = nn.Linear(key_dim, query_dim, bias=False)
        self.scale = query_dim**-0.5

    def prepare(self, memory: Tensor) -> Tensor:
        return self.w(memory)

    def score(self, query: Tensor, keys: Tensor) -> Tensor:
        return torch.bmm(query, keys.transpose(1, 2)) * self.scale
