"""Item-sequence encoders (SASRec-like, GRU4Rec-like) and a next-item decoder over the item
vocabulary with tied item embeddings: next-item recommendation as encode-then-decode.

Both encoders are causal: memory[:, t] summarises the history up to item t, and `summary` is
the state after the last real item. The decoder scores every item by a dot product with the
(tied) item embedding, as SASRec and GRU4Rec do, so full ranking is its first decoding step.
Later steps continue the sequence with a GRU cell over the chosen items, which lets beam
search return a sequence of future items through the core's unchanged search code.

The layer layout and initialisation follow RecBole 1.2.1's SASRec and GRU4Rec (post-norm
Transformer with GELU and learned positions; embedding dropout -> GRU -> projection), the
peer the project benchmarks against in bench/RESULTS.md.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from encdec.modules.transformer import attend
from encdec.types import EncoderOutput


class ItemEmbedding(nn.Module):
    """Unscaled item embedding (SASRec/GRU4Rec scale nothing). Exposes `.embed` and `.weight`
    like TokenEmbedding, so `model.share_embeddings=true` ties encoder input, decoder input
    and decoder output to one item table."""

    def __init__(self, vocab_size: int, dim: int, pad_id: int = 0, init_std: float = 0.02):
        super().__init__()
        self.embed = nn.Embedding(vocab_size, dim, padding_idx=pad_id)
        nn.init.normal_(self.embed.weight, std=init_std)
        with torch.no_grad():
            self.embed.weight[pad_id].zero_()

    @property
    def weight(self) -> nn.Parameter:
        return self.embed.weight

    def forward(self, ids: Tensor) -> Tensor:
        return self.embed(ids)


def last_real(x: Tensor, mask: Tensor) -> Tensor:
    """x [B,S,D] at each row's last True position of mask [B,S] (right padding)."""
    last = (mask.long().sum(1) - 1).clamp_min(0)
    return x[torch.arange(x.size(0), device=x.device), last]


