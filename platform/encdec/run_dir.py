"""Reload a trained run (config, adapter vocabularies, weights) for eval and predict."""

from __future__ import annotations

from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from encdec.build import build_adapter, build_model
from encdec.checkpointing import model_weights, read_checkpoint
from encdec.data.vocabulary import SPEC_KEY, check_vocabulary
from encdec.errors import ConfigError


def load_run(run_dir: str | Path, checkpoint: str, stage: str, data_overrides: DictConfig | None = None):
    """(saved config, adapter, model in eval mode) of `run_dir`, weights from
    checkpoints/<checkpoint>.ckpt ('best' or 'last') or from a path."""
    run_dir = Path(run_dir).expanduser().resolve()
    cfg_path = run_dir / "config.yaml"
    if not cfg_path.exists():
        raise ConfigError(f"run_dir={run_dir}: no config.yaml; point run_dir at a directory made by encdec-train")
    cfg = OmegaConf.load(cfg_path)
    if data_overrides:
        cfg.data = OmegaConf.merge(cfg.data, data_overrides)
    ckpt = Path(checkpoint) if checkpoint.endswith(".ckpt") else run_dir / "checkpoints" / f"{checkpoint}.ckpt"
    if not ckpt.exists():
        raise ConfigError(f"checkpoint={checkpoint}: {ckpt} does not exist (use best, last or a .ckpt path)")
    adapter = build_adapter(cfg)
    adapter.setup(run_dir, stage=stage)
    checkpoint = read_checkpoint(ckpt)
    check_vocabulary(checkpoint.get(SPEC_KEY), adapter.vocabularies(), f"checkpoint {ckpt}",
                     f"use it with the run directory that trained it, not {run_dir}")
    model = build_model(cfg, adapter)
    model.load_state_dict(model_weights(checkpoint))
    return cfg, adapter, model.eval()
