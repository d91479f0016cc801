"""Bidirectional GRU/LSTM encoder and a GRU/LSTM decoder with attention and input feeding."""

from __future__ import annotations

from typing import Callable

import torch
from torch import Tensor, nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from encdec.modules.attention import AdditiveAttention
from encdec.modules.copy import CopyGate, check_copy_vocabulary, copy_mixture
from encdec.modules.embeddings import TokenEmbedding
from encdec.types import EncoderOutput, sources_of_rows

RNN_LAYERS = {"gru": nn.GRU, "lstm": nn.LSTM}
RNN_CELLS = {"gru": nn.GRUCell, "lstm": nn.LSTMCell}


def _check_cell(cell: str) -> str:
    if cell not in RNN_CELLS:
        raise ValueError(f"cell must be one of {sorted(RNN_CELLS)}, got {cell!r}")
    return cell


def masked_mean(memory: Tensor, mask: Tensor) -> Tensor:
    m = mask.unsqueeze(-1).to(memory.dtype)
    return (memory * m).sum(1) / m.sum(1).clamp_min(1.0)


class RNNEncoder(nn.Module):
    """Bidirectional GRU/LSTM over token ids; both directions are projected to d_model."""
    reads = "tokens"  # what its `src` holds: checked against the task before any work

    def __init__(
        self,
        vocab_size: int,
        d_model: int = 256,
        hidden_size: int = 256,
        layers: int = 1,
        cell: str = "gru",
        dropout: float = 0.1,
        pad_id: int = 0,
        embed_dim: int | None = None,
    ):
        super().__init__()
        embed_dim = embed_dim or d_model
        self.d_model = d_model
        self.embed = TokenEmbedding(vocab_size, embed_dim, pad_id, dropout, positional=False)
        self.rnn = RNN_LAYERS[_check_cell(cell)](
            embed_dim,
            hidden_size,
            num_layers=layers,
            bidirectional=True,
            batch_first=True,
            dropout=dropout if layers > 1 else 0.0,
        )
        self.proj = nn.Linear(2 * hidden_size, d_model)
        # normalised memory, like the Transformer encoder's: a Transformer decoder's
        # cross-attention otherwise starts near-uniform and learns slowly (tests/toy.py)
        self.norm = nn.LayerNorm(d_model)
        self.summary = nn.Linear(2 * hidden_size, d_model)
        self.drop = nn.Dropout(dropout)

    def forward(self, src: Tensor, src_mask: Tensor) -> EncoderOutput:
        lengths = src_mask.sum(1).clamp_min(1).cpu()
        packed = pack_padded_sequence(self.embed(src), lengths, batch_first=True, enforce_sorted=False)
        out, final = self.rnn(packed)
        out, _ = pad_packed_sequence(out, batch_first=True, total_length=src.size(1))
        h_n = final[0] if isinstance(final, tuple) else final  # LSTM returns (h, c)
        last_fwd_bwd = torch.cat([h_n[-2], h_n[-1]], dim=-1)
        return EncoderOutput(
            memory=self.drop(self.norm(self.proj(out))),
            memory_mask=src_mask,
            summary=torch.tanh(self.summary(last_fwd_bwd)),
            src_ids=src,
        )


