"""What a run shows: sample tables and metric protocols, sent to every configured logger.

Each Lightning logger has its own API for tables and text, hence one small function per kind.
"""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import numpy as np
from pytorch_lightning.loggers import Logger, TensorBoardLogger, WandbLogger

from encdec.task import ImageCell, MetricReport, SampleTable


def _has_images(table: SampleTable) -> bool:
    return any(isinstance(v, ImageCell) for row in table.rows for v in row)


def _markdown(table: SampleTable, image_links: dict[tuple[int, int], str] | None = None) -> str:
    def cell(v, at=None):
        if isinstance(v, ImageCell):
            return f"![image]({image_links[at]})" if image_links and at in image_links else "(image)"
        return str(v).replace("|", "\\|").replace("\n", " ")

    lines = ["| " + " | ".join(table.columns) + " |", "|" + "---|" * len(table.columns)]
    lines += ["| " + " | ".join(cell(v, (r, c)) for c, v in enumerate(row)) + " |" for r, row in enumerate(table.rows)]
    return "\n".join(lines)


def captioned_image(table: SampleTable, row: list, width: int = 512) -> np.ndarray:
    """One row as one picture: its image cells side by side, its text cells written beneath
    (TensorBoard images carry no caption of their own). uint8 [H, W, 3]."""
    from PIL import Image, ImageDraw

    tiles = [Image.fromarray(np.asarray(v.pixels, dtype=np.uint8)) for v in row if isinstance(v, ImageCell)]
    height = max(t.height for t in tiles)
    tiles = [t.resize((max(1, t.width * height // t.height), height)) for t in tiles]
    text = [
        line
        for name, v in zip(table.columns, row) if not isinstance(v, ImageCell)
        for line in textwrap.wrap(f"{name}: {v}", width=max(20, width // 7)) or [f"{name}:"]
    ]
    canvas = Image.new("RGB", (max(width, sum(t.width for t in tiles)), height + 14 * len(text) + 6), "white")
    x = 0
    for t in tiles:
        canvas.paste(t, (x, 0))
        x += t.width
    draw = ImageDraw.Draw(canvas)
    for i, line in enumerate(text):
        draw.text((4, height + 3 + 14 * i), line, fill="black")
    return np.asarray(canvas)


def _log_image_samples(loggers: list[Logger], key: str, table: SampleTable, step: int, run_dir: Path) -> None:
    from PIL import Image

    for logger in loggers:
        if isinstance(logger, WandbLogger):
            import wandb

            data = [[wandb.Image(v.pixels) if isinstance(v, ImageCell) else str(v) for v in r] for r in table.rows]
            logger.log_table(key=key, columns=table.columns, data=data, step=step)
        elif isinstance(logger, TensorBoardLogger):
            logger.experiment.add_text(key, _markdown(table), global_step=step)
            for i, row in enumerate(table.rows):
                logger.experiment.add_image(f"{key}/{i}", captioned_image(table, row), global_step=step, dataformats="HWC")
    # files: the images next to a markdown table that links them
    stem = f"{key.replace('/', '_')}_step{step}"
    folder = run_dir / "samples" / stem
    folder.mkdir(parents=True, exist_ok=True)
    links = {}
    for r, row in enumerate(table.rows):
        for c, v in enumerate(row):
            if isinstance(v, ImageCell):
                Image.fromarray(np.asarray(v.pixels, dtype=np.uint8)).save(folder / f"{r}_{c}.png")
                links[(r, c)] = f"{stem}/{r}_{c}.png"
    (run_dir / "samples" / f"{stem}.md").write_text(_markdown(table, links) + "\n")


def log_samples(loggers: list[Logger], key: str, table: SampleTable, step: int, run_dir: Path) -> None:
    if _has_images(table):
        _log_image_samples(loggers, key, table, step, run_dir)
        return
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