class _SelfAttention(nn.Module):
    def __init__(self, d_model: int, heads: int, attention_dropout: float):
        super().__init__()
        if d_model % heads:
            raise ValueError(f"encoder.d_model ({d_model}) must be divisible by encoder.heads ({heads})")
        self.heads, self.attention_dropout = heads, attention_dropout
        self.qkv = nn.Linear(d_model, 3 * d_model)
        self.out = nn.Linear(d_model, d_model)

    def forward(self, x: Tensor, keep: Tensor) -> Tensor:
        b, t, d = x.shape
        q, k, v = self.qkv(x).view(b, t, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        h = attend(q, k, v, keep, self.attention_dropout if self.training else 0.0)
        return self.out(h.transpose(1, 2).reshape(b, t, d))


class _PostNormLayer(nn.Module):
    """RecBole's TransformerLayer: x = LN(x + drop(attn(x))); x = LN(x + drop(ffn(x)))."""

    def __init__(self, d_model: int, heads: int, ffn: int, dropout: float, attention_dropout: float, eps: float):
        super().__init__()
        self.attn = _SelfAttention(d_model, heads, attention_dropout)
        self.ffn = nn.Sequential(nn.Linear(d_model, ffn), nn.GELU(), nn.Linear(ffn, d_model))
        self.norm1, self.norm2 = nn.LayerNorm(d_model, eps=eps), nn.LayerNorm(d_model, eps=eps)
        self.drop = nn.Dropout(dropout)

    def forward(self, x: Tensor, keep: Tensor) -> Tensor:
        x = self.norm1(x + self.drop(self.attn(x, keep)))
        return self.norm2(x + self.drop(self.ffn(x)))


class SASRecEncoder(nn.Module):
    """Causal self-attention over an item history (Kang & McAuley 2018, RecBole layout).

    Histories are right-padded; positions count from the oldest kept item, as in RecBole.
    """
    reads = "items"  # what its `src` holds: checked against the task before any work

    def __init__(
        self,
        vocab_size: int,
        d_model: int = 64,
        layers: int = 2,
        heads: int = 2,
        ffn: int = 256,
        dropout: float = 0.5,
        attention_dropout: float = 0.5,
        max_len: int = 50,
        pad_id: int = 0,
        init_std: float = 0.02,
        layer_norm_eps: float = 1e-12,
    ):
        super().__init__()
        self.max_len = max_len
        self.embed = ItemEmbedding(vocab_size, d_model, pad_id, init_std)
        self.positions = nn.Embedding(max_len, d_model)
        self.norm = nn.LayerNorm(d_model, eps=layer_norm_eps)
        self.drop = nn.Dropout(dropout)
        self.layers = nn.ModuleList(
            _PostNormLayer(d_model, heads, ffn, dropout, attention_dropout, layer_norm_eps) for _ in range(layers)
        )
        for module in [self.positions, *self.layers.modules()]:
            if isinstance(module, (nn.Linear, nn.Embedding)):
                nn.init.normal_(module.weight, std=init_std)
                if getattr(module, "bias", None) is not None:
                    nn.init.zeros_(module.bias)

    def forward(self, src: Tensor, src_mask: Tensor | None) -> EncoderOutput:
        if src_mask is None:
            src_mask = torch.ones_like(src, dtype=torch.bool)
        t = src.size(1)
        if t > self.max_len:
            raise ValueError(
                f"item history of {t} items is longer than encoder.max_len={self.max_len}; "
                "set task.adapter.max_history <= encoder.max_len"
            )
        pos = torch.arange(t, device=src.device)
        x = self.drop(self.norm(self.embed(src) + self.positions(pos)))
        causal = torch.ones(t, t, dtype=torch.bool, device=src.device).tril()
        keep = causal[None, None] & src_mask[:, None, None, :]
        # a padded query row would see no key at all (softmax of all -inf = NaN): let it see
        # itself; its output is never read
        keep = keep | torch.eye(t, dtype=torch.bool, device=src.device)[None, None]
        for layer in self.layers:
            x = layer(x, keep)
        return EncoderOutput(memory=x, memory_mask=src_mask, summary=last_real(x, src_mask), src_ids=src)


class GRU4RecEncoder(nn.Module):
    """GRU over an item history (Hidasi et al. 2016, RecBole layout): embedding dropout, a
    GRU, and a projection of its states back to the item-embedding size for scoring."""
    reads = "items"  # what its `src` holds: checked against the task before any work

    def __init__(
        self,
        vocab_size: int,
        d_model: int = 64,
        hidden: int = 128,
        layers: int = 1,
        dropout: float = 0.3,
        pad_id: int = 0,
    ):
        super().__init__()
        self.embed = ItemEmbedding(vocab_size, d_model, pad_id)
        nn.init.xavier_uniform_(self.embed.weight)
        self.drop = nn.Dropout(dropout)
        self.gru = nn.GRU(d_model, hidden, num_layers=layers, bias=False, batch_first=True)
        for name, weight in self.gru.named_parameters():
            nn.init.xavier_uniform_(weight)
        self.proj = nn.Linear(hidden, d_model)

    def forward(self, src: Tensor, src_mask: Tensor | None) -> EncoderOutput:
        if src_mask is None:
            src_mask = torch.ones_like(src, dtype=torch.bool)
        # right padding comes after every real item, so a plain (unpacked) run leaves the
        # states of real positions untouched: cheaper than packing on CPU
        states, _ = self.gru(self.drop(self.embed(src)))
        memory = self.proj(states)
        return EncoderOutput(memory=memory, memory_mask=src_mask, summary=last_real(memory, src_mask), src_ids=src)


class NextItemDecoder(nn.Module):
    """Scores every item against a user state with the tied item embedding.

    Step 0 reads the encoder's summary (the state after the last history item): its scores
    are the full ranking. Step j > 0 updates the state with the item chosen at step j - 1
    through a GRU cell, so multi-step targets (the next n items) and beam search over future
    item sequences use the same decoder. `hidden()` and `output_weight` let sampled losses
    score a few items without the full [.., V] product.
    """

    def __init__(self, vocab_size: int, d_model: int = 64, pad_id: int = 0, dropout: float = 0.0,
                 bos_id: int | None = None):
        super().__init__()
        # BOS is never a target, so training alone does not keep beam search from picking it
        self.never = [pad_id] + ([bos_id] if bos_id is not None else [])
        self.embed = ItemEmbedding(vocab_size, d_model, pad_id)
        self.cell = nn.GRUCell(d_model, d_model)
        self.drop = nn.Dropout(dropout)

    @property
    def output_weight(self) -> Tensor:
        return self.embed.weight

    @staticmethod
    def _start(enc: EncoderOutput) -> Tensor:
        """The state each row starts from: its source's summary (else the masked mean)."""
        if enc.summary is not None:
            return enc.summary
        keep = enc.memory_mask.unsqueeze(-1).to(enc.memory.dtype)
        return (enc.memory * keep).sum(1) / keep.sum(1).clamp_min(1.0)

    def hidden(self, tgt_in: Tensor, enc: EncoderOutput) -> Tensor:
        """[B,T,D] user states that score tgt_out; position 0 (BOS) is the encoder state."""
        if tgt_in.size(0) != enc.memory.size(0):
            raise ValueError(f"{tgt_in.size(0)} target rows for {enc.memory.size(0)} sources: give one row per source")
        h = self._start(enc)
        states = [h]
        if tgt_in.size(1) > 1:
            inputs = self.drop(self.embed(tgt_in[:, 1:]))
            for j in range(inputs.size(1)):
                h = self.cell(inputs[:, j], h)
                states.append(h)
        return torch.stack(states, dim=1)

    def forward(self, tgt_in: Tensor, enc: EncoderOutput) -> Tensor:
        return F.linear(self.hidden(tgt_in, enc), self.output_weight)

    def init_state(self, enc: EncoderOutput) -> dict:
        return {"h": self._start(enc), "t": 0}

    def step(self, tokens: Tensor, state: dict) -> tuple[Tensor, dict]:
        h = state["h"] if state["t"] == 0 else self.cell(self.embed(tokens), state["h"])
        logits = F.linear(h, self.output_weight)
        logits[:, self.never] = float("-inf")
        return logits, {"h": h, "t": state["t"] + 1}

    @staticmethod
    def reorder(state: dict, index: Tensor) -> dict:
        return {**state, "h": state["h"].index_select(0, index)}
