"""`encdec-runs <dir>... [--html report.html]`: compare finished runs without a server.

Prints one row per run directory found under the given folders: its name, task, the config
keys whose values differ between the runs, steps, wall time, the best monitored validation
score and the test metrics. `--html` also writes a static page with the learning curves of
the runs side by side (matplotlib PNGs embedded in the page).
"""

from __future__ import annotations

import argparse
import base64
import csv
import html
import io
import json
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from encdec.errors import ConfigError
from encdec.progress import format_duration

# keys that differ between any two runs without changing what they learn
_IGNORED_KEYS = ("run_id", "resume", "paths.", "hydra.", "logger.", "callbacks.")


@dataclass
class Run:
    path: Path
    name: str = ""
    config: dict[str, Any] = field(default_factory=dict)
    task: str = "?"
    choices: dict[str, str] = field(default_factory=dict)  # config group -> option
    steps: int | None = None
    wall_seconds: float | None = None
    monitor: str | None = None
    best: float | None = None
    test: dict[str, float] = field(default_factory=dict)
    curves: dict[str, list[tuple[int, float]]] = field(default_factory=dict)


def find_runs(folders: list[str]) -> list[Path]:
    """Run directories (those holding the config.yaml encdec-train writes) in or under each
    folder; hidden folders (Hydra's .hydra/) and evaluation outputs (eval/) are skipped."""
    found: list[Path] = []
    for folder in folders:
        root = Path(folder).expanduser()
        if not root.is_dir():
            raise ConfigError(f"{folder}: not a directory; give run directories or folders that hold them")
        for cfg in sorted(root.rglob("config.yaml")):
            rel = cfg.relative_to(root).parts[:-1]
            if any(p.startswith(".") or p == "eval" for p in rel):
                continue
            if cfg.parent not in found:
                found.append(cfg.parent)
    return found


def flatten(config: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(config, dict):
        out: dict[str, Any] = {}
        for k, v in config.items():
            out.update(flatten(v, f"{prefix}{k}."))
        return out
    return {prefix.rstrip("."): config}


def _group_choices(run_dir: Path) -> dict[str, str]:
    """The option picked in each config group (Hydra's record of the run), hydra/* aside."""
    hydra_file = run_dir / ".hydra" / "hydra.yaml"
    if not hydra_file.exists():
        return {}
    choices = (yaml.safe_load(hydra_file.read_text()) or {}).get("hydra", {}).get("runtime", {}).get("choices", {})
    return {str(k): str(v) for k, v in choices.items() if not str(k).startswith("hydra")}


def _task_name(choices: dict[str, str], config: dict[str, Any]) -> str:
    if choices.get("task"):
        return choices["task"]
    target = str(config.get("task", {}).get("adapter", {}).get("_target_", "?"))
    return target.rsplit(".", 1)[-1]


def _read_curves(csv_file: Path) -> dict[str, list[tuple[int, float]]]:
    curves: dict[str, list[tuple[int, float]]] = {}
    if not csv_file.exists():
        return curves
    with csv_file.open(newline="") as f:
        for row in csv.DictReader(f):
            step = int(float(row.get("step") or 0))
            for key, value in row.items():
                if key in ("step", "epoch") or value in ("", None):
                    continue
                curves.setdefault(key, []).append((step, float(value)))
    return curves


def _checkpoint_state(path: Path) -> dict[str, Any]:
    if not path.exists():
        return {}
    import torch

    # mmap: the weights stay on disk, only the small bookkeeping entries are read
    return torch.load(path, map_location="cpu", weights_only=True, mmap=True)


def read_run(run_dir: Path) -> Run:
    run = Run(path=run_dir.resolve())
    run.config = yaml.safe_load((run_dir / "config.yaml").read_text()) or {}
    run.choices = _group_choices(run_dir)
    run.task = _task_name(run.choices, run.config)
    run.curves = _read_curves(run_dir / "csv" / "metrics.csv")
    last = _checkpoint_state(run_dir / "checkpoints" / "last.ckpt")
    run.steps = last.get("global_step")
    if run.steps is None:
        steps = [s for points in run.curves.values() for s, _ in points]
        run.steps = max(steps) + 1 if steps else None
    best = _checkpoint_state(run_dir / "checkpoints" / "best.ckpt")
    for state in (best.get("callbacks") or {}).values():
        if isinstance(state, dict) and state.get("monitor") and state.get("best_model_score") is not None:
            run.monitor, run.best = state["monitor"], float(state["best_model_score"])
            break
    test_file = run_dir / "metrics" / "test.json"
    if test_file.exists():
        run.test = {k: float(v["value"]) for k, v in json.loads(test_file.read_text()).items()}
    # wall time: from the first file the run wrote to the last one
    written = [p.stat().st_mtime for sub in ("checkpoints", "metrics", "csv", "samples") for p in (run_dir / sub).glob("**/*") if p.is_file()]
    started = [p.stat().st_mtime for p in (run_dir / "run_id", run_dir / ".hydra" / "config.yaml") if p.exists()]
    if written and started:
        run.wall_seconds = max(written) - min(started)
    return run


def _differ(values: list[Any]) -> bool:
    return len({json.dumps(v, sort_keys=True, default=str) for v in values}) > 1


def differing_keys(runs: list[Run]) -> tuple[list[str], list[str]]:
    """(config groups whose option differs, keys whose value differs outside those groups)."""
    groups = sorted(set().union(*(r.choices for r in runs))) if runs else []
    groups = [g for g in groups if _differ([r.choices.get(g) for r in runs]) and not g.startswith(("logger", "callbacks", "paths"))]
    flats = [flatten(r.config) for r in runs]
    keys = sorted(set().union(*flats)) if flats else []
    keys = [k for k in keys if not k.startswith(_IGNORED_KEYS) and k.split(".")[0] not in groups]
    return groups, [k for k in keys if _differ([f.get(k) for f in flats])]


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.4g}"


