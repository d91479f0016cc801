"""Optimisers and learning-rate schedules, built from the `optim` config group.

Schedules are small callable objects (step -> factor on the peak learning rate) rather than
closures, so a module holding them pickles (DDP spawn) and their state is plain numbers.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Iterable, Sequence

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


def _is_exempt(pname: str, module: torch.nn.Module, no_decay: Sequence[str]) -> bool:
    """A parameter is exempt from weight decay when an entry of `no_decay` is part of its own
    name (`bias`) or of its module's class name (`norm`: LayerNorm, RMSNorm, BatchNorm...;
    `embedding`: nn.Embedding), compared case-insensitively."""
    own, kind = pname.rsplit(".", 1)[-1].lower(), type(module).__name__.lower()
    return any(word.lower() in own or word.lower() in kind for word in no_decay)


def param_groups(model: torch.nn.Module, no_decay: Sequence[str] = ()) -> list[dict]:
    """Trainable parameters grouped by learning-rate scale and by weight decay.

    A submodule declares its own scale with an `lr_scale` attribute (e.g. a pretrained
    backbone at 0.1 of the peak rate), set from its own config so the setting has one home;
    the innermost declaring module wins. Frozen parameters (requires_grad False) are left
    out, so a frozen backbone costs no optimiser state.

    `no_decay` (config `optim.no_decay`, e.g. [bias, norm]) puts the matching parameters in
    groups with `weight_decay` 0; the others keep the optimiser's configured weight decay.
    A group's `no_decay_names` lists its exempt parameters by name.
    """
    if isinstance(no_decay, str):  # a bare string would match letter by letter
        raise ConfigError(f"optim.no_decay={no_decay!r} must be a list, e.g. [bias, norm]")
    for word in no_decay:
        if not isinstance(word, str) or not word:
            raise ConfigError(f"optim.no_decay entries must be non-empty names (e.g. bias, norm), got {word!r}")
    scale_of: dict[str, float] = {}
    exempt: set[str] = set()
    for name, module in model.named_modules():  # parents come before children
        scale = getattr(module, "lr_scale", None)
        if scale is not None:
            if scale < 0:
                raise ConfigError(f"lr_scale of `{name}` must be >= 0, got {scale}")
            for pname, _ in module.named_parameters(prefix=name):
                scale_of[pname] = float(scale)
        for pname, _ in module.named_parameters(prefix=name, recurse=False):
            if _is_exempt(pname, module, no_decay):
                exempt.add(pname)
    groups: dict[tuple[float, bool], list[tuple[str, torch.nn.Parameter]]] = {}
    for pname, param in model.named_parameters():  # a shared (tied) weight once, by its first name
        if param.requires_grad:
            key = (scale_of.get(pname, 1.0), pname in exempt)
            groups.setdefault(key, []).append((pname, param))
    out = []
    for (scale, is_exempt), named in sorted(groups.items(), key=lambda kv: (-kv[0][0], kv[0][1])):
        group: dict = {"params": [p for _, p in named], "lr_scale": scale}
        if is_exempt:
            group.update(weight_decay=0.0, no_decay_names=[n for n, _ in named])
        out.append(group)
    return out


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
