"""A Lightning callback for bench runs: wall seconds of each training epoch's batches
(validation excluded), written to <run_dir>/epoch_times.json. Used by recsys_vs_recbole.py
with PYTHONPATH=bench, as `+callbacks.epoch_timer._target_=epoch_timer.EpochTimer`."""

import json
import time
from pathlib import Path

import pytorch_lightning as pl


class EpochTimer(pl.Callback):
    def __init__(self, path: str = "epoch_times.json"):
        self.path, self.times, self._start, self._last = path, [], None, None

    def on_train_epoch_start(self, trainer, pl_module):
        self._start = self._last = time.perf_counter()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        self._last = time.perf_counter()

    def on_train_epoch_end(self, trainer, pl_module):
        self.times.append(self._last - self._start)
        Path(trainer.default_root_dir, self.path).write_text(json.dumps(self.times) + "\n")
