"""Atomic checkpoint writes, weights-only loads with one-line errors, and RNG state carried
through resume."""

from __future__ import annotations

import errno
import io
import pickle
import random
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import pytorch_lightning as pl
import torch
from lightning_fabric.plugins.io.torch_io import TorchCheckpointIO

from encdec.atomic_file import temporary_glob, write_atomic
from encdec.errors import ConfigError, UserError
from encdec.sharded_checkpoint import is_sharded_checkpoint, read_sharded_checkpoint


class CheckpointError(UserError):
    """A checkpoint that cannot be read or written; the message names the file."""


class NonFiniteWeightsError(UserError):
    """Refused to write a checkpoint whose weights hold NaN or inf."""


def read_checkpoint(path: str | Path) -> dict[str, Any]:
    """A checkpoint file, loaded weights-only (no pickled code runs). Anything that is not a
    readable encdec checkpoint is one CheckpointError naming the file and the reason. A
    sharded strategy's checkpoint folder is consolidated on this process."""
    if is_sharded_checkpoint(path):
        return read_sharded_checkpoint(path)
    ckpt = _load_weights_only(Path(path))
    if not isinstance(ckpt, dict) or not isinstance(ckpt.get("state_dict"), dict):
        raise CheckpointError(f"not a valid encdec checkpoint: {path} (no state_dict: not written by encdec-train)")
    return ckpt


def _load_weights_only(path: Path) -> Any:
    if not path.is_file():
        raise CheckpointError(f"not a valid encdec checkpoint: {path} (no such file)")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:
        # torch's own message advises weights_only=False: never the advice for a file that
        # holds objects a weights-only load refuses to build
        reason = "it holds Python objects a safe load refuses; it was not written by encdec-train"
        raise CheckpointError(f"not a valid encdec checkpoint: {path} ({reason})") from None
    except Exception as exc:  # random or cut bytes fail anywhere in the unpickler (IndexError, KeyError...)
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise CheckpointError(f"not a valid encdec checkpoint: {path} (truncated or corrupt: {reason})") from None
    return ckpt


def _nonfinite_weights(checkpoint: dict) -> list[str]:
    return [
        name
        for name, t in checkpoint.get("state_dict", {}).items()
        if torch.is_tensor(t) and t.is_floating_point() and not bool(torch.isfinite(t).all())
    ]


class AtomicCheckpointIO(TorchCheckpointIO):
    """Serialises to memory, writes a temporary file in the same folder, fsyncs, renames: a
    crash or a full disk mid-write never leaves a truncated checkpoint and never replaces the
    previous one. Weights holding NaN/inf are never written (a diverged run cannot overwrite a
    good checkpoint). Loads with `weights_only=True`."""

    def save_checkpoint(self, checkpoint: dict, path, storage_options=None) -> None:
        path = Path(path)
        bad = _nonfinite_weights(checkpoint)
        if bad:
            raise NonFiniteWeightsError(
                f"not writing {path}: {len(bad)} weight tensor(s) hold NaN/inf ({bad[0]}, ...); "
                "the previous checkpoint is kept"
            )
        # Serialising to memory first turns a full disk into a plain OSError(ENOSPC) from
        # the file write below, instead of an opaque error from inside torch's zip writer.
        buffer = io.BytesIO()
        torch.save(checkpoint, buffer)
        try:
            write_atomic(path, buffer.getbuffer())
        except OSError as exc:
            if exc.errno == errno.ENOSPC:
                raise CheckpointError(
                    f"no space left on device (ENOSPC) writing {path} ({buffer.tell() / 2**20:.1f} MiB); "
                    "the previous checkpoint is kept; free space and resume"
                ) from None
            raise CheckpointError(f"cannot write checkpoint {path}: {exc.strerror or exc}") from None

    def load_checkpoint(self, path, map_location=None, weights_only=None) -> dict:
        # also Lightning's own files (e.g. the weights ddp_spawn hands back): no state_dict check
        return _load_weights_only(Path(path))


def remove_stale_temporaries(folder: Path) -> list[Path]:
    """Temporary files left by a process killed mid-write (`.<name>.*.tmp`): never read, safe
    to delete once this process holds the run directory's lock."""
    stale = list(Path(folder).glob(temporary_glob("*.ckpt"))) if Path(folder).is_dir() else []
    for p in stale:
        p.unlink(missing_ok=True)
    return stale


def load_weights(path: str | Path) -> dict[str, torch.Tensor]:
    """The model state dict of a Lightning checkpoint, loaded weights-only."""
    return model_weights(read_checkpoint(path))


def model_weights(checkpoint: dict[str, Any]) -> dict[str, torch.Tensor]:
    return {k.removeprefix("model."): v for k, v in checkpoint["state_dict"].items() if k.startswith("model.")}


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


def load_init_weights(model: torch.nn.Module, path: str | Path, checkpoint: dict | None = None) -> tuple[list[str], list[str]]:
    """Loads `init_from` weights (non-strict: new heads may be missing); a shape mismatch,
    usually a different vocabulary, is a clear error instead of a stack trace. `checkpoint`:
    the file at `path`, when already read."""
    weights, own = model_weights(checkpoint or read_checkpoint(resolve_init_from(path))), model.state_dict()
    clash = [f"{k} {tuple(v.shape)} vs {tuple(own[k].shape)}" for k, v in weights.items() if k in own and v.shape != own[k].shape]
    if clash:
        raise ConfigError(
            f"init_from={path}: {len(clash)} weight(s) differ in shape from this model ({clash[0]}, ...); "
            "another model? init_from brings that run's vocabulary and model sizes unless the command line changes them"
        )
    missing, unexpected = model.load_state_dict(weights, strict=False)
    return missing, unexpected
