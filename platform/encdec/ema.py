"""An exponential moving average (EMA) of the model's weights, as a Lightning callback.

After every optimiser step: ema <- decay * ema + (1 - decay) * weights (torch's
`AveragedModel` with `get_ema_multi_avg_fn`; the first update copies the weights). Validation
runs on the EMA weights, and every checkpoint stores them as its `state_dict`, so
`best.ckpt` (and the test after training, encdec-eval, encdec-predict, encdec-average) use
the EMA. The weights being trained travel in the checkpoint under `current_model_state` (the
key Lightning's own WeightAveraging uses) and the update count in the callback's state, so a
resumed run continues exactly as an uninterrupted one.

Only the encoder-decoder (`pl_module.model`) is averaged; buffers (e.g. batch-norm
statistics) follow the trained model.
"""

from __future__ import annotations

import logging
from typing import Any

import pytorch_lightning as pl
import torch
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

log = logging.getLogger("encdec.train")

TRAINED_WEIGHTS = "current_model_state"


def _averaged_module(pl_module: pl.LightningModule) -> tuple[str, torch.nn.Module]:
    """(state-dict prefix, module) of what is averaged: the encoder-decoder when there is one."""
    model = getattr(pl_module, "model", None)
    return ("model.", model) if isinstance(model, torch.nn.Module) else ("", pl_module)


class EMA(pl.Callback):
    """decay: weight of the past per update (0.999 averages over roughly the last 1,000
    updates); every_n_steps: update after every n-th optimiser step; start_step: updates
    begin after this many optimiser steps (the EMA starts as a copy of the weights then)."""

    def __init__(self, decay: float = 0.999, every_n_steps: int = 1, start_step: int = 0):
        if not 0.0 <= decay <= 1.0:
            raise ValueError(f"decay={decay} must be in [0, 1]")
        if every_n_steps < 1 or start_step < 0:
            raise ValueError(f"every_n_steps={every_n_steps} must be >= 1 and start_step={start_step} >= 0")
        self.decay, self.every_n_steps, self.start_step = decay, every_n_steps, start_step
        self.average: AveragedModel | None = None
        self._updated_at_step = 0  # optimiser step of the latest update (skipped steps do not count)
        # what a checkpoint restored before fit started (the average is built then)
        self._pending_weights: dict[str, torch.Tensor] | None = None
        self._pending_updates: int | None = None
        self._swapped = False

    # -- averaging --------------------------------------------------------------------------
    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        # here, not in setup(): the model is on its device by now, so updates stay on it
        _, module = _averaged_module(pl_module)
        self.average = AveragedModel(module, multi_avg_fn=get_ema_multi_avg_fn(self.decay), use_buffers=False)
        if self._pending_weights is not None:
            self.average.module.load_state_dict(self._pending_weights)
        if self._pending_updates is not None:
            self.average.n_averaged.fill_(self._pending_updates)
        self._pending_weights = self._pending_updates = None

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        step = trainer.global_step  # optimiser steps taken so far
        if self.average is None or step <= self._updated_at_step or step <= self.start_step:
            return
        if (step - self.start_step) % self.every_n_steps == 0:
            self.average.update_parameters(_averaged_module(pl_module)[1])
            self._updated_at_step = step

    @property
    def updates(self) -> int:
        return int(self.average.n_averaged) if self.average is not None else 0

    # -- validation on the averaged weights --------------------------------------------------
    def _swap(self, pl_module: pl.LightningModule) -> None:
        _, module = _averaged_module(pl_module)
        with torch.no_grad():
            for averaged, current in zip(self.average.module.parameters(), module.parameters(), strict=True):
                tmp = averaged.detach().clone()
                averaged.detach().copy_(current.detach())
                current.detach().copy_(tmp)
        self._swapped = not self._swapped

    def on_validation_epoch_start(self, trainer, pl_module) -> None:
        if self.average is not None and self.updates > 0 and not self._swapped:
            self._swap(pl_module)

    def on_validation_epoch_end(self, trainer, pl_module) -> None:
        if self._swapped:
            self._swap(pl_module)

    def on_train_end(self, trainer, pl_module) -> None:
        # a test right after fit (without a best checkpoint to load) then sees the EMA
        if self.average is not None and self.updates > 0:
            _, module = _averaged_module(pl_module)
            module.load_state_dict(self.average.module.state_dict())

    # -- checkpoints -------------------------------------------------------------------------
    def on_save_checkpoint(self, trainer, pl_module, checkpoint: dict[str, Any]) -> None:
        if self.average is None or self.updates == 0:
            return  # nothing averaged yet: the weights are the EMA
        prefix, _ = _averaged_module(pl_module)
        trained = checkpoint["state_dict"]
        averaged = {prefix + k: v.detach().clone() for k, v in self.average.module.state_dict().items()}
        if self._swapped:  # saved mid-validation: the model holds the EMA, the average the weights
            trained, averaged = {**trained, **averaged}, {k: v for k, v in trained.items() if k.startswith(prefix)}
        checkpoint[TRAINED_WEIGHTS] = trained
        checkpoint["state_dict"] = {**trained, **averaged}

    def on_load_checkpoint(self, trainer, pl_module, checkpoint: dict[str, Any]) -> None:
        # Lightning has loaded `state_dict` (the EMA) into the model by now: put the trained
        # weights back, and keep the EMA for the average
        if TRAINED_WEIGHTS not in checkpoint:
            return  # written without EMA (e.g. a run that adds callbacks=ema on resume): start from the weights
        prefix, module = _averaged_module(pl_module)
        pl_module.load_state_dict(checkpoint[TRAINED_WEIGHTS])
        averaged = {k.removeprefix(prefix): v for k, v in checkpoint["state_dict"].items() if k.startswith(prefix)}
        if self.average is not None:
            self.average.module.load_state_dict(averaged)
        else:
            self._pending_weights = averaged

    def state_dict(self) -> dict[str, Any]:
        return {"updates": self.updates, "updated_at_step": self._updated_at_step, "decay": self.decay}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self._updated_at_step = int(state["updated_at_step"])
        if self.average is not None:
            self.average.n_averaged.fill_(int(state["updates"]))
        else:
            self._pending_updates = int(state["updates"])
