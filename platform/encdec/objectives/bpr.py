"""Bayesian personalised ranking (Rendle et al. 2009): the target should outscore sampled
negatives, -log sigmoid(s_target - s_negative), averaged over pairs."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from encdec.errors import ConfigError
from encdec.objectives.sampled_softmax import states_and_targets, uniform_negatives
from encdec.objectives.base import Objective, StepContext
from encdec.types import Batch


def bpr_loss(hidden: Tensor, weight: Tensor, targets: Tensor, negatives: Tensor) -> Tensor:
    """Mean over valid pairs of -log sigmoid(score(target) - score(negative)).

    hidden [N, D], targets [N], negatives [N, n] (own negatives per position). A negative
    equal to its target is not a negative: that pair is left out of the mean.
    """
    positive = (hidden * weight[targets]).sum(-1)  # [N]
    negative = torch.einsum("nd,nkd->nk", hidden, weight[negatives])  # [N, n]
    valid = negatives != targets[:, None]
    pair_loss = -F.logsigmoid((positive[:, None] - negative).float())
    return (pair_loss * valid).sum() / valid.sum().clamp_min(1)


class BPR(Objective):
    """Pairwise ranking loss with `num_negatives` uniform negatives per target position."""

    def __init__(self, num_negatives: int = 1):
        if num_negatives < 1:
            raise ConfigError(f"objective.num_negatives must be >= 1, got {num_negatives}")
        self.num_negatives = num_negatives

    def loss(self, model, batch: Batch, ctx: StepContext | None = None) -> tuple[Tensor, dict[str, Tensor]]:
        hidden, targets, weight = states_and_targets(model, batch, "bpr")
        negatives = uniform_negatives(
            (targets.numel(), self.num_negatives), weight.size(0),
            [model.pad_id, model.bos_id, model.eos_id], hidden.device,
        )
        return bpr_loss(hidden, weight, targets, negatives), {"ntokens": torch.tensor(float(targets.numel()))}
