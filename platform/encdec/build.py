"""Turn a composed config into objects. Shared by the train, eval and predict apps."""

from __future__ import annotations

import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
from hydra.errors import InstantiationException
from hydra.utils import get_method, instantiate
from omegaconf import DictConfig, OmegaConf, open_dict
from omegaconf.errors import OmegaConfBaseException

from encdec.checkpointing import AtomicCheckpointIO, RNGStateCallback
from encdec.compiling import CompileForward
from encdec.errors import ConfigError, UserError
from encdec.fault_tolerance import DataPosition, LastCheckpoint
from encdec.model import EncoderDecoder
from encdec.task import TaskAdapter, check_reader
from encdec.validation import accepted_parameters, check_known_keys


def build_component(cfg: DictConfig, key: str, **available: Any) -> Any:
    """Instantiate `cfg` (at config key `key`), passing only the `available` keyword
    arguments its target accepts: an image encoder ignores a text vocabulary size."""
    try:
        target = get_method(cfg._target_)
    except Exception as exc:
        raise ConfigError(f"{key}._target_={cfg.get('_target_')!r} cannot be imported: {exc}") from exc
    check_known_keys(list(cfg), target, key)
    params, takes_all = accepted_parameters(target)
    accepted = {k: v for k, v in available.items() if takes_all or k in params}
    accepted = {k: v for k, v in accepted.items() if k not in cfg or cfg[k] is None}
    try:
        return instantiate(cfg, **accepted)
    except InstantiationException as exc:
        # a component's own argument check (ValueError) is about this config key
        if isinstance(exc.__cause__, ValueError) and not isinstance(exc.__cause__, UserError):
            raise ConfigError(f"{key}: {exc.__cause__}") from None
        raise


def build_adapter(cfg: DictConfig) -> TaskAdapter:
    data = build_component(cfg.data, "data")
    adapter = build_component(cfg.task.adapter, "task.adapter", data=data)
    check_reader(adapter, data)  # a reader of another shape stops here, before any data is read
    return adapter


def build_model(cfg: DictConfig, adapter: TaskAdapter) -> EncoderDecoder:
    # how float32 matmuls run on a GPU (high: TF32 tensor cores), for every app that builds
    # the model from a run's config; a config saved before the key existed leaves torch's own
    precision = cfg.model.get("float32_matmul_precision")
    if precision:
        torch.set_float32_matmul_precision(precision)
    encoder = build_component(cfg.encoder, "encoder", **adapter.encoder_kwargs())
    decoder = build_component(cfg.decoder, "decoder", **adapter.decoder_kwargs())
    return EncoderDecoder(
        encoder, decoder, share_embeddings=cfg.model.share_embeddings, **adapter.special_ids()
    )


def ensure_run_id(cfg: DictConfig, run_dir: Path) -> str:
    """One id per run directory, kept across resumes so loggers continue the same run."""
    id_file = run_dir / "run_id"
    run_id = id_file.read_text().strip() if id_file.exists() else uuid.uuid4().hex[:12]
    id_file.write_text(run_id + "\n")
    with open_dict(cfg):
        cfg.run_id = run_id
    return run_id


def build_loggers(cfg: DictConfig, run_dir: Path) -> list:
    return [
        build_component(lcfg, f"logger.{name}", save_dir=str(run_dir))
        for name, lcfg in (cfg.get("logger") or {}).items()
        if lcfg is not None
    ]


def checkpoint_monitor(cfg: DictConfig, adapter: TaskAdapter) -> tuple[str, str]:
    """(metric, mode) that picks checkpoints/best.ckpt: the task's own (the adapter's `monitor`,
    `monitor_mode`, e.g. translation: val/sacrebleu, max) unless `best_checkpoint.monitor` names
    another, e.g. val/loss (NLL). Sweeps optimise the task's own unless `optimized_metric` says
    otherwise (encdec.sweep.optimized_value)."""
    chosen = cfg.get("best_checkpoint") or {}
    monitor, mode = chosen.get("monitor"), chosen.get("mode")
    if not monitor or monitor == adapter.monitor:
        return adapter.monitor, mode or adapter.monitor_mode
    if mode not in ("min", "max"):
        raise ConfigError(f"best_checkpoint.mode={mode!r}: say min or max for best_checkpoint.monitor={monitor}")
    return monitor, mode


