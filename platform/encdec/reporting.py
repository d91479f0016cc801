"""What a run shows: its config, metric protocols and sample tables, sent to every logger.

Each Lightning logger has its own API for tables, text and images, hence one small function
per kind. TensorBoard renders markdown in its text tab, so tables go there as markdown and
images as one grid per table, its captions as text in the table beside it (never drawn
into the pixels, where they cannot be read or searched).
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import yaml
from pytorch_lightning.loggers import Logger, TensorBoardLogger, WandbLogger

from encdec.task import ImageCell, MetricReport, SampleTable

#: images narrower than this are enlarged (nearest neighbour: a 64-pixel scene stays sharp)
MIN_TILE = 192
#: a grid is at most this wide, so it shows whole at TensorBoard's default card size
MAX_GRID_WIDTH = 1024
#: config keys left out of the TensorBoard HParams table (they are on the `config` text page)
_NOT_HPARAMS = ("callbacks.", "logger.", "paths.", "run_id")


def _has_images(table: SampleTable) -> bool:
    return any(isinstance(v, ImageCell) for row in table.rows for v in row)


def _escape(v: Any) -> str:
    return str(v).replace("|", "\\|").replace("\n", " ")


def _markdown(table: SampleTable, image_cell=None) -> str:
    """A markdown table; `image_cell(row, column)` says what stands in an image cell."""

    def cell(v, r, c):
        if isinstance(v, ImageCell):
            return image_cell(r, c) if image_cell else "(image)"
        return _escape(v)

    lines = ["| " + " | ".join(table.columns) + " |", "|" + "---|" * len(table.columns)]
    lines += ["| " + " | ".join(cell(v, r, c) for c, v in enumerate(row)) + " |" for r, row in enumerate(table.rows)]
    return "\n".join(lines)


def image_grid(images: list[np.ndarray], min_tile: int = MIN_TILE, max_width: int = MAX_GRID_WIDTH) -> np.ndarray:
    """Images as one picture, left to right then top to bottom, each enlarged to at least
    `min_tile` pixels high (whole multiples, so small images stay sharp), on white with
    a gap between tiles. uint8 [H, W, 3]."""
    from PIL import Image

    tiles = []
    for pixels in images:
        img = Image.fromarray(np.asarray(pixels, dtype=np.uint8)).convert("RGB")
        scale = max(1, math.ceil(min_tile / max(1, img.height)))
        if img.width * scale > max_width:  # wide strips (e.g. a heatmap per word) keep their size
            scale = 1
        tiles.append(img.resize((img.width * scale, img.height * scale), Image.NEAREST))
    gap = 8
    tile_w, tile_h = max(t.width for t in tiles), max(t.height for t in tiles)
    cols = max(1, min(len(tiles), (max_width + gap) // (tile_w + gap)))
    rows = math.ceil(len(tiles) / cols)
    canvas = Image.new("RGB", (cols * tile_w + (cols - 1) * gap, rows * tile_h + (rows - 1) * gap), "white")
    for i, t in enumerate(tiles):
        canvas.paste(t, ((i % cols) * (tile_w + gap), (i // cols) * (tile_h + gap)))
    return np.asarray(canvas)


def _tensorboard_images(key: str, table: SampleTable, image_columns: list[int]):
    """(tag, pixels) per TensorBoard image card: small images of a column share one grid
    (`<key>/<column>`); figures wider than two grid tiles (e.g. a heatmap per word, with
    labels) get a card each (`<key>/<column>_<n>`), because TensorBoard shrinks every image
    to the width of its card (~360 px by default) and a grid of figures becomes unreadable."""
    for c in image_columns:
        numbered = [(r, row[c].pixels) for r, row in enumerate(table.rows) if isinstance(row[c], ImageCell)]
        if all(np.asarray(p).shape[1] > 2 * MIN_TILE for _, p in numbered):
            for r, pixels in numbered:
                yield f"{key}/{table.columns[c]}_{r + 1}", np.asarray(pixels, dtype=np.uint8)
        else:
            yield f"{key}/{table.columns[c]}", image_grid([p for _, p in numbered])


def _log_image_samples(loggers: list[Logger], key: str, table: SampleTable, step: int, run_dir: Path) -> None:
    from PIL import Image

    image_columns = sorted({c for row in table.rows for c, v in enumerate(row) if isinstance(v, ImageCell)})
    for logger in loggers:
        if isinstance(logger, WandbLogger):
            import wandb

            data = [[wandb.Image(v.pixels) if isinstance(v, ImageCell) else str(v) for v in r] for r in table.rows]
            logger.log_table(key=key, columns=table.columns, data=data, step=step)
        elif isinstance(logger, TensorBoardLogger):
            for tag, pixels in _tensorboard_images(key, table, image_columns):
                logger.experiment.add_image(tag, pixels, global_step=step, dataformats="HWC")
            header = (f"Images: `{key}/<column>` in the Images tab, numbered left to right, top to bottom "
                      f"(wide figures: one card each, `{key}/<column>_<n>`).\n\n")
            logger.experiment.add_text(key, header + _markdown(table, lambda r, c: f"#{r + 1}"), global_step=step)
    # files: the images next to a markdown table that links them
    stem = f"{key.replace('/', '_')}_step{step}"
    folder = run_dir / "samples" / stem
    folder.mkdir(parents=True, exist_ok=True)
    for r, row in enumerate(table.rows):
        for c, v in enumerate(row):
            if isinstance(v, ImageCell):
                Image.fromarray(np.asarray(v.pixels, dtype=np.uint8)).save(folder / f"{r}_{c}.png")
    link = lambda r, c: f"![image]({stem}/{r}_{c}.png)"  # noqa: E731
    (run_dir / "samples" / f"{stem}.md").write_text(_markdown(table, link) + "\n")


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


def protocol_markdown(record: Mapping[str, Mapping[str, Any]]) -> str:
    """`- **metric** = value: protocol`, one line per metric of a metrics/<split>.json record
    (a list, not a table: TensorBoard breaks a table's short columns mid-word to make room
    for the long protocol column)."""
    lines = []
    for name, info in record.items():
        value = info["value"]
        shown = f"{value:.4g}" if isinstance(value, (int, float)) else _escape(value)
        lines.append(f"- **{_escape(name)}** = {shown}: {_escape(info.get('protocol', '')) or '-'}")
    return "\n".join(lines)


def log_protocol(loggers: list[Logger], split: str, report: MetricReport, run_dir: Path, step: int | None = None) -> None:
    """Each evaluation's values with their protocols (sacreBLEU signature, ranking mode...),
    at the step of that evaluation, so a dashboard shows how every number was measured."""
    record = {
        name: {"value": float(value), "protocol": report.protocol.get(name, "")}
        for name, value in report.values.items()
    }
    for logger in loggers:
        if isinstance(logger, WandbLogger):
            logger.experiment.summary.update({f"{split}/{k}_protocol": v["protocol"] for k, v in record.items()})
            logger.log_table(
                key=f"{split}/protocol", columns=["metric", "value", "protocol"],
                data=[[k, v["value"], v["protocol"]] for k, v in record.items()], step=step,
            )
        elif isinstance(logger, TensorBoardLogger):
            logger.experiment.add_text(f"{split}/protocol", protocol_markdown(record), global_step=step)
    path = run_dir / "metrics" / f"{split}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(record, indent=2) + "\n")


def flat_hparams(config: Mapping[str, Any], prefix: str = "") -> dict[str, int | float | str | bool]:
    """A nested config as TensorBoard hparams: dotted keys, scalar values (lists and None as text)."""
    flat: dict[str, int | float | str | bool] = {}
    for key, value in config.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            flat.update(flat_hparams(value, f"{name}."))
        elif isinstance(value, (bool, int, float, str)):
            flat[name] = value
        else:
            flat[name] = str(value)
    return flat


def config_markdown(config: Mapping[str, Any], monitor: str | None) -> str:
    """The resolved config as a text page: what is monitored, then the YAML itself."""
    head = f"Checkpoints keep the best `{monitor}`.\n\n" if monitor else ""
    body = yaml.safe_dump(dict(config), sort_keys=False, default_flow_style=False, allow_unicode=True)
    # four-space indentation makes a markdown code block that keeps YAML's own indentation
    return head + "\n".join("    " + line for line in body.splitlines())


def log_config(loggers: list[Logger], config: Mapping[str, Any], monitor: str | None) -> None:
    """The resolved run config to every logger: wandb's config, CSV's hparams.yaml, and in
    TensorBoard an hparams summary (with the monitored metric, so the HParams tab lists runs
    with their score) plus a `config` text page."""
    for logger in loggers:
        logger.log_hyperparams(dict(config))
        if isinstance(logger, TensorBoardLogger):
            from torch.utils.tensorboard.summary import hparams

            # the summaries alone: Lightning's log_hyperparams(metrics=...) would also write a
            # made-up value of the monitored metric at step 0 into its curve
            writer = logger.experiment._get_file_writer()
            # what the run learns from, not where it prints or logs: the HParams table stays short
            params = {k: v for k, v in flat_hparams(config).items() if not k.startswith(_NOT_HPARAMS)}
            for summary in hparams(params, {monitor: 0.0} if monitor else {}):
                writer.add_summary(summary)
            logger.experiment.add_text("config", config_markdown(config, monitor), global_step=0)
