"""Optimisers and learning-rate schedules, built from the `optim` config group."""

from __future__ import annotations

import math
from typing import Callable, Iterable

import torch
from torch.optim.lr_scheduler import LambdaLR


def inverse_sqrt(warmup_steps: int) -> Callable[[int], float]:
    """Linear warmup to the peak, then decay proportional to 1/sqrt(step) (Vaswani et al.)."""
    warmup_steps = max(1, warmup_steps)

    def factor(step: int) -> float:
        step = step + 1
        return min(step / warmup_steps, math.sqrt(warmup_steps / step))

    return factor


def cosine(warmup_steps: int, total_steps: int, min_ratio: float = 0.0) -> Callable[[int], float]:
    def factor(step: int) -> float:
        if step < warmup_steps:
            return (step + 1) / max(1, warmup_steps)
        progress = min(1.0, (step - warmup_steps) / max(1, total_steps - warmup_steps))
        return min_ratio + (1 - min_ratio) * 0.5 * (1 + math.cos(math.pi * progress))

    return factor


def linear(warmup_steps: int, total_steps: int, min_ratio: float = 0.0) -> Callable[[int], float]:
    def factor(step: int) -> float:
        if step < warmup_steps:
            return (step + 1) / max(1, warmup_steps)
        progress = min(1.0, (step - warmup_steps) / max(1, total_steps - warmup_steps))
        return 1.0 - (1 - min_ratio) * progress

    return factor


def constant() -> Callable[[int], float]:
    return lambda step: 1.0


def build_optimizer(
    params: Iterable, optimizer: Callable[..., torch.optim.Optimizer], schedule: Callable[[int], float]
) -> dict:
    """Lightning's `configure_optimizers` dict: the schedule steps every optimiser step."""
    opt = optimizer(params=params)
    return {"optimizer": opt, "lr_scheduler": {"scheduler": LambdaLR(opt, schedule), "interval": "step"}}
