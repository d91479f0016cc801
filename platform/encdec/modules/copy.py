"""Copy attention (pointer-generator, See et al. 2017) shared by the RNN and Transformer decoders.

    p(w) = g * softmax(logits)(w) + (1 - g) * sum_{i : src_i = w} a_i

with a_i the decoder's attention over the source positions and g = sigmoid(w . features) a
learned per-step gate. A decoder with copy therefore returns log-probabilities, not logits:
the searches' log_softmax and MLE's token_nll leave them unchanged (log_softmax(log p) =
log p when p sums to 1), so nothing downstream needs to know.

Unseen words: source and target share one vocabulary (a joint subword vocabulary, or the
pretrained encoder's WordPiece vocabulary), whose pieces spell any word down to characters.
A name never seen in training is thus made of in-vocabulary pieces whose output embeddings
were never (or barely) trained as targets: generation alone cannot produce it, but the copy
term puts the attention mass on exactly those source ids. No per-batch extended vocabulary
(See et al.'s source-OOV ids) is needed, so outputs stay plain token ids that any adapter's
`decode(tokens)` understands without the batch.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

# probabilities are floored before the log: a token neither generated nor copied would
# otherwise give -inf, and label smoothing averages log p over the whole vocabulary
MIN_PROB = 1e-10


def check_copy_vocabulary(src_ids: Tensor | None, vocab_size: int) -> Tensor:
    """Copy needs source ids drawn from the decoder's own vocabulary."""
    if src_ids is None:
        raise ValueError(
            "decoder.copy=true needs the encoder to return src_ids (token encoders do; image "
            "encoders cannot be copied from): set decoder.copy=false"
        )
    if src_ids.numel() and int(src_ids.max()) >= vocab_size:
        raise ValueError(
            f"decoder.copy=true needs one vocabulary for source and target, but a source id "
            f"({int(src_ids.max())}) exceeds the decoder's vocabulary ({vocab_size}): use a joint "
            "tokenizer (e.g. task.adapter.tokenizer.joint=true) or decoder.copy=false"
        )
    return src_ids


def copy_mixture(logits: Tensor, gate_logit: Tensor, attention: Tensor, src_ids: Tensor) -> Tensor:
    """Log-probabilities of the pointer-generator mixture.

    logits [B,T,V] (or [B,V]); gate_logit [B,T,1]: sigmoid gives the generation weight g;
    attention [B,T,S] over source positions (zero on padding); src_ids [B,S].
    """
    squeeze = logits.dim() == 2
    if squeeze:
        logits, gate_logit, attention = logits[:, None], gate_logit[:, None], attention[:, None]
    p_gen = torch.sigmoid(gate_logit.float())
    p_vocab = F.softmax(logits.float(), dim=-1)
    index = src_ids[:, None, :].expand(-1, attention.size(1), -1)
    p_copy = torch.zeros_like(p_vocab).scatter_add_(-1, index, attention.float())
    logp = torch.log((p_gen * p_vocab + (1.0 - p_gen) * p_copy).clamp_min(MIN_PROB))
    return logp[:, 0] if squeeze else logp


class CopyGate(nn.Module):
    """g = sigmoid(W [features]): the weight of generating over copying, per step."""

    def __init__(self, in_dim: int):
        super().__init__()
        self.proj = nn.Linear(in_dim, 1)

    def forward(self, *features: Tensor) -> Tensor:
        return self.proj(torch.cat(features, dim=-1))


class CopyAttention(nn.Module):
    """Single-head scaled dot-product attention from decoder states to the memory, used by
    the Transformer decoder as its pointer (its cross-attention is multi-head and fused in
    matmuls; a dedicated head keeps those layers untouched and is what OpenNMT does).

    `group` > 1: each run of `group` query rows (the beams of one source) shares one row of
    keys/memory, as in MultiHeadAttention.
    """

    def __init__(self, d_model: int):
        super().__init__()
        self.q = nn.Linear(d_model, d_model)
        self.k = nn.Linear(d_model, d_model)
        self.scale = 1.0 / math.sqrt(d_model)

    def prepare(self, memory: Tensor) -> Tensor:
        return self.k(memory).contiguous()

    def forward(self, x: Tensor, keys: Tensor, memory: Tensor, memory_mask: Tensor, group: int = 1):
        """x [N,T,D]; keys/memory [N/group,S,D]; memory_mask [N/group,S] ->
        (context [N,T,D], weights [N,T,S])."""
        n, t, d = x.shape
        q = self.q(x)
        if group > 1:
            q = q.reshape(n // group, group * t, d)
        scores = (q @ keys.transpose(1, 2)) * self.scale
        scores = scores.masked_fill(~memory_mask[:, None, :], float("-inf"))
        weights = F.softmax(scores, dim=-1, dtype=torch.float32).to(x.dtype)
        context = weights @ memory
        return context.reshape(n, t, d), weights.reshape(n, t, -1)
