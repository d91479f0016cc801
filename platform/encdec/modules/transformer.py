"""A pre-norm Transformer encoder and decoder (with an incremental key/value cache).

Dropout defaults follow fairseq and BART: on residual branches only (attention and
activation dropout 0). On CPU each dropout mask costs a Bernoulli draw per element, so the
extra ones took ~8% of a bf16 training step in a torch.profiler run on this 2-core machine.

Attention is written out as plain matmul + softmax: on CPU at our sequence lengths this is
the fastest path (PyTorch's fused CPU flash kernel is ~4x slower on the backward pass for
15-50 token sequences, per the project's architecture notes; in bench/RESULTS.md it is ~22%
of HF BART's bf16 step), and it reads in one sitting.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from encdec.modules.copy import CopyAttention, CopyGate, check_copy_vocabulary, copy_mixture
from encdec.modules.embeddings import TokenEmbedding
from encdec.types import EncoderOutput

NEG_INF = float("-inf")


def attend(q: Tensor, k: Tensor, v: Tensor, keep: Tensor | None, dropout: float) -> Tensor:
    """q [B,H,T,d], k/v [B,H,S,d], keep broadcastable to [B,H,T,S] (True = attend)."""
    scores = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(q.size(-1)))
    if keep is not None:
        scores = scores.masked_fill(~keep, NEG_INF)
    weights = F.softmax(scores, dim=-1, dtype=torch.float32).to(q.dtype)
    weights = F.dropout(weights, p=dropout, training=dropout > 0)
    return weights @ v


class MultiHeadAttention(nn.Module):
    def __init__(self, d_model: int, heads: int, dropout: float = 0.0):
        super().__init__()
        if d_model % heads:
            raise ValueError(f"d_model ({d_model}) must be divisible by heads ({heads})")
        self.heads, self.dropout = heads, dropout
        self.q = nn.Linear(d_model, d_model)
        self.kv = nn.Linear(d_model, 2 * d_model)
        self.out = nn.Linear(d_model, d_model)

    def split(self, x: Tensor) -> Tensor:  # [B,T,D] -> [B,H,T,d]
        b, t, d = x.shape
        return x.view(b, t, self.heads, d // self.heads).transpose(1, 2)

    def keys_values(self, x: Tensor) -> tuple[Tensor, Tensor]:
        k, v = self.kv(x).chunk(2, dim=-1)
        return self.split(k), self.split(v)

    def forward(self, x: Tensor, k: Tensor, v: Tensor, keep: Tensor | None, group: int = 1) -> Tensor:
        """x [N,T,D]; k/v [N/group,H,S,d]. With group > 1, each run of `group` rows of x
        (the beams of one source) attends to one shared k/v: the beams become extra query
        positions, so per-source keys are neither copied per beam nor reordered."""
        p = self.dropout if self.training else 0.0
        q = self.split(self.q(x))
        n, heads, t, d = q.shape
        if group > 1:
            q = q.view(n // group, group, heads, t, d).transpose(1, 2).reshape(n // group, heads, group * t, d)
        h = attend(q, k, v, keep, p)
        if group > 1:
            h = h.view(n // group, heads, group, t, d).transpose(1, 2).reshape(n, heads, t, d)
        return self.out(h.transpose(1, 2).reshape(n, t, -1))


class FeedForward(nn.Sequential):
    def __init__(self, d_model: int, ffn: int, activation_dropout: float = 0.0):
        super().__init__(
            nn.Linear(d_model, ffn), nn.ReLU(), nn.Dropout(activation_dropout), nn.Linear(ffn, d_model)
        )


class EncoderLayer(nn.Module):
    def __init__(self, d_model: int, heads: int, ffn: int, dropout: float, attention_dropout: float = 0.0, activation_dropout: float = 0.0):
        super().__init__()
        self.norm1, self.norm2 = nn.LayerNorm(d_model), nn.LayerNorm(d_model)
        self.attn = MultiHeadAttention(d_model, heads, attention_dropout)
        self.ffn = FeedForward(d_model, ffn, activation_dropout)
        self.drop = nn.Dropout(dropout)

    def forward(self, x: Tensor, keep: Tensor | None) -> Tensor:
        h = self.norm1(x)
        x = x + self.drop(self.attn(h, *self.attn.keys_values(h), keep))
        return x + self.drop(self.ffn(self.norm2(x)))


class TransformerEncoder(nn.Module):
    """Token ids -> contextual memory. Reads `src` [B,S] ids and `src_mask` [B,S] bool."""
    reads = "tokens"  # what its `src` holds: checked against the task before any work

    def __init__(
        self,
        vocab_size: int,
        d_model: int = 256,
        layers: int = 3,
        heads: int = 4,
        ffn: int = 1024,
        dropout: float = 0.1,
        attention_dropout: float = 0.0,
        activation_dropout: float = 0.0,
        pad_id: int = 0,
    ):
        super().__init__()
        self.d_model = d_model
        self.embed = TokenEmbedding(vocab_size, d_model, pad_id, dropout)
        self.layers = nn.ModuleList(
            EncoderLayer(d_model, heads, ffn, dropout, attention_dropout, activation_dropout)
            for _ in range(layers)
        )
        self.norm = nn.LayerNorm(d_model)

    def forward(self, src: Tensor, src_mask: Tensor) -> EncoderOutput:
        x = self.embed(src)
        keep = src_mask[:, None, None, :]
        for layer in self.layers:
            x = layer(x, keep)
        return EncoderOutput(memory=self.norm(x), memory_mask=src_mask, src_ids=src)


class DecoderLayer(nn.Module):
    def __init__(self, d_model: int, heads: int, ffn: int, dropout: float, attention_dropout: float = 0.0, activation_dropout: float = 0.0):
        super().__init__()
        self.norm1, self.norm2, self.norm3 = (nn.LayerNorm(d_model) for _ in range(3))
        self.self_attn = MultiHeadAttention(d_model, heads, attention_dropout)
        self.cross_attn = MultiHeadAttention(d_model, heads, attention_dropout)
        self.ffn = FeedForward(d_model, ffn, activation_dropout)
        self.drop = nn.Dropout(dropout)

    def forward(self, x, cross_kv, memory_keep, causal=None, cache=None, group=1):
        """Returns the new hidden states and this layer's self-attention keys/values."""
        h = self.norm1(x)
        k, v = self.self_attn.keys_values(h)
        if cache is not None:
            k, v = torch.cat([cache[0], k], dim=2), torch.cat([cache[1], v], dim=2)
        x = x + self.drop(self.self_attn(h, k, v, causal))
        x = x + self.drop(self.cross_attn(self.norm2(x), *cross_kv, memory_keep, group))
        return x + self.drop(self.ffn(self.norm3(x))), (k, v)