def table_rows(runs: list[Run]) -> tuple[list[str], list[list[str]]]:
    diff_groups, diff = differing_keys(runs)
    test_keys = sorted(set().union(*(r.test for r in runs))) if runs else []
    columns = ["run", "task", "differs", "steps", "wall time", "best (monitored)"] + [f"test/{k}" for k in test_keys]
    rows = []
    for r in runs:
        flat = flatten(r.config)
        differs = " ".join([f"{g}={r.choices.get(g)}" for g in diff_groups] + [f"{k}={flat.get(k)}" for k in diff]) or "-"
        best = f"{r.monitor} {_fmt(r.best)}" if r.monitor else "-"
        rows.append([r.name, r.task, differs, "-" if r.steps is None else f"{r.steps:,}",
                     format_duration(r.wall_seconds) if r.wall_seconds is not None else "-", best]
                    + [_fmt(r.test.get(k)) for k in test_keys])
    return columns, rows


def format_table(columns: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(c), *(len(r[i]) for r in rows)) if rows else len(c) for i, c in enumerate(columns)]
    line = lambda cells: "  ".join(c.ljust(w) for c, w in zip(cells, widths)).rstrip()  # noqa: E731
    return "\n".join([line(columns), line(["-" * w for w in widths])] + [line(r) for r in rows])


def _curve_names(runs: list[Run]) -> list[str]:
    """train/loss, val/loss, each monitored metric, then the other validation curves."""
    names = {k for r in runs for k in r.curves if not k.startswith("test/")}
    first = ["train/loss", "val/loss"] + sorted({r.monitor for r in runs if r.monitor})
    return [k for k in first if k in names] + sorted(k for k in names if k.startswith("val/") and k not in first)


def learning_curves_png(runs: list[Run], max_panels: int = 4) -> bytes:
    """One panel per curve (train loss, the monitored metric, ...), every run a line."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.lines
    import matplotlib.pyplot as plt

    names = _curve_names(runs)[:max_panels] or ["(no curves: runs without csv/metrics.csv)"]
    fig, axes = plt.subplots(1, len(names), figsize=(4.5 * len(names), 3.6), squeeze=False)
    for ax, name in zip(axes[0], names):
        for i, r in enumerate(runs):  # one colour per run in every panel
            points = r.curves.get(name, [])
            if points:
                ax.plot([s for s, _ in points], [v for _, v in points], marker="o" if len(points) < 30 else None,
                        markersize=3, color=f"C{i % 10}")
        ax.set_title(name)
        ax.set_xlabel("step")
        ax.grid(alpha=0.3)
    handles = [matplotlib.lines.Line2D([], [], color=f"C{i % 10}", label=r.name) for i, r in enumerate(runs)]
    fig.legend(handles=handles, loc="lower center", ncol=min(len(runs), 4), fontsize=9, frameon=False)
    fig.tight_layout(rect=(0, 0.1 + 0.04 * (len(runs) // 4), 1, 1))
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    plt.close(fig)
    return buf.getvalue()


def write_html(runs: list[Run], out: Path) -> None:
    columns, rows = table_rows(runs)
    head = "".join(f"<th>{html.escape(c)}</th>" for c in columns)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>" for row in rows)
    png = base64.b64encode(learning_curves_png(runs)).decode()
    paths = "".join(f"<li><code>{html.escape(r.name)}</code>: {html.escape(str(r.path))}</li>" for r in runs)
    out.write_text(f"""<!doctype html>
<html><head><meta charset="utf-8"><title>encdec runs</title>
<style>body{{font-family:sans-serif;margin:2em}} table{{border-collapse:collapse}}
td,th{{border:1px solid #ccc;padding:4px 8px;text-align:left;font-size:14px}} th{{background:#f4f4f4}}</style>
</head><body>
<h1>encdec runs</h1>
<table><tr>{head}</tr>{body}</table>
<h2>Learning curves</h2>
<img alt="learning curves" src="data:image/png;base64,{png}">
<h2>Run directories</h2><ul>{paths}</ul>
</body></html>
""", encoding="utf-8")


def _names(paths: list[Path]) -> list[str]:
    """Each run's path relative to the deepest folder they share."""
    resolved = [p.resolve() for p in paths]
    common = Path(os.path.commonpath(resolved)) if len(resolved) > 1 else resolved[0].parent
    return [str(p.relative_to(common)) or p.name for p in resolved]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="encdec-runs", description=__doc__.split("\n\n")[0])
    parser.add_argument("dirs", nargs="+", help="run directories, or folders to search for them (e.g. runs/)")
    parser.add_argument("--html", metavar="OUT.html", help="also write a static report with learning curves")
    args = parser.parse_args(argv)
    try:
        paths = find_runs(args.dirs)
        if not paths:
            raise ConfigError(f"no run directories (with a config.yaml) under {', '.join(args.dirs)}")
        runs = [read_run(p) for p in paths]
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    for run, name in zip(runs, _names(paths)):
        run.name = name
    print(format_table(*table_rows(runs)))
    if args.html:
        write_html(runs, Path(args.html))
        print(f"report: {Path(args.html).resolve()}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
