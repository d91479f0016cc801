"""A pre-norm Transformer encoder and decoder (with an incremental key/value cache).

Dropout defaults follow fairseq and BART: on residual branches only (attention and
activation dropout 0). On CPU each dropout mask costs a Bernoulli draw per element, so the
extra ones took ~8% of a bf16 training step in a torch.profiler run on a 2-core CPU.

Attention backends (`attention_backend`): `math` is plain matmul + softmax, the default: on
CPU at our sequence lengths it is the fastest path (PyTorch's fused CPU flash kernel is ~4x
slower on the backward pass for 15-50 token sequences, per the project's architecture notes;
in bench/RESULTS.md it is ~22% of HF BART's bf16 step), and it reads in one sitting. `sdpa`
calls `F.scaled_dot_product_attention`, which picks flash / memory-efficient kernels on a GPU.

`activation_checkpointing=True` recomputes each layer's activations in the backward pass
instead of storing them (training only): less memory for more compute.

Incremental decoding keeps each layer's self-attention keys/values in preallocated
[N, H, capacity, d] buffers: a step writes one position and attends over the filled prefix
(no concatenation per step); a full buffer doubles.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils.checkpoint import checkpoint

from encdec.errors import ConfigError
from encdec.modules.copy import CopyAttention, CopyGate, check_copy_vocabulary, copy_mixture
from encdec.modules.embeddings import TokenEmbedding
from encdec.types import EncoderOutput, sources_of_rows

NEG_INF = float("-inf")
BACKENDS = ("math", "sdpa")
FIRST_CACHE_CAPACITY = 32  # positions; a full cache doubles


def check_backend(backend: str) -> str:
    if backend not in BACKENDS:
        raise ConfigError(f"attention_backend must be one of {', '.join(BACKENDS)}, got {backend!r}")
    return backend


def attend(q: Tensor, k: Tensor, v: Tensor, keep: Tensor | None, dropout: float, backend: str = "math") -> Tensor:
    """q [B,H,T,d], k/v [B,H,S,d], keep broadcastable to [B,H,T,S] (True = attend)."""
    if backend == "sdpa":
        return F.scaled_dot_product_attention(q, k, v, attn_mask=keep, dropout_p=dropout)
    scores = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(q.size(-1)))
    if keep is not None:
        scores = scores.masked_fill(~keep, NEG_INF)
    weights = F.softmax(scores, dim=-1, dtype=torch.float32).to(q.dtype)
    weights = F.dropout(weights, p=dropout, training=dropout > 0)
    return weights @ v


class MultiHeadAttention(nn.Module):
    def __init__(self, d_model: int, heads: int, dropout: float = 0.0, backend: str = "math"):
        super().__init__()
        if d_model % heads:
            raise ValueError(f"d_model ({d_model}) must be divisible by heads ({heads})")
        self.heads, self.dropout, self.backend = heads, dropout, check_backend(backend)
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
        h = attend(q, k, v, keep, p, self.backend)
        if group > 1:
            h = h.view(n // group, heads, group, t, d).transpose(1, 2).reshape(n, heads, t, d)
        return self.out(h.transpose(1, 2).reshape(n, t, -1))


class FeedForward(nn.Sequential):
    def __init__(self, d_model: int, ffn: int, activation_dropout: float = 0.0):
        super().__init__(
            nn.Linear(d_model, ffn), nn.ReLU(), nn.Dropout(activation_dropout), nn.Linear(ffn, d_model)
        )


class EncoderLayer(nn.Module):
    def __init__(self, d_model: int, heads: int, ffn: int, dropout: float, attention_dropout: float = 0.0, activation_dropout: float = 0.0, backend: str = "math"):
        super().__init__()
        self.norm1, self.norm2 = nn.LayerNorm(d_model), nn.LayerNorm(d_model)
        self.attn = MultiHeadAttention(d_model, heads, attention_dropout, backend)
        self.ffn = FeedForward(d_model, ffn, activation_dropout)
        self.drop = nn.Dropout(dropout)

    def forward(self, x: Tensor, keep: Tensor | None) -> Tensor:
        h = self.norm1(x)
        x = x + self.drop(self.attn(h, *self.attn.keys_values(h), keep))
        return x + self.drop(self.ffn(self.norm2(x)))


def _run_layer(owner: nn.Module, layer: nn.Module, *args):
    """layer(*args), recomputed in the backward pass when the owner checkpoints activations
    (training only: evaluation stores nothing for a backward pass anyway)."""
    if owner.activation_checkpointing and owner.training and torch.is_grad_enabled():
        return checkpoint(layer, *args, use_reentrant=False)
    return layer(*args)


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
        attention_backend: str = "math",
        activation_checkpointing: bool = False,
    ):
        super().__init__()
        self.d_model = d_model
        self.activation_checkpointing = activation_checkpointing
        self.embed = TokenEmbedding(vocab_size, d_model, pad_id, dropout)
        self.layers = nn.ModuleList(
            EncoderLayer(d_model, heads, ffn, dropout, attention_dropout, activation_dropout, attention_backend)
            for _ in range(layers)
        )
        self.norm = nn.LayerNorm(d_model)

    def forward(self, src: Tensor, src_mask: Tensor) -> EncoderOutput:
        x = self.embed(src)
        keep = src_mask[:, None, None, :]
        for layer in self.layers:
            x = _run_layer(self, layer, x, keep)
        return EncoderOutput(memory=self.norm(x), memory_mask=src_mask, src_ids=src)


class DecoderLayer(nn.Module):
    def __init__(self, d_model: int, heads: int, ffn: int, dropout: float, attention_dropout: float = 0.0, activation_dropout: float = 0.0, backend: str = "math"):
        super().__init__()
        self.norm1, self.norm2, self.norm3 = (nn.LayerNorm(d_model) for _ in range(3))
        self.self_attn = MultiHeadAttention(d_model, heads, attention_dropout, backend)
        self.cross_attn = MultiHeadAttention(d_model, heads, attention_dropout, backend)
        self.ffn = FeedForward(d_model, ffn, activation_dropout)
        self.drop = nn.Dropout(dropout)

    def forward(self, x, cross_kv, memory_keep, causal=None):
        """Teacher forcing: x [B,T,D] attends causally to itself and to the memory."""
        h = self.norm1(x)
        x = x + self.drop(self.self_attn(h, *self.self_attn.keys_values(h), causal))
        x = x + self.drop(self.cross_attn(self.norm2(x), *cross_kv, memory_keep))
        return x + self.drop(self.ffn(self.norm3(x)))

    def step(self, x, cross_kv, memory_keep, cache, pos: int, group: int = 1):
        """One new position x [N,1,D] at `pos`: its keys/values are written into the cache
        buffers (grown when full; None before the first step), then x attends over
        positions 0..pos. Returns the new hidden states and the (possibly new) buffers."""
        h = self.norm1(x)
        cache = _append(cache, *self.self_attn.keys_values(h), pos)
        k, v = (buffer[:, :, : pos + 1] for buffer in cache)
        x = x + self.drop(self.self_attn(h, k, v, None))
        x = x + self.drop(self.cross_attn(self.norm2(x), *cross_kv, memory_keep, group))
        return x + self.drop(self.ffn(self.norm3(x))), cache


def _append(cache, k: Tensor, v: Tensor, pos: int) -> tuple[Tensor, Tensor]:
    """Buffers holding positions 0..pos, the new k/v [N,H,1,d] at `pos`."""
    if k.requires_grad:  # autograd saved views of earlier buffers: never write into them
        if cache is None:
            return k, v
        return tuple(torch.cat([old[:, :, :pos], new], dim=2) for old, new in zip(cache, (k, v)))
    cache = _room_for(cache, k, v, pos)
    for buffer, new in zip(cache, (k, v)):
        buffer[:, :, pos : pos + 1] = new
    return cache


def _room_for(cache, k: Tensor, v: Tensor, pos: int) -> tuple[Tensor, Tensor]:
    """Buffers with a free position `pos`: the same ones, or twice as large with the filled
    prefix copied over (amortised O(1) per step)."""
    if cache is not None and cache[0].size(2) > pos:
        return cache
    n, heads, _, d = k.shape
    capacity = max(FIRST_CACHE_CAPACITY, 2 * pos)
    grown = tuple(t.new_empty(n, heads, capacity, d) for t in (k, v))
    if cache is not None:
        for new, old in zip(grown, cache):
            new[:, :, :pos] = old[:, :, :pos]
    return grown


def _select_rows(cache: tuple[Tensor, Tensor], index: Tensor, pos: int, spare=None) -> tuple[Tensor, ...]:
    """Rows `index` of the cache buffers, copying only the filled prefix: into `spare` buffers
    when given and large enough (no allocation), else into new ones."""
    if cache[0].requires_grad:
        return tuple(buffer[:, :, :pos].index_select(0, index) for buffer in cache)
    n = index.numel()
    if spare is not None and spare[0].size(0) >= n and spare[0].shape[1:] == cache[0].shape[1:]:
        picked = tuple(buffer[:n] for buffer in spare)  # leading rows: still contiguous
    else:
        picked = tuple(buffer.new_empty((n,) + buffer.shape[1:]) for buffer in cache)
    for new, buffer in zip(picked, cache):
        torch.index_select(buffer[:, :, :pos], 0, index, out=new[:, :, :pos])
    return picked


class TransformerDecoder(nn.Module):
    """Causal decoder. `forward` teacher-forces a whole target; `step` decodes one token.

    The incremental state holds, per layer, the cross-attention keys/values (computed once
    from the memory) and the self-attention key/value buffers. `step` writes into those
    buffers in place, so a state is consumed by the step that reads it: to continue one
    prefix in several ways, `reorder` it first (which copies).

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
        attention_backend: str = "math",
        activation_checkpointing: bool = False,
    ):
        super().__init__()
        self.d_model, self.vocab_size = d_model, vocab_size
        self.activation_checkpointing = activation_checkpointing
        self.embed = TokenEmbedding(vocab_size, d_model, pad_id, dropout)
        self.layers = nn.ModuleList(
            DecoderLayer(d_model, heads, ffn, dropout, attention_dropout, activation_dropout, attention_backend)
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
            x = _run_layer(self, layer, x, cross_kv, memory_keep, causal)
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
        pos = state["pos"]
        x = self.embed(tokens[:, None], start=pos)
        new_self = []
        for layer, cross_kv, cache in zip(self.layers, state["cross"], state["self"]):
            x, cache = layer.step(x, cross_kv, state["memory_keep"], cache, pos, state["group"])
            new_self.append(cache)
        if "copy" in state:
            logits = self._copy_output(self.norm(x), state["copy"], state["group"])[:, 0]
        else:
            logits = self.out(self.norm(x))[:, 0]
        return logits, {**state, "pos": state["pos"] + 1, "self": new_self}

    @staticmethod
    def reorder(state: dict, index: Tensor) -> dict:
        """Rows `index` of the state (a permutation, copies, or fewer rows: the searches drop
        finished sources this way). With group_size g > 1 each run of g new rows must come
        from one source's group; whole groups may be dropped or reordered."""
        return TransformerDecoder._reorder(state, index, reuse=False)

    @staticmethod
    def reorder_consumed(state: dict, index: Tensor) -> dict:
        """`reorder` for a caller that never uses `state` again (the searches). The selected
        rows go into spare buffers the state carries, and the old buffers become the next
        spares: a beam step then allocates no cache memory (fresh multi-MB buffers at every
        step cost more in page faults than the copy itself)."""
        return TransformerDecoder._reorder(state, index, reuse=True)

    @staticmethod
    def _reorder(state: dict, index: Tensor, reuse: bool) -> dict:
        pos = state["pos"]
        spares = state.get("spare") if reuse else None
        spares = spares or [None] * len(state["self"])
        caches = [
            None if kv is None else _select_rows(kv, index, pos, spare)
            for kv, spare in zip(state["self"], spares)
        ]
        reordered = {**state, "self": caches}
        if reuse:
            reordered["spare"] = list(state["self"])
        else:
            reordered.pop("spare", None)  # shared with `state`, which may still be used
        source = sources_of_rows(index, state["group"], state["memory_keep"].size(0))
        if source is None:
            return reordered
        pick = lambda kv: tuple(t.index_select(0, source) for t in kv)  # noqa: E731
        reordered["memory_keep"] = state["memory_keep"].index_select(0, source)
        reordered["cross"] = [pick(kv) for kv in state["cross"]]
        if "copy" in state:
            reordered["copy"] = {k: v.index_select(0, source) for k, v in state["copy"].items()}
        return reordered
