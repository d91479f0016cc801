"""The one encoder-decoder model every task uses."""

from __future__ import annotations

from torch import Tensor, nn

from encdec.errors import ConfigError
from encdec.types import EncoderOutput


class EncoderDecoder(nn.Module):
    """Any encoder (`forward(src, src_mask) -> EncoderOutput`) with any decoder
    (`forward(tgt_in, enc) -> logits`, `init_state`, `step`, `reorder`).

    `share_embeddings` ties the encoder's input embedding to the decoder's (and, through
    the decoder's own tying, to the output projection): joint-vocabulary translation, and
    item embeddings in recommendation.
    """

    def __init__(
        self,
        encoder: nn.Module,
        decoder: nn.Module,
        bos_id: int,
        eos_id: int,
        pad_id: int,
        share_embeddings: bool = False,
    ):
        super().__init__()
        self.encoder, self.decoder = encoder, decoder
        self.bos_id, self.eos_id, self.pad_id = bos_id, eos_id, pad_id
        if share_embeddings:
            src, tgt = getattr(encoder, "embed", None), getattr(decoder, "embed", None)
            if src is None or tgt is None or src.weight.shape != tgt.weight.shape:
                raise ConfigError(
                    "model.share_embeddings=true needs a token encoder and decoder with the same "
                    "vocabulary and embedding size (set task.adapter.tokenizer.joint=true, or "
                    "model.share_embeddings=false)"
                )
            src.embed.weight = tgt.embed.weight

    def encode(self, src: Tensor, src_mask: Tensor | None) -> EncoderOutput:
        return self.encoder(src, src_mask)

    def forward(self, src: Tensor, src_mask: Tensor | None, tgt_in: Tensor) -> Tensor:
        return self.decoder(tgt_in, self.encode(src, src_mask))

    def compile_forward(self) -> None:
        """torch.compile the teacher-forced forward pass (the training step, the validation
        loss), in place: `nn.Module.compile` keeps the parameter names, so a checkpoint has no
        `_orig_mod.` prefix and loads into an uncompiled model. The graph is built at the first
        call. Shapes: token-budget batches change their size and length every step; torch's
        automatic dynamic shapes (dynamic=None) compile the first batch as it is and, at the
        first batch of another shape, one graph with symbolic sizes that serves every later
        batch. Not dynamic=True: it would also make the dropout rates symbolic, and
        F.dropout(training=p > 0) then splits the forward into many small graphs. Decoding
        (`encode`, then the decoder's `step` in a Python loop over a key/value cache that grows
        and stops on EOS) is not this forward: it stays eager."""
        self.compile()

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())
