"""Sampled softmax: cross-entropy over the target and a few sampled negatives, not the whole
vocabulary (Jean et al. 2015), for item vocabularies too large for a full softmax per step.

Needs a decoder that exposes its states and its (tied) output matrix: `hidden(tgt_in, enc)`
[B, T, D] and `output_weight` [V, D] (e.g. encdec.modules.item_sequence.NextItemDecoder).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from encdec.errors import ConfigError
from encdec.objectives.base import Objective, StepContext
from encdec.types import Batch


def states_and_targets(model, batch: Batch, objective: str) -> tuple[Tensor, Tensor, Tensor]:
    """(hidden [N, D] and targets [N] of the non-pad target positions, output weight [V, D])."""
    decoder = model.decoder
    if not (hasattr(decoder, "hidden") and hasattr(decoder, "output_weight")):
        raise ConfigError(
            f"objective={objective} needs a decoder with hidden() and output_weight "
            f"(e.g. decoder=next_item); {type(decoder).__name__} has neither"
        )
    hidden = decoder.hidden(batch.tgt_in, model.encode(batch.src, batch.src_mask))
    keep = batch.tgt_out != model.pad_id
    return hidden[keep], batch.tgt_out[keep], decoder.output_weight


def uniform_negatives(shape: tuple[int, ...], vocab: int, exclude: list[int], device, generator=None) -> Tensor:
    """Ids drawn uniformly from the vocabulary minus `exclude` (the special tokens)."""
    banned = torch.zeros(vocab, dtype=torch.bool)
    banned[sorted(set(exclude))] = True
    candidates = (~banned).nonzero().squeeze(1)
    if candidates.numel() == 0:
        raise ConfigError("negative sampling needs a vocabulary with at least one non-special token")
    draw = torch.randint(candidates.numel(), shape, generator=generator)
    return candidates[draw].to(device)


def sampled_softmax_loss(hidden: Tensor, weight: Tensor, targets: Tensor, negatives: Tensor) -> Tensor:
    """Per-position loss [N]: -log softmax over (target, negatives) of the dot-product scores.

    negatives [S] are shared by all N positions. A negative equal to a position's target (an
    accidental hit) is masked out for that position. With a uniform proposal the log Q
    correction is the same constant for every class, so it cancels and is left out.
    """
    positive = (hidden * weight[targets]).sum(-1, keepdim=True)  # [N, 1]
    negative = hidden @ weight[negatives].T  # [N, S]
    negative = negative.masked_fill(negatives[None, :] == targets[:, None], float("-inf"))
    logits = torch.cat([positive, negative], dim=1).float()
    return -F.log_softmax(logits, dim=1)[:, 0]


class SampledSoftmax(Objective):
    """Cross-entropy against `num_negatives` uniformly sampled items shared by the batch."""

    def __init__(self, num_negatives: int = 100):
        if num_negatives < 1:
            raise ConfigError(f"objective.num_negatives must be >= 1, got {num_negatives}")
        self.num_negatives = num_negatives

    def loss(self, model, batch: Batch, ctx: StepContext | None = None) -> tuple[Tensor, dict[str, Tensor]]:
        hidden, targets, weight = states_and_targets(model, batch, "sampled_softmax")
        negatives = uniform_negatives(
            (self.num_negatives,), weight.size(0), [model.pad_id, model.bos_id, model.eos_id], hidden.device
        )
        loss = sampled_softmax_loss(hidden, weight, targets, negatives).mean()
        return loss, {"ntokens": torch.tensor(float(targets.numel()))}
