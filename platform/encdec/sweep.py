"""Sweeps: the value each job hands to Hydra's sweeper, and one summary table per sweep folder.

A job records its optimised metric in `<run_dir>/metrics/optimized.json`; the `SweepSummary`
Hydra callback (wired in conf/hydra/default.yaml) reads those files when the multirun ends, so
it works for every launcher, including those whose jobs run in other processes or machines.
"""

from __future__ import annotations

import csv
import json
import logging
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from lightning_fabric.utilities.rank_zero import rank_zero_only
from omegaconf import DictConfig, OmegaConf

from encdec.errors import ConfigError

log = logging.getLogger("encdec.sweep")

RESULT_FILE = Path("metrics") / "optimized.json"
_SENSE = {"max": "maximize", "min": "minimize"}


def optimized_value(
    metrics: dict[str, float],
    optimized_metric: str | None,
    monitor: str,
    monitor_mode: str,
    run_dir: Path,
    sweeper_direction: Any = None,
    required: bool = True,
) -> float | None:
    """The number a sweeper optimises: `optimized_metric`, by default the task's monitored
    metric (the one best.ckpt follows). Records it for the sweep summary (on rank 0).
    A name this run never logged is an error when `required` (a sweeper that optimises the
    value), else None (a plain run, a grid sweep, a run too short to validate), with a warning
    when the name was given as optimized_metric."""
    name = optimized_metric or monitor
    if name not in metrics:
        message = (f"optimized_metric={name} was never logged by this run; "
                   f"set optimized_metric to one of: {', '.join(sorted(metrics)) or '(nothing was logged)'}")
        if required:
            raise ConfigError(message)
        # a plain run that never validates (e.g. experiment=quickstart) has nothing to record;
        # only a metric the user named is worth a warning
        (log.warning if optimized_metric else log.debug)(message)
        return None
    mode = monitor_mode if name == monitor else None
    if mode and sweeper_direction in _SENSE.values() and sweeper_direction != _SENSE[mode]:
        raise ConfigError(
            f"hydra.sweeper.direction={sweeper_direction} but {name} is better when "
            f"{'higher' if mode == 'max' else 'lower'}: set hydra.sweeper.direction={_SENSE[mode]}"
        )
    value = float(metrics[name])
    if rank_zero_only.rank == 0:
        path = Path(run_dir) / RESULT_FILE
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps({"metric": name, "value": value, "mode": mode}) + "\n")
    return value


def _job_overrides(job_dir: Path) -> list[str]:
    path = job_dir / ".hydra" / "overrides.yaml"
    return list(OmegaConf.load(path)) if path.exists() else []


def _trial_number(job_dir: Path) -> tuple[int, str]:
    return (int(job_dir.name), "") if job_dir.name.isdigit() else (1 << 30, job_dir.name)


def summarize_sweep(sweep_dir: Path, direction: str | None = None) -> list[dict[str, Any]]:
    """Writes `sweep_summary.csv` and `sweep_summary.md` into `sweep_dir`: one row per job
    (trial, the parameters that differ between jobs, value, run directory) and the best one.
    `direction` is 'maximize' / 'minimize'; by default the jobs' recorded metric mode."""
    job_dirs = sorted((p for p in Path(sweep_dir).iterdir() if (p / ".hydra").is_dir()), key=_trial_number)
    overrides = {d: _job_overrides(d) for d in job_dirs}
    common = set.intersection(*(set(o) for o in overrides.values())) if len(job_dirs) > 1 else set()
    rows, modes = [], set()
    for d in job_dirs:
        result = json.loads((d / RESULT_FILE).read_text()) if (d / RESULT_FILE).exists() else None
        if result:
            modes.add(result["mode"])
        rows.append({
            "trial": d.name,
            "params": " ".join(o for o in overrides[d] if o not in common),
            "metric": result["metric"] if result else "",
            "value": result["value"] if result else None,
            "run_dir": str(d),
        })
    if direction not in _SENSE.values():
        direction = _SENSE.get(modes.pop()) if len(modes) == 1 else None
    scored = [r for r in rows if r["value"] is not None]
    best = None
    if scored and direction:
        best = (max if direction == "maximize" else min)(scored, key=lambda r: r["value"])
    for r in rows:
        r["best"] = r is best

    with open(Path(sweep_dir) / "sweep_summary.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=["trial", "params", "metric", "value", "run_dir", "best"])
        writer.writeheader()
        writer.writerows(rows)
    lines = [f"# Sweep {sweep_dir}", ""]
    if best:
        lines.append(f"Best: trial {best['trial']}, {best['metric']} = {best['value']:.6g} ({direction}), "
                     f"{best['params'] or 'no overrides'}, {best['run_dir']}")
    else:
        lines.append("Best: none named (" + ("no job recorded a value" if not scored else
                     "unknown direction: set hydra.sweeper.direction") + ")")
    lines += ["", "| trial | params | metric | value | run dir |", "|---|---|---|---|---|"]
    for r in rows:
        value = "failed or unfinished" if r["value"] is None else f"{r['value']:.6g}"
        mark = " (best)" if r["best"] else ""
        lines.append(f"| {r['trial']}{mark} | {r['params'] or '-'} | {r['metric'] or '-'} | {value} | {r['run_dir']} |")
    (Path(sweep_dir) / "sweep_summary.md").write_text("\n".join(lines) + "\n")
    if best:
        log.info("sweep summary: %s; best trial %s (%s = %.6g)", Path(sweep_dir) / "sweep_summary.md",
                 best["trial"], best["metric"], best["value"])
    return rows


class SweepSummary(Callback):
    """Hydra callback: on the end of a multirun, write the sweep summary table."""

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        sweep_dir = Path(config.hydra.sweep.dir)
        if sweep_dir.is_dir():
            summarize_sweep(sweep_dir, config.hydra.sweeper.get("direction"))
