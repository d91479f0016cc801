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


def param_groups(model: torch.nn.Module) -> list[dict]:
    """Trainable parameters grouped by learning-rate scale.

    A submodule declares its own scale with an `lr_scale` attribute (e.g. a pretrained
    backbone at 0.1 of the peak rate), set from its own config so the setting has one home;
    the innermost declaring module wins. Frozen parameters (requires_grad False) are left
    out, so a frozen backbone costs no optimiser state.
    """
    scale_of: dict[str, float] = {}
    for name, module in model.named_modules():  # parents come before children
        scale = getattr(module, "lr_scale", None)
        if scale is not None:
            if scale < 0:
                raise ConfigError(f"lr_scale of `{name}` must be >= 0, got {scale}")
            for pname, _ in module.named_parameters(prefix=name):
                scale_of[pname] = float(scale)
    groups: dict[float, list] = {}
    for pname, param in model.named_parameters():
        if param.requires_grad:
            groups.setdefault(scale_of.get(pname, 1.0), []).append(param)
    return [{"params": ps, "lr_scale": scale} for scale, ps in sorted(groups.items(), reverse=True)]


def build_optimizer(
    params: Iterable, optimizer: Callable[..., torch.optim.Optimizer], schedule: Callable[[int], float]
) -> dict:
    """Lightning's `configure_optimizers` dict: the schedule steps every optimiser step.

    `params` may be plain parameters or `param_groups(model)`; a group's `lr_scale`
    multiplies the configured peak learning rate, and the schedule scales every group alike.
    """
    params = list(params)
    opt = optimizer(params=params)
    for group in opt.param_groups:
        group["lr"] = group["lr"] * group.get("lr_scale", 1.0)
    return {"optimizer": opt, "lr_scheduler": {"scheduler": LambdaLR(opt, schedule), "interval": "step"}}
