"""Atomic checkpoint writes, weights-only loads, and RNG state carried through resume."""

from __future__ import annotations

import os
import random
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import pytorch_lightning as pl
import torch
from lightning_fabric.plugins.io.torch_io import TorchCheckpointIO

from encdec.errors import ConfigError
from encdec.sharded_checkpoint import is_sharded_checkpoint, read_sharded_checkpoint


class AtomicCheckpointIO(TorchCheckpointIO):
    """Writes to a temporary file in the same folder, then renames: a crash mid-write never
    leaves a truncated `last.ckpt`. Loads with `weights_only=True`: no pickled code runs."""

    def save_checkpoint(self, checkpoint: dict, path, storage_options=None) -> None:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as f:
                torch.save(checkpoint, f)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    def load_checkpoint(self, path, map_location=None, weights_only=None) -> dict:
        if not Path(path).exists():
            raise FileNotFoundError(f"checkpoint {path} does not exist")
        return torch.load(path, map_location=map_location or "cpu", weights_only=True)


def load_weights(path: str | Path) -> dict[str, torch.Tensor]:
    """The model state dict of a Lightning checkpoint, loaded weights-only (a sharded
    strategy's checkpoint folder is consolidated on this process)."""
    if is_sharded_checkpoint(path):
        state = read_sharded_checkpoint(path)["state_dict"]
    else:
        state = torch.load(path, map_location="cpu", weights_only=True)["state_dict"]
    return {k.removeprefix("model."): v for k, v in state.items() if k.startswith("model.")}


class RNGStateCallback(pl.Callback):
    """Saves and restores Python, NumPy and torch RNG states, so a resumed run continues
    the same random stream (dropout, sampling, shuffling) instead of reseeding."""

    def state_dict(self) -> dict[str, Any]:
        version, mt_state, gauss = random.getstate()
        _, np_keys, np_pos, np_has_gauss, np_gauss = np.random.get_state()
        return {
            "python": [version, list(mt_state), gauss],
            "numpy": [torch.from_numpy(np_keys.astype(np.int64)), np_pos, np_has_gauss, np_gauss],
            "torch": torch.get_rng_state(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        version, mt_state, gauss = state["python"]
        random.setstate((version, tuple(mt_state), gauss))
        keys, pos, has_gauss, cached = state["numpy"]
        np.random.set_state(("MT19937", keys.numpy().astype(np.uint32), pos, has_gauss, cached))
        torch.set_rng_state(state["torch"])


def resolve_init_from(path: str | Path) -> Path:
    """`init_from` may name a checkpoint file or a run directory (its best checkpoint, else
    its last); an error names the key and what was looked for."""
    path = Path(path)
    if path.is_dir():
        for name in ("best.ckpt", "last.ckpt"):
            if (path / "checkpoints" / name).exists():
                return path / "checkpoints" / name
        raise ConfigError(f"init_from={path}: no checkpoints/best.ckpt or checkpoints/last.ckpt in that directory")
    if not path.exists():
        raise ConfigError(f"init_from={path}: no such checkpoint file or run directory")
    return path


def load_init_weights(model: torch.nn.Module, path: str | Path) -> tuple[list[str], list[str]]:
    """Loads `init_from` weights (non-strict: new heads may be missing); a shape mismatch,
    usually a different vocabulary, is a clear error instead of a stack trace."""
    ckpt = resolve_init_from(path)
    weights, own = load_weights(ckpt), model.state_dict()
    clash = [f"{k} {tuple(v.shape)} vs {tuple(own[k].shape)}" for k, v in weights.items() if k in own and v.shape != own[k].shape]
    if clash:
        raise ConfigError(
            f"init_from={path}: {len(clash)} weight(s) differ in shape from this model ({clash[0]}, ...); "
            "a different vocabulary? reuse that run's tokenizer (translation: task.adapter.tokenizer.from_run=<run dir>) "
            "and the same model sizes"
        )
    missing, unexpected = model.load_state_dict(weights, strict=False)
    return missing, unexpected
