"""`encdec-train`: compose a config, train, checkpoint, test. Resume with `resume=<run_dir>`."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import NamedTuple

import hydra
import pytorch_lightning as pl
import torch
from hydra.core.hydra_config import HydraConfig
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from encdec.build import (
    build_adapter,
    build_component,
    build_loggers,
    build_model,
    build_trainer,
    ensure_run_id,
)
from encdec.checkpointing import load_init_weights, load_weights
from encdec.cli import CONF_DIR, run_reporting_user_errors
from encdec.errors import ConfigError
from encdec.data.datamodule import EncDecDataModule
from encdec.distributed import rank_zero_first
from encdec.lightning_module import EncDecModule
from encdec.sweep import optimized_value

log = logging.getLogger("encdec.train")


def resume_config(cfg: DictConfig, run_dir: Path) -> DictConfig:
    """The saved config of the run being resumed, with this command's plain `key=value`
    overrides on top (e.g. a larger trainer.max_steps)."""
    saved_path = run_dir / "config.yaml"
    if not saved_path.exists():
        raise ConfigError(f"resume={run_dir}: no config.yaml there; is it a run directory of encdec-train?")
    saved = OmegaConf.load(saved_path)
    hydra_cfg = HydraConfig.get()
    overrides = [o for o in hydra_cfg.overrides.task if not o.startswith("resume=")]
    groups = set(hydra_cfg.runtime.choices)
    bad = [o for o in overrides if o.split("=", 1)[0].lstrip("+~") in groups]
    if bad:
        raise ConfigError(f"resume cannot change config groups ({', '.join(bad)}); start a new run instead")
    return OmegaConf.merge(saved, OmegaConf.from_dotlist(overrides))


class TrainResult(NamedTuple):
    metrics: dict[str, float]
    monitor: str  # the task's monitored metric: best.ckpt follows it, sweeps optimise it by default
    monitor_mode: str


def train(cfg: DictConfig) -> TrainResult:
    run_dir = Path(HydraConfig.get().runtime.output_dir)
    last_ckpt = run_dir / "checkpoints" / "last.ckpt"
    if cfg.resume:
        cfg = resume_config(cfg, run_dir)
        if not last_ckpt.exists():
            raise ConfigError(f"resume={run_dir}: no checkpoints/last.ckpt to resume from")
    pl.seed_everything(cfg.seed, workers=True)
    torch.set_float32_matmul_precision("high")
    # processes started by torchrun / SLURM share the run directory: rank 0 writes it first
    with rank_zero_first(run_dir, cfg.trainer.accelerator):
        ensure_run_id(cfg, run_dir)
        OmegaConf.save(cfg, run_dir / "config.yaml", resolve=True)
        adapter = build_adapter(cfg)
        adapter.setup(run_dir, stage="fit")
    model = build_model(cfg, adapter)
    if cfg.init_from and not cfg.resume:
        missing, unexpected = load_init_weights(model, cfg.init_from)
        log.info("init_from=%s: %d missing, %d unexpected keys", cfg.init_from, len(missing), len(unexpected))
    log.info("model: %.2fM parameters", model.num_parameters() / 1e6)

    module = EncDecModule(
        model=model,
        objective=build_component(cfg.objective, "objective"),
        adapter=adapter,
        decoding=build_component(cfg.decoding, "decoding"),
        optimizer=instantiate(cfg.optim.optimizer),
        schedule=instantiate(cfg.optim.schedule),
        run_dir=run_dir,
        num_samples=cfg.num_samples,
    )
    datamodule = EncDecDataModule(adapter, seed=cfg.seed, **cfg.loader)
    loggers = build_loggers(cfg, run_dir)
    for logger in loggers:
        logger.log_hyperparams(OmegaConf.to_container(cfg, resolve=True))
    trainer = build_trainer(cfg, run_dir, loggers, adapter.monitor, adapter.monitor_mode)
    trainer.fit(module, datamodule=datamodule, ckpt_path=str(last_ckpt) if cfg.resume else None)

    metrics = {k: float(v) for k, v in trainer.callback_metrics.items()}
    if cfg.test_after_training:
        best = trainer.checkpoint_callback.best_model_path or None
        if best:
            module.model.load_state_dict(load_weights(best))
        trainer.test(module, datamodule=datamodule, ckpt_path=None)
        metrics.update({k: float(v) for k, v in trainer.callback_metrics.items()})
    return TrainResult(metrics, adapter.monitor, adapter.monitor_mode)


@hydra.main(config_path=CONF_DIR, config_name="train", version_base="1.3")
def main(cfg: DictConfig) -> float | None:
    result = run_reporting_user_errors(train, cfg)
    # the scalar Hydra sweepers (e.g. Optuna) optimise: optimized_metric, else the task's monitor
    hydra_cfg = HydraConfig.get()
    return run_reporting_user_errors(
        optimized_value, result.metrics, cfg.get("optimized_metric"), result.monitor, result.monitor_mode,
        Path(hydra_cfg.runtime.output_dir), hydra_cfg.sweeper.get("direction"),
        not hydra_cfg.sweeper._target_.endswith(".BasicSweeper"),  # required: the sweeper optimises it
    )


if __name__ == "__main__":
    main()
