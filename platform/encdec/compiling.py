"""model.compile=true: the model's forward pass compiled in the process that trains it."""

from __future__ import annotations

import logging

import pytorch_lightning as pl

log = logging.getLogger("encdec.train")


class CompileForward(pl.Callback):
    """Compiles the model's teacher-forced forward (`EncoderDecoder.compile_forward`) when
    fitting starts. A hook, not a step of the train app: a ddp_spawn launch pickles the module
    into its workers and pickling drops a compiled forward, while `setup` runs in each worker."""

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        if stage != "fit":
            return
        pl_module.model.compile_forward()
        if trainer.is_global_zero:
            log.info("model.compile=true: the forward pass is compiled (torch.compile) on the first batch")
