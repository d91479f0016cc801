"""The objective contract: what the Lightning module calls to train, and nothing more.

An objective declares its kind by the base class it derives from:

- `Objective`, the common case: `loss(model, batch, ctx) -> (loss, logs)`. The module does
  the backward pass, the optimiser step (clipping, accumulation, the non-finite guard) and
  logs `train/loss` and `train/<name>` for each of `logs`.
- `ManualObjective`, for several optimisers or phases (SeqGAN): it builds its optimisers
  (`configure_optimizers(model)`) and runs a whole step (`manual_step(model, batch,
  optimizers, ctx) -> StepResult`), calling `ctx.backward(loss)` for every backward pass.
  The module switches Lightning's automatic optimisation off for it, logs the result's logs
  and stops training when a step reports `finished`.

Neither kind sees the trainer or the Lightning module: what a step needs comes in `ctx`. An
objective holding weights or state (a discriminator, a frozen reference model, a phase
counter in `get_extra_state`) is also an `nn.Module`; the Lightning module keeps it as its
`objective` submodule, so checkpoints and resume carry them.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, Callable

import torch
from torch import Tensor


def _no_log(name: str, value: Any, prog_bar: bool = False) -> None:
    pass


def plain_backward(loss: Tensor) -> bool:
    loss.backward()
    return True


@dataclass
class StepContext:
    """What one training step may read besides the model and the batch.

    global_step:  optimiser steps taken so far (seeds per-step randomness, e.g. denoising noise).
    adapter:      the task adapter (decode, references, reward).
    decoding:     the run's validation search.
    log:          log(name, value, prog_bar=False) under the full metric name, e.g. "seqgan/phase";
                  what `loss` returns is logged for you under "train/".
    backward:     backward(loss) -> bool, for manual objectives: False means the loss or its
                  gradients were not finite and the guard dropped them, so skip that update.
    epoch_length: training batches per epoch, when known.
    """

    global_step: int = 0
    adapter: Any = None
    decoding: Any = None
    log: Callable[..., None] = _no_log
    backward: Callable[[Tensor], bool] = plain_backward
    epoch_length: int | None = None


@dataclass
class StepResult:
    """What a manual step reports: its logs (logged under "train/") and whether training is over."""

    logs: dict[str, float | Tensor] = field(default_factory=dict)
    finished: bool = False


class _ObjectiveBase(ABC):
    # names of logged values shown in the progress bar besides the loss
    progress_bar: tuple[str, ...] = ()

    def setup(self, model: torch.nn.Module, adapter: Any) -> None:
        """Once, before training: take what the task and the starting model provide (a
        reward, vocabulary ids, a frozen copy). Nothing to take by default."""


class Objective(_ObjectiveBase):
    """A loss the module optimises with Lightning's automatic optimisation."""

    @abstractmethod
    def loss(self, model, batch, ctx: StepContext | None = None) -> tuple[Tensor, dict[str, Tensor]]:
        """(scalar loss, logs) of one batch; `ctx` is None outside a training loop."""


class ManualObjective(_ObjectiveBase):
    """An objective that steps its own optimisers."""

    @abstractmethod
    def configure_optimizers(self, model: torch.nn.Module) -> list[torch.optim.Optimizer]: ...

    @abstractmethod
    def manual_step(self, model, batch, optimizers: list, ctx: StepContext) -> StepResult: ...
