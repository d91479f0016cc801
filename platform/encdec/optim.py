"""Optimisers and learning-rate schedules, built from the `optim` config group.

Schedules are small callable objects (step -> factor on the peak learning rate) rather than
closures, so a module holding them pickles (DDP spawn) and their state is plain numbers.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Iterable

import torch
from torch.optim.lr_scheduler import LambdaLR

from encdec.errors import ConfigError


def _warmup(step: int, warmup_steps: int) -> float:
    return (step + 1) / max(1, warmup_steps)


@dataclass
class inverse_sqrt:  # noqa: N801  (named like the function it stands for in configs)
    """Linear warmup to the peak, then decay proportional to 1/sqrt(step) (Vaswani et al.)."""

    warmup_steps: int = 4000

    def __call__(self, step: int) -> float:
        step, warmup = step + 1, max(1, self.warmup_steps)
        return min(step / warmup, math.sqrt(warmup / step))


@dataclass
class _WarmupThenDecay:
    """Linear warmup, then `decay(progress)` with progress going 0 -> 1 at total_steps."""

    warmup_steps: int
    total_steps: int
    min_ratio: float = 0.0

    def __post_init__(self):
        if self.total_steps <= self.warmup_steps:
            raise ConfigError(
                f"optim.schedule.total_steps={self.total_steps} must exceed warmup_steps={self.warmup_steps}; "
                "it follows trainer.max_steps by default, so set trainer.max_steps"
            )

    def decay(self, progress: float) -> float:
        raise NotImplementedError

    def __call__(self, step: int) -> float:
        if step < self.warmup_steps:
            return _warmup(step, self.warmup_steps)
        progress = min(1.0, (step - self.warmup_steps) / (self.total_steps - self.warmup_steps))
        return self.min_ratio + (1 - self.min_ratio) * self.decay(progress)


class cosine(_WarmupThenDecay):  # noqa: N801
    def decay(self, progress: float) -> float:
        return 0.5 * (1 + math.cos(math.pi * progress))


class linear(_WarmupThenDecay):  # noqa: N801
    def decay(self, progress: float) -> float:
        return 1.0 - progress


@dataclass
class constant:  # noqa: N801
    def __call__(self, step: int) -> float:
        return 1.0


def build_optimizer(
    params: Iterable, optimizer: Callable[..., torch.optim.Optimizer], schedule: Callable[[int], float]
) -> dict:
    """Lightning's `configure_optimizers` dict: the schedule steps every optimiser step."""
    opt = optimizer(params=params)
    return {"optimizer": opt, "lr_scheduler": {"scheduler": LambdaLR(opt, schedule), "interval": "step"}}
