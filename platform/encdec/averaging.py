"""Checkpoint averaging, as fairseq's `average_checkpoints.py`: the element-wise mean of the
weights of a run's last N epoch checkpoints (kept by `keep_last_checkpoints=N`), written as a
checkpoint that `encdec-eval checkpoint=averaged` and `encdec-predict` load like any other."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import torch

from encdec.checkpointing import AtomicCheckpointIO, CheckpointError, read_checkpoint
from encdec.data.vocabulary import SPEC_KEY
from encdec.errors import ConfigError

EPOCH_FILE = re.compile(r"^epoch-(\d+)\.ckpt$")


def epoch_checkpoints(run_dir: str | Path) -> list[Path]:
    """checkpoints/epoch-<e>.ckpt of a run, oldest epoch first."""
    folder = Path(run_dir) / "checkpoints"
    found = [(int(m.group(1)), p) for p in folder.glob("epoch-*.ckpt") if (m := EPOCH_FILE.match(p.name))]
    return [p for _, p in sorted(found)]


def last_checkpoints(run_dir: str | Path, last: int) -> list[Path]:
    """The `last` newest epoch checkpoints of a run; fewer is an error naming what is there."""
    if not isinstance(last, int) or isinstance(last, bool) or last < 1:
        raise ConfigError(f"last={last!r}: use an integer >= 1 (how many epoch checkpoints to average)")
    found = epoch_checkpoints(run_dir)
    if len(found) < last:
        there = ", ".join(p.name for p in found) or "none"
        raise ConfigError(
            f"last={last}: {Path(run_dir) / 'checkpoints'} holds {len(found)} epoch checkpoint(s) ({there}); "
            f"ask for last<={len(found)}, or train with keep_last_checkpoints={last}"
        )
    return found[-last:]


def average_state_dicts(states: list[dict[str, torch.Tensor]], names: list[str]) -> dict[str, torch.Tensor]:
    """Element-wise mean of floating-point tensors (summed in float64, stored in their own
    dtype); other tensors (integer counters) are taken from the newest. `names` name the
    sources in errors."""
    first, newest = states[0], states[-1]
    for state, name in zip(states[1:], names[1:]):
        if state.keys() != first.keys():
            diff = sorted(state.keys() ^ first.keys())
            raise CheckpointError(
                f"cannot average {names[0]} with {name}: different weights ({len(diff)} name(s) in only one, e.g. {diff[0]}); "
                "were they written by the same run?"
            )
        for key, tensor in state.items():
            if tensor.shape != first[key].shape:
                raise CheckpointError(
                    f"cannot average {names[0]} with {name}: {key} has shape {tuple(first[key].shape)} "
                    f"vs {tuple(tensor.shape)}; were they written by the same run?"
                )
    averaged: dict[str, torch.Tensor] = {}
    for key, tensor in newest.items():
        if tensor.is_floating_point():
            total = torch.zeros(tensor.shape, dtype=torch.float64)
            for state in states:
                total += state[key].to(torch.float64)
            averaged[key] = (total / len(states)).to(tensor.dtype)
        else:
            averaged[key] = tensor.clone()
    return averaged


def average_checkpoints(paths: list[Path], output: Path) -> dict[str, Any]:
    """Writes the mean of the checkpoints' weights to `output` (atomically) and returns it.

    The result holds the weights only (no optimiser or loop state: it is for evaluation and
    prediction, not for resuming), with the newest source's epoch and step and the list of
    sources under `averaged_from`."""
    if not paths:
        raise ConfigError("nothing to average: no checkpoints given")
    checkpoints = [read_checkpoint(p) for p in paths]  # a damaged file is one line naming it
    states = [{k: v for k, v in c["state_dict"].items() if torch.is_tensor(v)} for c in checkpoints]
    newest = checkpoints[-1]
    result = {
        "state_dict": average_state_dicts(states, [p.name for p in paths]),
        "epoch": newest.get("epoch"),
        "global_step": newest.get("global_step"),
        "pytorch-lightning_version": newest.get("pytorch-lightning_version"),
        "averaged_from": [p.name for p in paths],
        SPEC_KEY: newest.get(SPEC_KEY),  # the vocabulary the weights index
    }
    AtomicCheckpointIO().save_checkpoint(result, output)
    return result
