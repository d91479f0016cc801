"""Schedules, label smoothing, atomic checkpoints, RNG state, loggers."""

import random

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from encdec.checkpointing import AtomicCheckpointIO, RNGStateCallback
from encdec.objectives.mle import token_nll
from encdec.optim import build_optimizer, constant, cosine, inverse_sqrt, linear, param_groups


def test_inverse_sqrt_warms_up_linearly_then_decays_as_one_over_sqrt_step():
    f = inverse_sqrt(warmup_steps=100)
    assert f(0) == pytest.approx(0.01) and f(49) == pytest.approx(0.5) and f(99) == pytest.approx(1.0)
    assert f(399) == pytest.approx(0.5)  # sqrt(100 / 400)


def test_cosine_and_linear_schedules_hit_their_endpoints():
    c = cosine(warmup_steps=10, total_steps=110, min_ratio=0.1)
    assert c(4) == pytest.approx(0.5) and c(10) == pytest.approx(1.0)
    assert c(60) == pytest.approx(0.1 + 0.9 * 0.5) and c(110) == pytest.approx(0.1) and c(500) == pytest.approx(0.1)
    lin = linear(warmup_steps=0, total_steps=100)
    assert lin(0) == 1.0 and lin(50) == pytest.approx(0.5) and lin(100) == 0.0
    assert constant()(12345) == 1.0


def test_label_smoothing_matches_torch_and_ignores_padding():
    logits = torch.randn(2, 4, 7)
    target = torch.tensor([[3, 4, 5, 0], [6, 0, 0, 0]])
    loss, nll = token_nll(logits, target, pad_id=0, label_smoothing=0.2)
    ref = F.cross_entropy(logits.view(-1, 7), target.view(-1), ignore_index=0, label_smoothing=0.2, reduction="sum")
    assert float(loss.sum()) == pytest.approx(float(ref), rel=1e-5)
    assert (nll[target == 0] == 0).all()


def test_checkpoints_are_atomic_and_load_weights_only(tmp_path, monkeypatch):
    io = AtomicCheckpointIO()
    path = tmp_path / "ckpt" / "last.ckpt"
    io.save_checkpoint({"state_dict": {"w": torch.ones(2)}, "global_step": 3}, path)
    assert io.load_checkpoint(path)["global_step"] == 3

    def crash(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(torch, "save", crash)
    with pytest.raises(RuntimeError):
        io.save_checkpoint({"state_dict": {"w": torch.zeros(2)}}, path)
    assert torch.equal(io.load_checkpoint(path)["state_dict"]["w"], torch.ones(2)), "old checkpoint intact"
    assert [p.name for p in path.parent.iterdir()] == ["last.ckpt"], "no temporary file left"
    monkeypatch.undo()

    class Evil:
        def __reduce__(self):
            return (print, ("code ran",))

    torch.save({"x": Evil()}, tmp_path / "evil.ckpt")
    with pytest.raises(Exception):
        io.load_checkpoint(tmp_path / "evil.ckpt")


def test_rng_state_round_trips_through_a_weights_only_checkpoint(tmp_path):
    cb = RNGStateCallback()
    random.seed(1), np.random.seed(2), torch.manual_seed(3)
    state = cb.state_dict()
    AtomicCheckpointIO().save_checkpoint({"rng": state}, tmp_path / "c.ckpt")
    expected = (random.random(), np.random.rand(), torch.rand(1).item())
    random.seed(9), np.random.seed(9), torch.manual_seed(9)
    cb.load_state_dict(AtomicCheckpointIO().load_checkpoint(tmp_path / "c.ckpt")["rng"])
    assert (random.random(), np.random.rand(), torch.rand(1).item()) == expected


def test_wandb_logger_runs_offline_and_receives_metrics_config_and_samples(tmp_path):
    from pytorch_lightning.loggers import WandbLogger
    import wandb

    from encdec.reporting import log_samples
    from encdec.task import SampleTable

    logger = WandbLogger(save_dir=str(tmp_path), project="encdec-test", offline=True, id="abc123",
                         settings=wandb.Settings(silent=True, disable_git=True, console="off"))
    logger.log_hyperparams({"model": {"d_model": 32}})
    logger.log_metrics({"val/sacrebleu": 12.5}, step=1)
    log_samples([logger], "val/samples", SampleTable(["source", "output"], [["a", "b"]]), 1, tmp_path)
    logger.experiment.finish()
    runs = list((tmp_path / "wandb").glob("offline-run-*-abc123"))
    assert runs, "an offline run directory that `wandb sync` can upload"
    assert (tmp_path / "samples" / "val_samples_step1.md").read_text().count("| a | b |") == 1


def test_param_groups_scale_declared_submodules_and_skip_frozen_ones():
    from functools import partial

    model = torch.nn.ModuleDict(
        {
            "backbone": torch.nn.Linear(3, 3),
            "frozen": torch.nn.Linear(3, 3),
            "head": torch.nn.Linear(3, 2),
        }
    )
    model["backbone"].lr_scale = 0.1
    model["frozen"].requires_grad_(False)
    cfg = build_optimizer(param_groups(model), partial(torch.optim.SGD, lr=1.0), linear(2, 10))
    opt, sched = cfg["optimizer"], cfg["lr_scheduler"]["scheduler"]
    by_scale = {g["lr_scale"]: g for g in opt.param_groups}
    assert set(by_scale) == {1.0, 0.1}
    assert {id(p) for p in by_scale[0.1]["params"]} == {id(p) for p in model["backbone"].parameters()}
    trained = {id(p) for g in opt.param_groups for p in g["params"]}
    assert not trained & {id(p) for p in model["frozen"].parameters()}
    # the schedule multiplies each group's own peak: warmup step 1 of 2 is half of it
    assert by_scale[1.0]["lr"] == pytest.approx(0.5) and by_scale[0.1]["lr"] == pytest.approx(0.05)
    opt.step()
    sched.step()
    assert by_scale[1.0]["lr"] == pytest.approx(1.0) and by_scale[0.1]["lr"] == pytest.approx(0.1)
