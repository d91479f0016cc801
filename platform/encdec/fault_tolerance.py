"""What keeps a long run alive across interruptions: the data position inside an epoch,
`last.ckpt` that resumes mid-epoch, signals that save before exiting, and a guard against NaN/inf.

Lightning restores weights, optimiser, schedule, loop counters and callback states from a
checkpoint; these callbacks add what it cannot know about our data and our run directory.
"""

from __future__ import annotations

import logging
import math
import signal
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
from pytorch_lightning.callbacks import ModelCheckpoint
from pytorch_lightning.utilities.exceptions import SIGTERMException

from encdec.errors import UserError

log = logging.getLogger("encdec.train")

# Exit statuses of a run stopped by a signal after saving: 128 + signal number, as a shell
# reports a process killed by that signal, so schedulers and scripts see a failure.
# SIGUSR2 is what submitit (Hydra's SLURM launcher) sends ahead of a time limit or preemption.
SIGNALS = {signal.SIGTERM: "SIGTERM", signal.SIGINT: "SIGINT", signal.SIGUSR1: "SIGUSR1", signal.SIGUSR2: "SIGUSR2"}


class TrainingDivergedError(UserError):
    """The loss or the gradients stayed non-finite past the allowed number of skipped steps."""


class DataPosition(pl.Callback):
    """Tells the batch sampler which epoch it serves (Lightning calls `set_epoch` only on a
    sampler inside a batch sampler, never on a batch sampler itself, so without this every
    epoch would repeat the first one's batch order), and checkpoints where training stands
    inside the epoch (batches consumed) and the sampler's seed. On resume the sampler skips
    the consumed batches of that epoch, so a run resumed mid-epoch sees exactly the batches
    an uninterrupted run would, even when the resumed command passes another `seed`."""

    def __init__(self) -> None:
        self.epoch, self.consumed, self.seed = 0, 0, None
        self._pending: dict[str, Any] | None = None

    @staticmethod
    def _sampler(trainer: pl.Trainer):
        """The training batch sampler, told the current epoch."""
        sampler = getattr(trainer.train_dataloader, "batch_sampler", None)
        if hasattr(sampler, "set_epoch"):
            sampler.set_epoch(trainer.current_epoch)
        return sampler

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        # Lightning calls no on_train_epoch_start for an epoch it resumes mid-way, so the
        # saved position is applied here; the sampler computes its batches lazily, after the
        # loop has set the epoch.
        sampler = self._sampler(trainer)
        pending, self._pending = self._pending, None
        self.epoch, self.consumed = trainer.current_epoch, 0
        if pending is not None and hasattr(sampler, "resume_at"):
            if pending["seed"] is not None:
                sampler.seed = pending["seed"]
            if pending["epoch"] == trainer.current_epoch and pending["consumed"] > 0:
                sampler.resume_at(pending["epoch"], pending["consumed"])
                self.consumed = pending["consumed"]
                log.info("continuing epoch %d after its first %d batches", pending["epoch"], self.consumed)
        self.seed = getattr(sampler, "seed", None)

    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._sampler(trainer)
        self.epoch, self.consumed = trainer.current_epoch, 0

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self.consumed += 1

    def state_dict(self) -> dict[str, Any]:
        return {"epoch": self.epoch, "consumed": self.consumed, "seed": self.seed}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self._pending = dict(state)


class LastCheckpoint(ModelCheckpoint):
    """`last.ckpt` at each epoch end (after validation) and every N steps, like Lightning's,
    and also at the step where `max_steps` ends training mid-epoch. Lightning would save that
    one at the (cut short) epoch end, and a checkpoint taken at an epoch end resumes at the
    next epoch: a resumed run given more steps would skip the rest of this one."""

    def __init__(self, dirpath: Path, every_n_train_steps: int | None = None, train_time_interval=None) -> None:
        self.saves_at_max_steps = train_time_interval is None  # one of the two instances is enough
        super().__init__(
            dirpath=dirpath, filename="last", monitor=None, save_top_k=1, enable_version_counter=False,
            every_n_train_steps=every_n_train_steps, train_time_interval=train_time_interval,
            save_on_train_epoch_end=True,  # also when validation runs only every n epochs
        )

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        super().on_train_batch_end(trainer, pl_module, outputs, batch, batch_idx)
        last_step = self.saves_at_max_steps and 0 < trainer.max_steps <= trainer.global_step
        if last_step and self._last_global_step_saved != trainer.global_step:
            trainer.save_checkpoint(Path(self.dirpath) / "last.ckpt")
            self._last_global_step_saved = trainer.global_step  # the epoch-end save then skips


