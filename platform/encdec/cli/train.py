"""`encdec-train`: compose a config, check it, train, checkpoint, test.

The run's lifecycle: validate the config -> lock the run directory -> build -> train (periodic
`last.ckpt`, signals save, non-finite guard) -> test. `resume=<run_dir>` continues a run
from its `last.ckpt`; a new run never overwrites a trained model unless `overwrite=true`.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import NamedTuple

import hydra
import pytorch_lightning as pl
from hydra.core.hydra_config import HydraConfig
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf
from pytorch_lightning.utilities.exceptions import SIGTERMException

from encdec.build import (
    build_adapter,
    build_component,
    build_loggers,
    build_model,
    build_trainer,
    checkpoint_monitor,
    ensure_run_id,
)
from encdec.checkpointing import load_weights, read_checkpoint, remove_stale_temporaries
from encdec.cli import CONF_DIR, run_reporting_user_errors
from encdec.data.datamodule import EncDecDataModule
from encdec.data.vocabulary import save_vocabulary_spec
from encdec.distributed import rank_zero_first
from encdec.errors import ConfigError
from encdec.fault_tolerance import NonFiniteGuard, Preemption
from encdec.init_from import adopt_source_config, copy_vocabulary_files, load_init_from, refuse_removed_keys
from encdec.lightning_module import EncDecModule
from encdec.loggers import CSVLogger, finish_wandb
from encdec.progress import print_run_summary
from encdec.reporting import log_config
from encdec.run_guard import RunDirectoryLock, record_job, refuse_overwrite, requeued_job
from encdec.sweep import optimized_value
from encdec.validation import validate_train_config

log = logging.getLogger("encdec.train")


def resume_config(run_dir: Path, requeued: bool = False) -> DictConfig:
    """The saved config of the run being resumed, with this command's plain `key=value`
    overrides on top (e.g. a larger trainer.max_steps). A requeued job runs its first command
    again: its group choices are the ones that made the saved config."""
    saved_path = run_dir / "config.yaml"
    if not saved_path.exists():
        raise ConfigError(f"resume={run_dir}: no config.yaml there; is it a run directory of encdec-train?")
    cfg = OmegaConf.load(saved_path)
    hydra_cfg = HydraConfig.get()
    # Hydra's parser, not a plain split: a sweep job's overrides come escaped (00\:30\:00)
    overrides = OverridesParser.create().parse_overrides([o for o in hydra_cfg.overrides.task if not o.startswith("resume=")])
    groups = set(hydra_cfg.runtime.choices)
    bad = [o.input_line for o in overrides if o.key_or_group in groups]
    if bad and not requeued:
        raise ConfigError(f"resume cannot change config groups ({', '.join(bad)}); start a new run instead")
    for o in overrides:
        if o.key_or_group in groups:
            continue
        if o.is_delete():
            raise ConfigError(f"resume cannot remove {o.key_or_group} ({o.input_line}); start a new run instead")
        OmegaConf.update(cfg, o.key_or_group, o.value(), merge=True, force_add=True)
    cfg.resume = str(run_dir)
    return cfg


class TrainResult(NamedTuple):
    metrics: dict[str, float]
    monitor: str  # the task's monitored metric: sweeps optimise it by default (best.ckpt: best_checkpoint.monitor or it)
    monitor_mode: str


def train(cfg: DictConfig) -> TrainResult:
    run_dir = Path(HydraConfig.get().runtime.output_dir)
    last_ckpt = run_dir / "checkpoints" / "last.ckpt"
    preemption = Preemption(last_ckpt)
    preemption.install()  # a signal from here on exits cleanly (and saves, once training runs)
    command = list(HydraConfig.get().overrides.task)
    requeued = requeued_job(run_dir, command)  # a preempted job started again continues its own run
    if cfg.resume or requeued:
        cfg = resume_config(run_dir, requeued=bool(requeued))
    refuse_removed_keys(command)
    if cfg.init_from and not cfg.resume:  # that run's model sizes and tokenizer options
        adopt_source_config(cfg, command)
    validate_train_config(cfg, CONF_DIR, HydraConfig.get().runtime.choices)
    resuming = bool(cfg.resume)

    lock = RunDirectoryLock(run_dir)
    if pl.utilities.rank_zero_only.rank == 0:
        lock.acquire()
        for stale in remove_stale_temporaries(run_dir / "checkpoints"):
            log.info("removed %s, left by a process killed while writing it", stale.name)
        refuse_overwrite(run_dir, resuming, bool(cfg.get("overwrite")))
        record_job(run_dir, command)
    try:
        return _train(cfg, run_dir, last_ckpt, preemption, resuming, requeued)
    finally:
        lock.release()
        preemption.uninstall()


def _train(cfg: DictConfig, run_dir: Path, last_ckpt: Path, preemption: Preemption, resuming: bool,
           requeued: str | None = None) -> TrainResult:
    resume_step = None
    if resuming:
        if not last_ckpt.exists():
            raise ConfigError(f"resume={run_dir}: no checkpoints/last.ckpt to resume from")
        resume_step = int(read_checkpoint(last_ckpt).get("global_step", 0))  # a corrupt file stops here
        log.info("%sresuming %s from checkpoints/last.ckpt at step %d",
                 f"requeued job {requeued}: " if requeued else "", run_dir, resume_step)
    if resuming and cfg.seed != OmegaConf.load(run_dir / "config.yaml").seed:
        log.warning("seed=%s has no effect on a resumed run: the data order and random state continue from the checkpoint", cfg.seed)
    pl.seed_everything(cfg.seed, workers=True, verbose=False)
    # processes started by torchrun / SLURM share the run directory: rank 0 writes it first
    with rank_zero_first(run_dir, cfg.trainer.accelerator):
        ensure_run_id(cfg, run_dir)
        OmegaConf.save(cfg, run_dir / "config.yaml", resolve=True)
        adapter = build_adapter(cfg)
        if cfg.init_from and not resuming:  # that run's vocabulary, not a new one
            copy_vocabulary_files(cfg.init_from, run_dir)
        adapter.setup(run_dir, stage="fit")
        save_vocabulary_spec(run_dir, adapter.vocabularies())
    model = build_model(cfg, adapter)
    if cfg.init_from and not resuming:
        missing, unexpected = load_init_from(model, adapter, cfg.init_from)
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
        nonfinite=NonFiniteGuard(**(cfg.get("nonfinite") or {})),
        no_decay=cfg.optim.get("no_decay") or (),
    )
    datamodule = EncDecDataModule(adapter, seed=cfg.seed, **cfg.loader)
    loggers = build_loggers(cfg, run_dir)
    for logger in loggers:
        if resume_step is not None and isinstance(logger, CSVLogger):
            logger.resume_from_step(resume_step)
    monitor, mode = checkpoint_monitor(cfg, adapter)
    log_config(loggers, OmegaConf.to_container(cfg, resolve=True), monitor)
    trainer = build_trainer(cfg, run_dir, loggers, monitor, mode, extra_callbacks=[preemption])
    try:
        trainer.fit(module, datamodule=datamodule, ckpt_path=str(last_ckpt) if resuming else None)
    except SIGTERMException:  # Lightning's own stop on SIGTERM: saved by Preemption.on_exception
        raise SystemExit(preemption.exit_status()) from None
    if resuming:
        log.info("resumed run ended at step %d", trainer.global_step)

    metrics = {k: float(v) for k, v in trainer.callback_metrics.items()}
    if cfg.test_after_training:
        best = trainer.checkpoint_callback.best_model_path or None
        if best:
            module.model.load_state_dict(load_weights(best))
        trainer.test(module, datamodule=datamodule, ckpt_path=None)
        metrics.update({k: float(v) for k, v in trainer.callback_metrics.items()})
    finish_wandb(loggers)
    if trainer.is_global_zero:
        print_run_summary(run_dir, trainer, metrics)
    return TrainResult(metrics, adapter.monitor, adapter.monitor_mode)


@hydra.main(config_path=CONF_DIR, config_name="train", version_base="1.3")
def _main(cfg: DictConfig) -> float | None:
    result = run_reporting_user_errors(train, cfg)
    # the scalar Hydra sweepers (e.g. Optuna) optimise: optimized_metric, else the task's monitor
    hydra_cfg = HydraConfig.get()
    return run_reporting_user_errors(
        optimized_value, result.metrics, cfg.get("optimized_metric"), result.monitor, result.monitor_mode,
        Path(hydra_cfg.runtime.output_dir), hydra_cfg.sweeper.get("direction"),
        not hydra_cfg.sweeper._target_.endswith(".BasicSweeper"),  # required: the sweeper optimises it
    )


def main() -> None:
    # before Hydra, which would refuse a removed key as merely unknown
    run_reporting_user_errors(refuse_removed_keys, sys.argv[1:])
    _main()


if __name__ == "__main__":
    main()
