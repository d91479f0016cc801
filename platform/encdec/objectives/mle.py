"""Maximum likelihood with optional label smoothing."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from encdec.objectives.base import Objective, StepContext
from encdec.types import Batch


def token_nll(logits: Tensor, target: Tensor, pad_id: int, label_smoothing: float = 0.0):
    """Per-token (smoothed loss, nll) from one fp32 log-softmax, pad positions zeroed.

    Written out (not F.cross_entropy twice) so the 8k-vocabulary log-softmax, the largest
    memory-bound op of a training step, runs once for both the loss and the logged NLL.
    Smoothing follows PyTorch: (1 - eps) * nll + eps * mean_v(-log p_v).
    """
    lprobs = F.log_softmax(logits, dim=-1, dtype=torch.float32)
    keep = (target != pad_id).to(lprobs.dtype)
    nll = -lprobs.gather(-1, target.unsqueeze(-1)).squeeze(-1) * keep
    if label_smoothing == 0.0:
        return nll, nll
    smooth = -lprobs.mean(dim=-1) * keep
    return (1.0 - label_smoothing) * nll + label_smoothing * smooth, nll


class MLE(Objective):
    """Token-level cross-entropy averaged over non-pad target tokens."""

    def __init__(self, label_smoothing: float = 0.0):
        if not 0.0 <= label_smoothing < 1.0:
            raise ValueError(f"objective.label_smoothing must be in [0, 1), got {label_smoothing}")
        self.label_smoothing = label_smoothing

    def loss(self, model, batch: Batch, ctx: StepContext | None = None) -> tuple[Tensor, dict[str, Tensor]]:
        logits = model(batch.src, batch.src_mask, batch.tgt_in)
        loss, nll = token_nll(logits, batch.tgt_out, model.pad_id, self.label_smoothing)
        ntokens = (batch.tgt_out != model.pad_id).sum().clamp_min(1)
        nll_mean = nll.sum().detach() / ntokens
        return loss.sum() / ntokens, {"nll": nll_mean, "ppl": nll_mean.exp(), "ntokens": ntokens.float()}
