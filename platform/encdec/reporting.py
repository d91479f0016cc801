"""What a run shows: sample tables and metric protocols, sent to every configured logger.

Each Lightning logger has its own API for tables and text, hence one small function per kind.
"""

from __future__ import annotations

import json
from pathlib import Path

from pytorch_lightning.loggers import Logger, TensorBoardLogger, WandbLogger

from encdec.task import MetricReport, SampleTable


def _markdown(table: SampleTable) -> str:
    cell = lambda v: str(v).replace("|", "\\|").replace("\n", " ")  # noqa: E731
    lines = ["| " + " | ".join(table.columns) + " |", "|" + "---|" * len(table.columns)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in table.rows]
    return "\n".join(lines)


def log_samples(loggers: list[Logger], key: str, table: SampleTable, step: int, run_dir: Path) -> None:
    for logger in loggers:
        if isinstance(logger, WandbLogger):
            logger.log_text(key=key, columns=table.columns, data=[[str(v) for v in r] for r in table.rows], step=step)
        elif isinstance(logger, TensorBoardLogger):
            logger.experiment.add_text(key, _markdown(table), global_step=step)
    # the CSV logger has no table API: samples go next to its metrics file
    out = run_dir / "samples" / f"{key.replace('/', '_')}_step{step}.md"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(_markdown(table) + "\n")


def log_protocol(loggers: list[Logger], split: str, report: MetricReport, run_dir: Path) -> None:
    """Protocol strings (sacreBLEU signature, ranking mode...) next to the values."""
    record = {
        name: {"value": value, "protocol": report.protocol.get(name, "")}
        for name, value in report.values.items()
    }
    for logger in loggers:
        if isinstance(logger, WandbLogger):
            logger.experiment.summary.update({f"{split}/{k}_protocol": v["protocol"] for k, v in record.items()})
        elif isinstance(logger, TensorBoardLogger):
            logger.experiment.add_text(f"{split}/protocol", json.dumps(record, indent=2))
    path = run_dir / "metrics" / f"{split}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(record, indent=2) + "\n")


