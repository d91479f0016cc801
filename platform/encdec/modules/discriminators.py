"""Sequence discriminators for adversarial text training: token ids [B, L] -> logit [B]
(log-odds that a sequence is real data).

`CNNTextClassifier` is the SeqGAN paper's discriminator (Kim-style CNN with max-over-time
pooling, a highway layer and dropout; filter sizes and numbers from the paper's synthetic-data
experiment). `EncoderClassifier` turns any core encoder into a discriminator with a
classification head over its pooled memory.
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from encdec.modules.rnn import masked_mean
from encdec.validation import accepted_parameters

def build_with_accepted(factory: Callable[..., nn.Module], **available: Any) -> nn.Module:
    """Call a (Hydra partial) factory with the data kwargs it accepts and was not given,
    like encdec.build.build_component does for encoders and decoders."""
    target = getattr(factory, "func", factory)
    params, takes_all = accepted_parameters(target)
    given = getattr(factory, "keywords", {}) or {}
    return factory(**{k: v for k, v in available.items() if (takes_all or k in params) and given.get(k) is None})


# Yu et al. 2017 (SeqGAN), synthetic-data discriminator: sizes 1..10, 15, 20
PAPER_FILTER_SIZES = (1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 15, 20)
PAPER_NUM_FILTERS = (100, 200, 200, 200, 200, 100, 100, 100, 100, 100, 160, 160)


class Highway(nn.Module):
    """y = t * relu(W x) + (1 - t) * x, t = sigmoid(W_t x + b_t) (Srivastava et al. 2015)."""

    def __init__(self, size: int, gate_bias: float = -2.0):
        super().__init__()
        self.proj, self.gate = nn.Linear(size, size), nn.Linear(size, size)
        nn.init.constant_(self.gate.bias, gate_bias)  # start close to the identity, as the paper's code

    def forward(self, x: Tensor) -> Tensor:
        t = torch.sigmoid(self.gate(x))
        return t * F.relu(self.proj(x)) + (1.0 - t) * x


class CNNTextClassifier(nn.Module):
    """Embedding -> parallel 1-D convolutions (ReLU, max over time) -> highway -> dropout
    -> linear logit. Sequences shorter than the widest filter are right-padded with pad_id.

    `l2_weight` is the paper's L2 penalty on the output layer (lambda 0.2 on tf.nn.l2_loss,
    i.e. half the squared norm), added by `regulariser()` to the discriminator loss.
    """

    def __init__(
        self,
        vocab_size: int,
        embed_dim: int = 64,
        filter_sizes: Sequence[int] = PAPER_FILTER_SIZES,
        num_filters: Sequence[int] = PAPER_NUM_FILTERS,
        dropout: float = 0.25,
        l2_weight: float = 0.2,
        pad_id: int = 0,
    ):
        super().__init__()
        if len(filter_sizes) != len(num_filters):
            raise ValueError(
                f"objective.discriminator: filter_sizes ({len(filter_sizes)}) and num_filters "
                f"({len(num_filters)}) must have the same length"
            )
        self.pad_id, self.l2_weight = pad_id, l2_weight
        self.min_len = max(filter_sizes)
        self.embed = nn.Embedding(vocab_size, embed_dim)
        self.convs = nn.ModuleList(nn.Conv1d(embed_dim, n, k) for k, n in zip(filter_sizes, num_filters))
        total = sum(num_filters)
        self.highway = Highway(total)
        self.drop = nn.Dropout(dropout)
        self.out = nn.Linear(total, 1)

    def forward(self, tokens: Tensor) -> Tensor:
        if tokens.size(1) < self.min_len:
            tokens = F.pad(tokens, (0, self.min_len - tokens.size(1)), value=self.pad_id)
        x = self.embed(tokens).transpose(1, 2)  # [B, E, L]
        pooled = torch.cat([F.relu(conv(x)).amax(dim=2) for conv in self.convs], dim=1)
        return self.out(self.drop(self.highway(pooled))).squeeze(-1)

    def regulariser(self) -> Tensor:
        return self.l2_weight * 0.5 * (self.out.weight.pow(2).sum() + self.out.bias.pow(2).sum())


class EncoderClassifier(nn.Module):
    """Any core encoder (`forward(src, src_mask) -> EncoderOutput`) + masked-mean pooling +
    a linear logit: e.g. a Transformer or bidirectional-LSTM discriminator. `encoder` may be
    a factory (Hydra partial); it then gets the vocabulary size and pad id."""

    def __init__(
        self,
        encoder: nn.Module | Callable[..., nn.Module],
        d_model: int,
        vocab_size: int | None = None,
        pad_id: int = 0,
        dropout: float = 0.0,
    ):
        super().__init__()
        if not isinstance(encoder, nn.Module):
            encoder = build_with_accepted(encoder, vocab_size=vocab_size, pad_id=pad_id)
        self.encoder, self.pad_id = encoder, pad_id
        self.drop = nn.Dropout(dropout)
        self.out = nn.Linear(d_model, 1)

    def forward(self, tokens: Tensor) -> Tensor:
        mask = tokens != self.pad_id
        mask[:, 0] = True  # an all-pad row still has one position to pool
        enc = self.encoder(tokens, mask)
        return self.out(self.drop(masked_mean(enc.memory, enc.memory_mask))).squeeze(-1)

    def regulariser(self) -> Tensor:
        return self.out.weight.new_zeros(())