class TransformerDecoder(nn.Module):
    """Causal decoder. `forward` teacher-forces a whole target; `step` decodes one token.

    The incremental state holds, per layer, the cross-attention keys/values (computed once
    from the memory) and the growing self-attention keys/values.

    copy=True: the output is the log-probability of a pointer-generator mixture (see
    modules/copy.py) whose copy distribution is one extra attention head from the final
    states to the memory and whose gate reads [state; copy context].
    """

    def __init__(
        self,
        vocab_size: int,
        d_model: int = 256,
        layers: int = 3,
        heads: int = 4,
        ffn: int = 1024,
        dropout: float = 0.1,
        attention_dropout: float = 0.0,
        activation_dropout: float = 0.0,
        pad_id: int = 0,
        tie_embeddings: bool = True,
        copy: bool = False,
    ):
        super().__init__()
        self.d_model, self.vocab_size = d_model, vocab_size
        self.embed = TokenEmbedding(vocab_size, d_model, pad_id, dropout)
        self.layers = nn.ModuleList(
            DecoderLayer(d_model, heads, ffn, dropout, attention_dropout, activation_dropout)
            for _ in range(layers)
        )
        self.norm = nn.LayerNorm(d_model)
        self.out = nn.Linear(d_model, vocab_size, bias=False)
        if tie_embeddings:
            self.out.weight = self.embed.weight
        self.copy_attn = CopyAttention(d_model) if copy else None
        self.copy_gate = CopyGate(2 * d_model) if copy else None

    def _copy_output(self, x: Tensor, copy: dict, group: int = 1) -> Tensor:
        """x [N,T,D] final (normed) states -> mixture log-probs [N,T,V]."""
        context, weights = self.copy_attn(x, copy["keys"], copy["memory"], copy["mask"], group)
        src_ids = copy["src_ids"].repeat_interleave(group, 0) if group > 1 else copy["src_ids"]
        return copy_mixture(self.out(x), self.copy_gate(x, context), weights, src_ids)

    def _copy_state(self, enc: EncoderOutput, every: int = 1) -> dict:
        return {
            "keys": self.copy_attn.prepare(enc.memory[::every]),
            "memory": enc.memory[::every],
            "mask": enc.memory_mask[::every],
            "src_ids": check_copy_vocabulary(enc.src_ids, self.vocab_size)[::every],
        }

    def _cross_kv(self, memory: Tensor) -> list[tuple[Tensor, Tensor]]:
        # contiguous once here, instead of a copy inside every attention matmul
        return [
            tuple(t.contiguous() for t in layer.cross_attn.keys_values(memory)) for layer in self.layers
        ]

    def forward(self, tgt_in: Tensor, enc: EncoderOutput) -> Tensor:
        t = tgt_in.size(1)
        causal = torch.ones(t, t, dtype=torch.bool, device=tgt_in.device).tril()
        memory_keep = enc.memory_mask[:, None, None, :]
        x = self.embed(tgt_in)
        for layer, cross_kv in zip(self.layers, self._cross_kv(enc.memory)):
            x, _ = layer(x, cross_kv, memory_keep, causal=causal)
        if self.copy_attn is not None:
            return self._copy_output(self.norm(x), self._copy_state(enc))
        return self.out(self.norm(x))

    def init_state(self, enc: EncoderOutput) -> dict:
        g = enc.group_size  # rows of one source share its cross-attention keys/values
        copy = {} if self.copy_attn is None else {"copy": self._copy_state(enc, g)}
        return {
            **copy,
            "pos": 0,
            "group": g,
            "memory_keep": enc.memory_mask[::g, None, None, :],
            "cross": self._cross_kv(enc.memory[::g]),
            "self": [None] * len(self.layers),
        }

    def step(self, tokens: Tensor, state: dict) -> tuple[Tensor, dict]:
        x = self.embed(tokens[:, None], start=state["pos"])
        new_self = []
        for layer, cross_kv, cache in zip(self.layers, state["cross"], state["self"]):
            x, kv = layer(x, cross_kv, state["memory_keep"], cache=cache, group=state["group"])
            new_self.append(kv)
        if "copy" in state:
            logits = self._copy_output(self.norm(x), state["copy"], state["group"])[:, 0]
        else:
            logits = self.out(self.norm(x))[:, 0]
        return logits, {**state, "pos": state["pos"] + 1, "self": new_self}

    @staticmethod
    def reorder(state: dict, index: Tensor) -> dict:
        pick = lambda kv: tuple(t.index_select(0, index) for t in kv)  # noqa: E731
        reordered = {**state, "self": [None if kv is None else pick(kv) for kv in state["self"]]}
        g = state["group"]
        if g > 1:  # per-source tensors stay put; rows may only move within their source's group
            rows = torch.arange(index.numel(), device=index.device)
            if not torch.equal(torch.div(index, g, rounding_mode="floor"), torch.div(rows, g, rounding_mode="floor")):
                raise ValueError("reorder moved a row to another source's group (group_size > 1)")
            return reordered
        reordered["memory_keep"] = state["memory_keep"].index_select(0, index)
        reordered["cross"] = [pick(kv) for kv in state["cross"]]
        if "copy" in state:
            reordered["copy"] = {k: v.index_select(0, index) for k, v in state["copy"].items()}
        return reordered
