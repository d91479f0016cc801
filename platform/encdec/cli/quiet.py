"""Silence the third-party noise a run prints before and while it trains.

Lightning announces accelerators it does not use ("GPU available: False"), advertises a
cloud logger, reports where it stopped and prints a model summary whose FLOPs column reads
0 for our modules; torch and Lightning warn about their own deprecations. None of it is
for the person running `encdec-train`, and it pushes the lines that are (progress, the
end-of-run summary) off the screen. `verbose=true` (encdec-train, encdec-eval, encdec-predict) keeps all of it.
"""

from __future__ import annotations

import logging
import os
import re
import warnings

# rank-zero info lines of Lightning that describe Lightning, not the run
_NOISE = re.compile(
    r"^(GPU available|TPU available|HPU available|IPU available|💡 Tip|Seed set to"
    r"|`Trainer\.(fit|validate|test)` stopped|Trainer already configured with model summary|LOCAL_RANK: \d+ - CUDA_VISIBLE_DEVICES)"
)
_RANK_ZERO_LOGGERS = (
    "pytorch_lightning.utilities.rank_zero",
    "lightning_fabric.utilities.rank_zero",
    "lightning.pytorch.utilities.rank_zero",
    "lightning.fabric.utilities.rank_zero",
)
_SUMMARY_LOGGERS = ("pytorch_lightning.callbacks.model_summary", "lightning.pytorch.callbacks.model_summary")
# warnings about how Lightning is used that hold for every run of this platform by design
_EXPECTED_WARNINGS = (
    r".*overridden `transfer_batch_to_device`.*",
    r".*does not have many workers.*",
    r".*smaller than the logging interval.*",
    r".*The anonymous setting has no effect.*",
    # resuming mid-epoch is exact here: encdec.fault_tolerance.DataPosition restores the position
    r".*resuming from a checkpoint that ended before the epoch ended.*",
    r".*Checkpoint directory .* exists and is not empty.*",
    # bf16-mixed: the summary counts parameters in fp32, which is what it is asked for
    r".*is not supported by the model summary.*",
)


class DropNoise(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not _NOISE.match(record.getMessage())


_FILTER = DropNoise()


def silence_third_party_noise() -> None:
    """Idempotent; affects this process only (loggers, warning filters, WANDB_SILENT)."""
    for name in _RANK_ZERO_LOGGERS:
        logger = logging.getLogger(name)
        if _FILTER not in logger.filters:
            logger.addFilter(_FILTER)
    for name in _SUMMARY_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)
    warnings.filterwarnings("ignore", category=DeprecationWarning)
    warnings.filterwarnings("ignore", category=FutureWarning)
    for message in _EXPECTED_WARNINGS:
        warnings.filterwarnings("ignore", message=message)
    os.environ.setdefault("WANDB_SILENT", "true")
