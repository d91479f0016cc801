"""Loggers that continue a resumed run instead of starting it again, keep their CSV columns
across the processes of a distributed run, and finish their runs completely."""

from __future__ import annotations

import csv
import os

from lightning_fabric.loggers.logger import rank_zero_experiment
from pytorch_lightning.loggers import CSVLogger as _LightningCSVLogger
from pytorch_lightning.loggers.csv_logs import ExperimentWriter


class _ContinuingWriter(ExperimentWriter):
    """Lightning's CSV writer deletes an existing metrics.csv. Given `keep_before_step`, this
    one keeps the rows a resumed run already logged before that step (later rows are logged
    again by the resumed run) and appends under the same header."""

    def __init__(self, log_dir: str, keep_before_step: int | None) -> None:
        self.keep_before_step = keep_before_step
        super().__init__(log_dir=log_dir)

    def _check_log_dir_exists(self) -> None:
        if self.keep_before_step is None or not os.path.isfile(self.metrics_file_path):
            return super()._check_log_dir_exists()
        with open(self.metrics_file_path, newline="") as f:
            reader = csv.DictReader(f)
            keys = list(reader.fieldnames or [])
            rows = [r for r in reader if r.get("step") and int(float(r["step"])) < self.keep_before_step]
        with open(self.metrics_file_path, "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=keys)
            writer.writeheader()
            writer.writerows(rows)
        self.metrics_keys = keys

    def _record_new_keys(self) -> set[str]:
        # Under ddp_spawn each stage (fit, then test) runs in freshly spawned workers that start
        # from the parent's copy of this writer, which never saw the columns the previous stage
        # wrote: without the file's header, the test stage rewrote metrics.csv without them and
        # failed ("dict contains fields not in fieldnames").
        if os.path.isfile(self.metrics_file_path):
            with open(self.metrics_file_path, newline="") as f:
                header = next(csv.reader(f), [])
            self.metrics_keys.extend(k for k in header if k not in self.metrics_keys)
        return super()._record_new_keys()


class CSVLogger(_LightningCSVLogger):
    """Lightning's CSV logger; `resume_from_step(step)` before training keeps the existing
    metrics.csv up to that step and continues it."""

    _keep_before_step: int | None = None

    def resume_from_step(self, step: int) -> None:
        self._keep_before_step = step

    @property
    @rank_zero_experiment
    def experiment(self) -> ExperimentWriter:
        if self._experiment is None:
            self._fs.makedirs(self.root_dir, exist_ok=True)
            self._experiment = _ContinuingWriter(self.log_dir, self._keep_before_step)
        return self._experiment


def finish_wandb(loggers) -> None:
    """Finish each started wandb run, which waits until everything is written (an offline
    run's .wandb file included). Left to wandb's exit hook, the wandb service could still be
    writing the last records (the test metrics, the last sample tables) after this process
    has exited, and a reader of the run folder would find them missing."""
    from pytorch_lightning.loggers import WandbLogger

    for logger in loggers:
        if isinstance(logger, WandbLogger) and getattr(logger, "_experiment", None) is not None:
            logger.experiment.finish()