class RNNDecoder(nn.Module):
    """GRU/LSTM decoder with attention over the memory and Luong input feeding.

    Each step: cell([embed(y_prev); feed_prev]) -> h; context = attention(h, memory);
    feed = tanh(W [h; context]); logits = out(feed). The initial state comes from the
    encoder's summary vector, or from the masked mean of memory when there is none (images).

    copy=True: the output is the log-probability of a pointer-generator mixture (see
    modules/copy.py) whose copy distribution is this attention and whose gate reads
    [h; context; embed(y_prev)].
    """

    def __init__(
        self,
        vocab_size: int,
        d_model: int = 256,
        hidden_size: int = 256,
        cell: str = "gru",
        attention: Callable[..., nn.Module] = AdditiveAttention,
        dropout: float = 0.1,
        pad_id: int = 0,
        embed_dim: int | None = None,
        tie_embeddings: bool = True,
        copy: bool = False,
    ):
        super().__init__()
        embed_dim = embed_dim or d_model
        self.d_model, self.vocab_size, self.hidden_size = d_model, vocab_size, hidden_size
        self.is_lstm = _check_cell(cell) == "lstm"
        self.embed = TokenEmbedding(vocab_size, embed_dim, pad_id, dropout, positional=False)
        self.cell = RNN_CELLS[cell](embed_dim + embed_dim, hidden_size)
        self.attention = attention(query_dim=hidden_size, key_dim=d_model)
        self.init_h = nn.Linear(d_model, hidden_size)
        self.combine = nn.Linear(hidden_size + d_model, embed_dim)
        self.drop = nn.Dropout(dropout)
        self.out = nn.Linear(embed_dim, vocab_size, bias=False)
        if tie_embeddings:
            self.out.weight = self.embed.weight
        self.copy_gate = CopyGate(hidden_size + d_model + embed_dim) if copy else None

    def init_state(self, enc: EncoderOutput) -> dict:
        """Per-row recurrent state; the memory, its attention keys and mask once per source
        (enc.group_size rows share them: beams attend to their source's copy)."""
        g = enc.group_size
        summary = enc.summary if enc.summary is not None else masked_mean(enc.memory, enc.memory_mask)
        h = torch.tanh(self.init_h(summary))
        copy = {} if self.copy_gate is None else {"src_ids": check_copy_vocabulary(enc.src_ids, self.vocab_size)}
        memory = enc.memory[::g]
        return {
            **copy,
            "h": h,
            "c": torch.zeros_like(h) if self.is_lstm else None,
            "feed": h.new_zeros(h.size(0), self.combine.out_features),
            "group": g,
            "memory": memory,
            "keys": self.attention.prepare(memory),
            "memory_mask": enc.memory_mask[::g],
        }

    def _advance(self, emb: Tensor, state: dict) -> tuple[Tensor, dict]:
        x = torch.cat([emb, state["feed"]], dim=-1)
        if self.is_lstm:
            h, c = self.cell(x, (state["h"], state["c"]))
        else:
            h, c = self.cell(x, state["h"]), None
        context, weights = self.attention(h, state["keys"], state["memory"], state["memory_mask"], state["group"])
        feed = torch.tanh(self.combine(torch.cat([h, context], dim=-1)))
        new = {**state, "h": h, "c": c, "feed": feed, "attention": weights}
        if self.copy_gate is not None:
            new["gate"] = self.copy_gate(h, context, emb)
        return self.drop(feed), new

    def step(self, tokens: Tensor, state: dict) -> tuple[Tensor, dict]:
        out, state = self._advance(self.embed(tokens[:, None])[:, 0], state)
        if self.copy_gate is not None:
            return copy_mixture(self.out(out), state["gate"], state["attention"], state["src_ids"]), state
        return self.out(out), state

    def forward(self, tgt_in: Tensor, enc: EncoderOutput) -> Tensor:
        state = self.init_state(enc)
        embedded = self.embed(tgt_in)
        outputs, gates, attention = [], [], []
        for t in range(tgt_in.size(1)):
            out, state = self._advance(embedded[:, t], state)
            outputs.append(out)
            if self.copy_gate is not None:
                gates.append(state["gate"])
                attention.append(state["attention"])
        logits = self.out(torch.stack(outputs, dim=1))
        if self.copy_gate is None:
            return logits
        return copy_mixture(logits, torch.stack(gates, 1), torch.stack(attention, 1), state["src_ids"])

    PER_SOURCE = ("memory", "keys", "memory_mask")

    @staticmethod
    def reorder(state: dict, index: Tensor) -> dict:
        """Rows `index` of the per-row state; the per-source tensors only when whole groups
        are dropped or reordered (see EncoderOutput.group_size)."""
        reordered = {
            k: (v.index_select(0, index) if torch.is_tensor(v) and k not in RNNDecoder.PER_SOURCE else v)
            for k, v in state.items()
        }
        source = sources_of_rows(index, state["group"], state["memory"].size(0))
        if source is not None:
            reordered.update({k: state[k].index_select(0, source) for k in RNNDecoder.PER_SOURCE})
        return reordered
