"""Recurrent-decoder attention: additive (Bahdanau) and dot / general (Luong).

Each scorer may precompute a key projection of the memory once per source (`prepare`), so a
decoding step costs one query projection and one weighted sum.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn


class _Attention(nn.Module):
    def prepare(self, memory: Tensor) -> Tensor:
        return memory

    def score(self, query: Tensor, keys: Tensor) -> Tensor:  # -> [B, S]
        raise NotImplementedError

    def forward(
        self, query: Tensor, keys: Tensor, memory: Tensor, memory_mask: Tensor
    ) -> tuple[Tensor, Tensor]:
        """query [B,Q], keys = prepare(memory), memory [B,S,D] -> (context [B,D], weights [B,S])."""
        scores = self.score(query, keys).masked_fill(~memory_mask, float("-inf"))
        weights = F.softmax(scores, dim=-1, dtype=torch.float32).to(memory.dtype)
        return torch.bmm(weights.unsqueeze(1), memory).squeeze(1), weights


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
        return self.v(torch.tanh(keys + self.w_q(query).unsqueeze(1))).squeeze(-1)


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
        return torch.bmm(keys, query.unsqueeze(-1)).squeeze(-1) * self.scale


class GeneralAttention(_Attention):
    """Luong et al. (2015) "general": q^T W k, with W k precomputed per source."""

    def __init__(self, query_dim: int, key_dim: int):
        super().__init__()
        self.w = nn.Linear(key_dim, query_dim, bias=False)
        self.scale = query_dim**-0.5

    def prepare(self, memory: Tensor) -> Tensor:
        return self.w(memory)

    def score(self, query: Tensor, keys: Tensor) -> Tensor:
        return torch.bmm(keys, query.unsqueeze(-1)).squeeze(-1) * self.scale