class Preemption(pl.Callback):
    """SIGTERM, SIGINT, SIGUSR1 and SIGUSR2 (what schedulers send before killing or requeueing
    a job) save `last.ckpt` at the end of the current training step and exit with status
    128 + signal; a second signal exits at once, keeping the last complete checkpoint. A
    handler that was there before (submitit's, which requeues the job) runs after the save.

    Handlers are installed by `install()` before any expensive work: a signal that arrives
    before training starts (or after it ended) exits at once, as does a second one; the
    previous handler runs first there too, so a preempted job is requeued whenever it is hit."""

    def __init__(self, last_path: Path) -> None:
        self.last_path = Path(last_path)
        self.received: int | None = None
        self._training = False
        self._trained = False  # training ran and ended (a signal then finds nothing left to save)
        self._previous: dict[int, Any] = {}

    # -- signal handling ------------------------------------------------------------------
    def install(self) -> None:
        from lightning_fabric.plugins.environments import SLURMEnvironment

        for signum in SIGNALS:
            if signum == signal.SIGUSR1 and SLURMEnvironment.detect():
                continue  # Lightning's SLURM auto-requeue owns SIGUSR1 there (hpc checkpoint + requeue)
            try:
                self._previous[signum] = signal.signal(signum, self._handle)
            except ValueError:  # not the main thread (e.g. inside a launcher's worker)
                return

    def uninstall(self) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)
        self._previous = {}

    def _handle(self, signum: int, frame) -> None:
        name = SIGNALS.get(signum, str(signum))
        if self.received is not None or not self._training:
            why = ("second signal" if self.received is not None
                   else "after training ended" if self._trained else "before training started")
            log.warning("%s %s: exiting now; %s is left as it was", name, why, self.last_path)
            # Nothing to save, but the job still has to come back: a scheduler preempts a job
            # whenever it needs the machine, also while it imports, reads data or trains its
            # tokenizer. The previous handler (submitit's) requeues it, and the requeued job
            # resumes the last checkpoint an earlier attempt left, or starts again.
            self._hand_over(signum)
            raise SystemExit(128 + signum)
        self.received = signum
        log.warning("%s received: saving %s at the end of this step, then exiting", name, self.last_path)

    def _hand_over(self, signum: int) -> None:
        """Runs the handler that was installed before ours, e.g. submitit's, which requeues the
        job and exits (status 144 under its local executor). Python's Ctrl-C handler is not
        one to run: it would turn the clean exit into a KeyboardInterrupt traceback."""
        previous = self._previous.get(signum)
        if callable(previous) and previous is not signal.default_int_handler:
            previous(signum, None)

    def on_fit_start(self, trainer, pl_module) -> None:
        # Lightning's own SIGTERM handler, installed after this hook, calls ours after its own
        # (it forwards the signal to worker processes); ours decides when to save and exit.
        self._training = True

    def on_fit_end(self, trainer, pl_module) -> None:
        self._training, self._trained = False, True

    def on_exception(self, trainer, pl_module, exception) -> None:
        # A SIGTERM that lands after this callback's check in a step reaches Lightning's own
        # check first, which stops the loop with SIGTERMException (exit status 0, no save).
        # The loop stopped between steps, so the state is as consistent as at a step end.
        if isinstance(exception, SIGTERMException) and self._training and self.received is not None:
            self._save(trainer, self.received)
        self._training = False

    def exit_status(self) -> int:
        """What a run stopped by a signal exits with: 128 + the signal."""
        return 128 + (self.received or signal.SIGTERM)

    # -- saving ---------------------------------------------------------------------------
    def _save(self, trainer: pl.Trainer, signum: int) -> None:
        trainer.save_checkpoint(self.last_path)
        self._training = False
        log.warning("stopped by %s: saved %s at step %d; continue with resume=%s",
                    SIGNALS.get(signum, signum), self.last_path.name, trainer.global_step, self.last_path.parent.parent)

    def _received_anywhere(self, trainer: pl.Trainer) -> int | None:
        """The signal to stop for, the same on every process: ranks receive a signal at
        different steps, and saving is a collective operation."""
        if trainer.world_size == 1:
            return self.received
        flag = torch.tensor([float(self.received or 0)], device=trainer.strategy.root_device)
        return int(trainer.strategy.reduce(flag, reduce_op="max").item()) or None

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        signum = self._received_anywhere(trainer)
        if signum is None:
            return
        # Lightning logs a step's metrics after these hooks: logged now, the step the run
        # resumes from leaves no gap in its logs (the CSV keeps every row before it)
        trainer._logger_connector.update_train_step_metrics()
        self._save(trainer, signum)
        self._hand_over(signum)  # e.g. submitit requeues the job, which then resumes its run directory
        raise SystemExit(128 + signum)


class NonFiniteGuard:
    """Decides what a step with a NaN/inf loss or gradient does: `skip` drops it (no
    optimiser update) up to `max_skipped` steps in a row, then stops; `stop` ends the run at
    the first one. Stopping raises TrainingDivergedError (exit status 1, one line)."""

    def __init__(self, action: str = "skip", max_skipped: int = 10) -> None:
        if action not in ("skip", "stop"):
            raise ValueError(f"nonfinite.action must be skip or stop, got {action!r}")
        self.action, self.max_skipped = action, max_skipped
        self.skipped_in_a_row = 0
        self.skipped_total = 0

    @staticmethod
    def gradients_finite(module: torch.nn.Module) -> bool:
        grads = [p.grad for p in module.parameters() if p.grad is not None]
        if not grads:
            return True
        norms = torch._foreach_norm(grads)
        return bool(torch.isfinite(torch.stack(norms)).all())

    def check(self, finite: bool, what: str, step: int, hint: str) -> bool:
        """True: go on with this step; False: skip it. Raises when the run must stop."""
        if finite:
            self.skipped_in_a_row = 0
            return True
        self.skipped_in_a_row += 1
        self.skipped_total += 1
        if self.action == "stop" or self.skipped_in_a_row > self.max_skipped:
            streak = f" ({self.skipped_in_a_row} steps in a row)" if self.skipped_in_a_row > 1 else ""
            raise TrainingDivergedError(
                f"training diverged: non-finite {what} at step {step}{streak}; {hint}. "
                "The last good checkpoint is kept"
            )
        log.warning("non-finite %s at step %d: step skipped (%d in a row, at most %d)",
                    what, step, self.skipped_in_a_row, self.max_skipped)
        return False


def divergence_hint(lr: float | None, clip: float | None) -> str:
    parts = []
    if lr is not None and math.isfinite(lr):
        parts.append(f"lower optim.optimizer.lr (now {lr:g})")
    if not clip:
        parts.append("set trainer.gradient_clip_val (e.g. 1.0)")
    parts.append("or check the data and trainer.precision")
    return ", ".join(parts)
