"""`encdec-average run_dir=<run> [last=5] [output=<file.ckpt>]`: average the last N epoch
checkpoints of a run (fairseq's `average_checkpoints.py`) into `checkpoints/averaged.ckpt`."""

from __future__ import annotations

from pathlib import Path

import hydra
from omegaconf import DictConfig

from encdec.averaging import average_checkpoints, last_checkpoints
from encdec.cli import CONF_DIR, run_reporting_user_errors
from encdec.errors import ConfigError


def average(cfg: DictConfig) -> Path:
    run_dir = Path(cfg.run_dir).expanduser().resolve()
    if not (run_dir / "checkpoints").is_dir():
        raise ConfigError(f"run_dir={run_dir}: no checkpoints/ folder; point run_dir at a directory made by encdec-train")
    paths = last_checkpoints(run_dir, cfg.last)
    output = Path(cfg.output).expanduser() if cfg.get("output") else run_dir / "checkpoints" / "averaged.ckpt"
    average_checkpoints(paths, output)
    print(f"averaged {len(paths)} checkpoint(s) ({', '.join(p.name for p in paths)}) into {output}")
    return output


@hydra.main(config_path=CONF_DIR, config_name="average", version_base="1.3")
def main(cfg: DictConfig) -> None:
    run_reporting_user_errors(average, cfg)


if __name__ == "__main__":
    main()
