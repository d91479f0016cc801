"""Lightning's CSV logger, made to survive process boundaries.

Under `strategy=ddp_spawn` every stage (fit, then test) runs in freshly spawned workers that
start from the parent's copy of the logger. Lightning's CSV writer keeps the file's columns in
memory only, so the test workers, which never saw the columns fit wrote, rewrote metrics.csv
with a header lacking them and failed ("dict contains fields not in fieldnames"). This writer
takes the columns from the file it appends to.
"""

from __future__ import annotations

import csv

from pytorch_lightning.loggers import CSVLogger as _LightningCSVLogger
from pytorch_lightning.loggers.csv_logs import ExperimentWriter
from lightning_fabric.loggers.logger import rank_zero_experiment


class _FileHeaderWriter(ExperimentWriter):
    def _record_new_keys(self) -> set[str]:
        if self._fs.isfile(self.metrics_file_path):
            with self._fs.open(self.metrics_file_path, "r", newline="") as file:
                header = next(csv.reader(file), [])
            self.metrics_keys.extend(k for k in header if k not in self.metrics_keys)
        return super()._record_new_keys()


class CSVLogger(_LightningCSVLogger):
    """`pytorch_lightning.loggers.CSVLogger` whose columns are the union of the file's and the
    ones logged now, whichever process writes."""

    @property
    @rank_zero_experiment
    def experiment(self) -> ExperimentWriter:
        if self._experiment is None:
            self._fs.makedirs(self.root_dir, exist_ok=True)
            self._experiment = _FileHeaderWriter(log_dir=self.log_dir)
        return self._experiment
