"""Checkpoint averaging (encdec-average): the exact mean of the last N epoch checkpoints,
errors that name the files, and an averaged checkpoint that encdec-eval loads."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from conftest import run_cli, tiny_train_args
from encdec.averaging import average_checkpoints, last_checkpoints
from encdec.checkpointing import AtomicCheckpointIO, CheckpointError, load_weights
from encdec.errors import ConfigError


def _write(folder: Path, epoch: int, state: dict) -> Path:
    path = folder / "checkpoints" / f"epoch-{epoch}.ckpt"
    AtomicCheckpointIO().save_checkpoint({"state_dict": state, "epoch": epoch, "global_step": 10 * epoch}, path)
    return path


def _states(n: int, seed: int = 0) -> list[dict]:
    g = torch.Generator().manual_seed(seed)
    return [
        {"model.w": torch.randn(3, 4, generator=g), "model.b": torch.randn(4, generator=g).to(torch.bfloat16),
         "model.count": torch.tensor(i)}
        for i in range(n)
    ]


def test_the_average_is_the_exact_mean_of_the_state_dicts(tmp_path):
    states = _states(3)
    paths = [_write(tmp_path, e, s) for e, s in enumerate(states)]
    out = tmp_path / "checkpoints" / "averaged.ckpt"
    average_checkpoints(paths, out)
    got = torch.load(out, weights_only=True)
    for key in ("model.w", "model.b"):
        mean = (torch.stack([s[key].double() for s in states]).sum(0) / 3).to(states[0][key].dtype)
        assert got["state_dict"][key].dtype == states[0][key].dtype
        assert torch.equal(got["state_dict"][key], mean), key
    assert torch.equal(got["state_dict"]["model.count"], torch.tensor(2)), "non-float tensors come from the newest"
    assert got["averaged_from"] == ["epoch-0.ckpt", "epoch-1.ckpt", "epoch-2.ckpt"] and got["global_step"] == 20
    # dyadic values: the mean is exact in any arithmetic
    exact = [{"model.w": torch.full((2,), v)} for v in (1.0, 2.0, 4.5, 0.5)]
    average_checkpoints([_write(tmp_path / "x", e, s) for e, s in enumerate(exact)], out)
    assert torch.equal(load_weights(out)["w"], torch.full((2,), 2.0))


def test_last_n_are_the_newest_epochs_by_number(tmp_path):
    for e in (8, 9, 10, 11):
        _write(tmp_path, e, _states(1)[0])
    assert [p.name for p in last_checkpoints(tmp_path, 3)] == ["epoch-9.ckpt", "epoch-10.ckpt", "epoch-11.ckpt"]


def test_fewer_checkpoints_than_asked_names_the_files_and_the_key(tmp_path):
    _write(tmp_path, 3, _states(1)[0])
    _write(tmp_path, 4, _states(1)[0])
    with pytest.raises(ConfigError, match=r"last=5: .* holds 2 epoch checkpoint\(s\) \(epoch-3.ckpt, epoch-4.ckpt\).*keep_last_checkpoints=5"):
        last_checkpoints(tmp_path, 5)


def test_different_shapes_name_both_files_and_the_weight(tmp_path):
    a = _write(tmp_path, 0, {"model.w": torch.zeros(3, 4)})
    b = _write(tmp_path, 1, {"model.w": torch.zeros(4, 4)})
    with pytest.raises(CheckpointError, match=r"epoch-0.ckpt with epoch-1.ckpt: model.w has shape \(3, 4\) vs \(4, 4\)"):
        average_checkpoints([a, b], tmp_path / "out.ckpt")
    c = _write(tmp_path, 2, {"model.v": torch.zeros(3, 4)})
    with pytest.raises(CheckpointError, match=r"epoch-0.ckpt with epoch-2.ckpt: different weights"):
        average_checkpoints([a, c], tmp_path / "out.ckpt")
    assert not (tmp_path / "out.ckpt").exists()


# -- through the CLIs: train keeping the last epochs, average, evaluate ---------------------------
def test_train_keeps_last_epochs_then_average_and_eval_checkpoint_averaged(tiny_corpus, tmp_path):
    run_dir = tmp_path / "run"
    run_cli("train", *tiny_train_args(
        tiny_corpus, run_dir, "loader.max_sentences=60", "trainer.max_epochs=3", "test_after_training=false",
        "keep_last_checkpoints=2", "best_checkpoint.monitor=val/loss", "best_checkpoint.mode=min",
        "optim.optimizer.weight_decay=0.01", "optim.no_decay=[bias,norm]",
    ))
    folder = run_dir / "checkpoints"
    assert sorted(p.name for p in folder.glob("epoch-*.ckpt")) == ["epoch-1.ckpt", "epoch-2.ckpt"]
    best = torch.load(folder / "best.ckpt", weights_only=True)
    monitors = {s.get("monitor") for s in best["callbacks"].values() if isinstance(s, dict)}
    assert "val/loss" in monitors and "val/sacrebleu" not in monitors, "best.ckpt is kept by the validation NLL"
    decays = sorted(g["weight_decay"] for g in best["optimizer_states"][0]["param_groups"])
    assert decays == [0.0, 0.01], "biases and norms train without weight decay"

    too_many = run_cli("average", f"run_dir={run_dir}", "last=5", check=False)
    assert too_many.returncode == 1 and "Traceback" not in too_many.stderr
    assert too_many.stderr.strip().splitlines() == [
        f"error: last=5: {folder} holds 2 epoch checkpoint(s) (epoch-1.ckpt, epoch-2.ckpt); "
        "ask for last<=2, or train with keep_last_checkpoints=5"
    ]

    done = run_cli("average", f"run_dir={run_dir}", "last=2")
    assert "averaged 2 checkpoint(s) (epoch-1.ckpt, epoch-2.ckpt)" in done.stdout
    averaged = load_weights(folder / "averaged.ckpt")
    two = [load_weights(folder / f"epoch-{e}.ckpt") for e in (1, 2)]
    for name, tensor in averaged.items():
        expected = ((two[0][name].double() + two[1][name].double()) / 2).to(tensor.dtype)
        assert torch.equal(tensor, expected), name
    assert not torch.equal(averaged["decoder.layers.0.ffn.0.weight"], two[1]["decoder.layers.0.ffn.0.weight"])

    scored = run_cli("evaluate", f"run_dir={run_dir}", "checkpoint=averaged", "split=val", "progress=false")
    assert "sacrebleu:" in scored.stdout and '"checkpoint": "averaged"' in (run_dir / "eval" / "val-greedy" / "results.json").read_text()
