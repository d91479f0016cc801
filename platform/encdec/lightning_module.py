"""The LightningModule every task trains with: objective for the loss, decoding + adapter
for the metrics, loggers for the samples."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Sequence

import pytorch_lightning as pl
import torch
from torchmetrics import MeanMetric

from encdec.data.vocabulary import SPEC_KEY, check_vocabulary, vocabulary_spec
from encdec.decoding.search import Search
from encdec.distributed import destroy_process_group_at_exit
from encdec.fault_tolerance import NonFiniteGuard, divergence_hint
from encdec.model import EncoderDecoder
from encdec.errors import ConfigError
from encdec.objectives.base import ManualObjective, Objective, StepContext
from encdec.objectives.mle import MLE
from encdec.optim import build_optimizer, param_groups
from encdec.reporting import log_protocol, log_samples
from encdec.task import TaskAdapter
from encdec.types import Batch


def _gather(items: list[Any]) -> list[Any]:
    gathered: list[list[Any]] = [[] for _ in range(torch.distributed.get_world_size())]
    torch.distributed.all_gather_object(gathered, items)
    return [x for part in gathered for x in part]


class EncDecModule(pl.LightningModule):
    def __init__(
        self,
        model: EncoderDecoder,
        objective: Objective | ManualObjective | None,
        adapter: TaskAdapter,
        decoding: Search,
        optimizer: Callable[..., torch.optim.Optimizer] | None = None,
        schedule: Callable[[int], float] | None = None,
        run_dir: str | Path = ".",
        num_samples: int = 8,
        test_split: str = "test",
        nonfinite: NonFiniteGuard | None = None,
        no_decay: Sequence[str] = (),
    ):
        super().__init__()
        self.model, self.objective, self.adapter, self.decoding = model, objective, adapter, decoding
        self.optimizer_factory, self.schedule = optimizer, schedule
        self.run_dir, self.num_samples = Path(run_dir), num_samples
        self.test_split = test_split  # the split the test loop reads (eval can score `val`)
        self.nonfinite = nonfinite
        self.no_decay = list(no_decay)  # optim.no_decay: parameters trained without weight decay
        self._eval_nll = MLE()
        # eval loss over the whole split: torchmetrics keeps (sum, weight) and all-reduces them
        self._eval_loss = MeanMetric()
        self._outputs: list[Any] = []
        self._refs: list[Any] = []
        self._sample_batch: tuple[Batch, list[Any]] | None = None
        if objective is not None and not isinstance(objective, (Objective, ManualObjective)):
            raise ConfigError(
                f"objective: {type(objective).__name__} must derive from encdec.objectives.Objective "
                "(a loss) or encdec.objectives.ManualObjective (its own optimisers and steps)"
            )
        # a manual objective steps its own optimisers; an nn.Module objective (discriminator,
        # frozen reference, phase state) is a submodule: checkpointed and moved with the model
        self.automatic_optimization = not isinstance(objective, ManualObjective)
        if objective is not None:
            objective.setup(model, adapter)

    def setup(self, stage: str) -> None:
        # runs in every worker once the strategy has opened the process group
        destroy_process_group_at_exit()

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        checkpoint[SPEC_KEY] = vocabulary_spec(self.adapter.vocabularies())  # what the ids mean

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        check_vocabulary(checkpoint.get(SPEC_KEY), self.adapter.vocabularies(), "resume",
                         "the run directory's tokenizer files were replaced: restore them")

    # -- training -------------------------------------------------------------------------
    def _context(self, batch: Batch) -> StepContext:
        n = len(batch)
        batches = self.trainer.num_training_batches
        return StepContext(
            global_step=self.global_step,
            adapter=self.adapter,
            decoding=self.decoding,
            log=lambda name, value, prog_bar=False: self.log(name, value, prog_bar=prog_bar, batch_size=n),
            backward=self._guarded_backward,
            epoch_length=int(batches) if batches != float("inf") else None,
        )

    def _log_train(self, logs: dict[str, Any], n: int) -> None:
        for name, value in logs.items():
            self.log(
                f"train/{name}", value, batch_size=n, prog_bar=name in self.objective.progress_bar,
                reduce_fx="sum" if name == "ntokens" else "mean",
            )

    def training_step(self, batch: Batch, batch_idx: int) -> torch.Tensor | None:
        ctx = self._context(batch)
        if not self.automatic_optimization:
            optimizers = self.optimizers()  # one optimiser comes back bare, several as a list
            optimizers = optimizers if isinstance(optimizers, list) else [optimizers]
            result = self.objective.manual_step(self.model, batch, optimizers, ctx)
            self._log_train(result.logs, len(batch))
            if result.finished:
                self.trainer.should_stop = True
            return None
        loss, logs = self.objective.loss(self.model, batch, ctx)
        if self._guard_loss(loss) is None:
            return None  # no update, and no NaN in the logged averages
        self.log("train/loss", loss, prog_bar=True, batch_size=len(batch))
        self._log_train(logs, len(batch))
        return loss

    def _guarded_backward(self, loss: torch.Tensor) -> bool:
        """A manual objective's backward pass under the non-finite guard: False (and no
        gradients) when the loss or its gradients are not finite and the update is skipped."""
        if self._guard_loss(loss) is None:
            return False
        self.manual_backward(loss)
        if self.nonfinite is not None and not self.nonfinite.check(
            NonFiniteGuard.gradients_finite(self), "gradient", self.global_step + 1, self._divergence_hint()
        ):
            self.zero_grad(set_to_none=True)
            return False
        return True

    # -- non-finite guard: a NaN/inf loss or gradient never reaches the weights -------------
    def _divergence_hint(self) -> str:
        opt = self.trainer.optimizers[0] if self.trainer.optimizers else None
        lr = opt.param_groups[0].get("initial_lr", opt.param_groups[0]["lr"]) if opt else None
        return divergence_hint(lr, self.trainer.gradient_clip_val)

    def _guard_loss(self, loss: torch.Tensor | None) -> torch.Tensor | None:
        if self.nonfinite is None or loss is None:
            return loss
        finite = bool(torch.isfinite(loss.detach()).all())
        return loss if self.nonfinite.check(finite, "loss", self.global_step + 1, self._divergence_hint()) else None

    def optimizer_step(self, epoch: int, batch_idx: int, optimizer, optimizer_closure=None) -> None:
        # A gradient scaler (fp16) already skips steps with inf gradients while it calibrates.
        if self.nonfinite is None or getattr(self.trainer.precision_plugin, "scaler", None) is not None:
            return super().optimizer_step(epoch, batch_idx, optimizer, optimizer_closure)

        def guarded_closure():
            loss = optimizer_closure()
            if loss is not None and not self.nonfinite.check(
                NonFiniteGuard.gradients_finite(self), "gradient", self.global_step + 1, self._divergence_hint()
            ):
                self.zero_grad(set_to_none=True)  # the optimiser then leaves every weight as it is
            return loss

        optimizer.step(closure=guarded_closure)

    def configure_optimizers(self):
        if not self.automatic_optimization:
            return self.objective.configure_optimizers(self.model)
        return build_optimizer(param_groups(self.model, self.no_decay), self.optimizer_factory, self.schedule)

    def transfer_batch_to_device(self, batch: Batch, device: torch.device, dataloader_idx: int) -> Batch:
        return batch.to(device)

    # -- evaluation -----------------------------------------------------------------------
    def _eval_step(self, batch: Batch, split: str) -> None:
        _, logs = self._eval_nll.loss(self.model, batch) if batch.tgt_out is not None else (None, {})
        if "nll" in logs:
            self._eval_loss.update(logs["nll"], weight=len(batch))
            self.log(f"{split}/loss", self._eval_loss, prog_bar=True, batch_size=len(batch))
        hyps = self.decoding(self.model, batch.src, batch.src_mask)
        outputs = self.adapter.decode(hyps.best())
        self._outputs.extend(outputs)
        self._refs.extend(self.adapter.references(batch))
        if self._sample_batch is None:
            self._sample_batch = (batch, outputs)

    def _eval_end(self, split: str) -> None:
        outputs, refs, sample = self._outputs, self._refs, self._sample_batch
        self._outputs, self._refs, self._sample_batch = [], [], None
        if self.trainer.sanity_checking:
            return
        if self.trainer.world_size > 1:  # every rank decoded a shard: score the whole split
            outputs, refs = _gather(outputs), _gather(refs)
        if not outputs:
            return
        report = self.adapter.metrics(outputs, refs, split)
        for name, value in report.values.items():  # equal on every rank (scored after the gather)
            self.log(f"{split}/{name}", float(value), prog_bar=name == next(iter(report.values)), sync_dist=True)
        if self.trainer.is_global_zero:
            log_protocol(self.loggers, split, report, self.run_dir, step=self.global_step)
            if sample is not None and self.num_samples > 0:
                table = self.adapter.samples(sample[0], sample[1], self.num_samples)
                log_samples(self.loggers, f"{split}/samples", table, self.global_step, self.run_dir)

    def validation_step(self, batch: Batch, batch_idx: int) -> None:
        self._eval_step(batch, "val")

    def on_validation_epoch_end(self) -> None:
        self._eval_end("val")

    def test_step(self, batch: Batch, batch_idx: int) -> None:
        self._eval_step(batch, self.test_split)

    def on_test_epoch_end(self) -> None:
        self._eval_end(self.test_split)
