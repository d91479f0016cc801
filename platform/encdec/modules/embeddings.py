"""Token embeddings with sinusoidal positions (no learned length limit)."""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn


def sinusoidal_table(max_len: int, dim: int) -> Tensor:
    position = torch.arange(max_len).unsqueeze(1)
    div = torch.exp(torch.arange(0, dim, 2) * (-math.log(10000.0) / dim))
    table = torch.zeros(max_len, dim)
    table[:, 0::2] = torch.sin(position * div)
    table[:, 1::2] = torch.cos(position * div[: dim // 2])
    return table


class TokenEmbedding(nn.Module):
    """Scaled token embedding plus optional sinusoidal position, then dropout."""

    def __init__(
        self,
        vocab_size: int,
        dim: int,
        pad_id: int = 0,
        dropout: float = 0.0,
        positional: bool = True,
        max_len: int = 1024,
    ):
        super().__init__()
        self.embed = nn.Embedding(vocab_size, dim, padding_idx=pad_id)
        nn.init.normal_(self.embed.weight, std=dim**-0.5)
        with torch.no_grad():
            self.embed.weight[pad_id].zero_()
        self.scale = math.sqrt(dim)
        self.dropout = nn.Dropout(dropout)
        self.positional = positional
        if positional:
            self.register_buffer("positions", sinusoidal_table(max_len, dim), persistent=False)

    @property
    def weight(self) -> nn.Parameter:
        return self.embed.weight

    def forward(self, ids: Tensor, start: int = 0) -> Tensor:
        x = self.embed(ids) * self.scale
        if self.positional:
            end = start + ids.size(1)
            if end > self.positions.size(0):
                self.positions = sinusoidal_table(2 * end, x.size(-1)).to(self.positions)
            x = x + self.positions[start:end]
        return self.dropout(x)