def run_decoding(decoding: DictConfig, run_cfg: DictConfig) -> DictConfig:
    """The `decoding` of an eval or predict command (its own group, e.g. decoding=beam),
    resolved against the trained run's task: the decoding groups read the task's length rule
    (`task.max_len_a`) from there. A run saved before that rule moved into the task config
    kept it in its own `decoding.max_len_a`."""
    task = OmegaConf.create(OmegaConf.to_container(run_cfg.get("task") or {}, resolve=False))
    saved_rule = OmegaConf.select(run_cfg, "decoding.max_len_a", default=None)
    if "max_len_a" not in task and isinstance(saved_rule, (int, float)):
        task.max_len_a = saved_rule
    root = OmegaConf.create({"task": task, "decoding": OmegaConf.to_container(decoding, resolve=False)})
    try:
        return OmegaConf.create(OmegaConf.to_container(root.decoding, resolve=True))
    except OmegaConfBaseException as exc:
        raise ConfigError(f"decoding: {str(exc).splitlines()[0]}") from None


def _watched_metric(ccfg: DictConfig, monitor: str, mode: str) -> dict[str, str]:
    """A callback that watches a metric (e.g. EarlyStopping) and names none in its config
    watches the run's monitored metric, the one best.ckpt follows."""
    try:
        params, _ = accepted_parameters(get_method(ccfg._target_))
    except Exception:  # build_component reports a target that cannot be imported
        return {}
    if "monitor" not in params or ccfg.get("monitor") is not None:
        return {}
    return {"monitor": monitor, "mode": mode}


def build_trainer(
    cfg: DictConfig, run_dir: Path, loggers: list, monitor: str, mode: str, extra_callbacks: list | None = None
) -> pl.Trainer:
    callbacks = [
        build_component(ccfg, f"callbacks.{name}", **_watched_metric(ccfg, monitor, mode))
        for name, ccfg in (cfg.get("callbacks") or {}).items()
        if ccfg is not None
    ]
    checkpoints = run_dir / "checkpoints"
    # Two callbacks: since Lightning 2.6 `save_last` only writes when a top-k save happens,
    # but resume needs the latest state every time, improved or not.
    callbacks.append(
        pl.callbacks.ModelCheckpoint(
            dirpath=checkpoints, filename="best", monitor=monitor, mode=mode,
            save_top_k=1, enable_version_counter=False,
        )
    )
    if cfg.get("keep_last_checkpoints"):  # epoch-<e>.ckpt of the last N epochs, for encdec-average
        callbacks.append(
            pl.callbacks.ModelCheckpoint(
                dirpath=checkpoints, filename="epoch-{epoch}", auto_insert_metric_name=False, monitor="epoch",
                mode="max", save_top_k=cfg.keep_last_checkpoints, save_on_train_epoch_end=True,
                enable_version_counter=False,
            )
        )
    callbacks.append(LastCheckpoint(checkpoints, every_n_train_steps=cfg.get("checkpoint_every_n_steps")))
    if cfg.get("checkpoint_every_minutes"):  # a hard kill (OOM, kill -9, node failure) loses at most this
        callbacks.append(LastCheckpoint(checkpoints, train_time_interval=timedelta(minutes=cfg.checkpoint_every_minutes)))
    callbacks += [RNGStateCallback(), DataPosition(), *(extra_callbacks or [])]
    if cfg.model.get("compile"):
        callbacks.append(CompileForward())
    trainer_cfg = OmegaConf.to_container(cfg.trainer, resolve=True)
    return pl.Trainer(
        **trainer_cfg,
        default_root_dir=str(run_dir),
        logger=loggers or False,
        callbacks=callbacks,
        plugins=[AtomicCheckpointIO()],
    )
