"""`encoder=none`: a learned constant memory, so any core decoder serves as a language model.

Unconditional generation has no source; the decoders still expect an EncoderOutput. One
learned vector is the whole memory (and the summary that initialises recurrent decoders):
attention over it returns that vector, so the decoder is a plain language model with a
learned start state. Whatever `src` holds (a dummy token, a prefix) is ignored.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from encdec.types import EncoderOutput


class ConstantEncoder(nn.Module):
    reads = "anything"  # ignores its `src`: pairs with every task
    def __init__(self, d_model: int = 256):
        super().__init__()
        self.d_model = d_model
        self.vector = nn.Parameter(torch.randn(d_model) * 0.02)

    def forward(self, src: Tensor, src_mask: Tensor | None = None) -> EncoderOutput:
        rows = src.size(0)
        memory = self.vector.expand(rows, 1, self.d_model)
        return EncoderOutput(
            memory=memory,
            memory_mask=torch.ones(rows, 1, dtype=torch.bool, device=src.device),
            summary=memory[:, 0],
        )
