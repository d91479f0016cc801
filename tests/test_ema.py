"""EMA of the weights (encdec.ema.EMA): the update formula, validation on the average,
checkpoints that hold the EMA as their weights, and a resume that stays bit-identical."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch
from torch import nn

from conftest import run_cli, tiny_train_args
from encdec.ema import EMA, TRAINED_WEIGHTS


class Holder(nn.Module):
    """Stands for the LightningModule: the EMA averages its `model`."""

    def __init__(self):
        super().__init__()
        self.model = nn.Linear(2, 2)
        self.model.register_buffer("seen", torch.zeros(1))
        self.other = nn.Linear(1, 1)  # not averaged (e.g. a discriminator)


def _set(module: nn.Module, value: float) -> None:
    with torch.no_grad():
        for p in module.parameters():
            p.fill_(value)


def _step(ema: EMA, holder: Holder, step: int) -> None:
    ema.on_train_batch_end(SimpleNamespace(global_step=step), holder, None, None, 0)


def _fitted(decay: float, **kw) -> tuple[EMA, Holder]:
    ema, holder = EMA(decay=decay, **kw), Holder()
    ema.on_fit_start(None, holder)
    return ema, holder


def test_first_update_copies_then_each_optimizer_step_applies_the_formula_exactly():
    ema, holder = _fitted(decay=0.75)
    _set(holder.model, 1.0)
    _step(ema, holder, 1)
    assert all(torch.equal(p, torch.ones_like(p)) for p in ema.average.module.parameters())
    expected = 1.0
    for step, w in [(2, 3.0), (3, -1.0), (4, 0.5)]:
        _set(holder.model, w)
        _step(ema, holder, step)
        expected = 0.75 * expected + 0.25 * w
        for p in ema.average.module.parameters():
            assert torch.equal(p, torch.full_like(p, expected)), (step, p, expected)
    _set(holder.model, 100.0)
    _step(ema, holder, 4)  # a skipped optimiser step (global_step unchanged): no update
    assert torch.equal(ema.average.module.weight, torch.full((2, 2), expected))
    assert ema.updates == 4
    holder.model.seen.fill_(7.0)
    _step(ema, holder, 5)
    assert torch.equal(ema.average.module.seen, torch.full((1,), 7.0)), "buffers follow the model"


def test_start_step_and_every_n_steps():
    ema, holder = _fitted(decay=0.5, every_n_steps=2, start_step=2)
    for step in range(1, 8):
        _set(holder.model, float(step))
        _step(ema, holder, step)
    # updates after steps 4 (copy) and 6: 0.5 * 4 + 0.5 * 6
    assert ema.updates == 2 and torch.equal(ema.average.module.bias, torch.full((2,), 5.0))


def test_validation_sees_the_average_and_training_resumes_with_its_own_weights():
    ema, holder = _fitted(decay=0.5)
    _set(holder.model, 2.0)
    _step(ema, holder, 1)
    _set(holder.model, 4.0)
    _step(ema, holder, 2)  # ema 3.0, weights 4.0
    ema.on_validation_epoch_start(None, holder)
    assert torch.equal(holder.model.weight, torch.full((2, 2), 3.0))
    ema.on_validation_epoch_end(None, holder)
    assert torch.equal(holder.model.weight, torch.full((2, 2), 4.0))


def test_a_checkpoint_holds_the_ema_as_its_weights_and_restores_both():
    ema, holder = _fitted(decay=0.5)
    _set(holder.model, 2.0)
    _step(ema, holder, 1)
    _set(holder.model, 4.0)
    _step(ema, holder, 2)
    checkpoint = {"state_dict": {k: v.clone() for k, v in holder.state_dict().items()}}
    ema.on_save_checkpoint(None, holder, checkpoint)
    checkpoint["callbacks"] = {"EMA": ema.state_dict()}
    assert torch.equal(checkpoint["state_dict"]["model.weight"], torch.full((2, 2), 3.0))
    assert torch.equal(checkpoint[TRAINED_WEIGHTS]["model.weight"], torch.full((2, 2), 4.0))
    assert torch.equal(checkpoint["state_dict"]["other.weight"], holder.other.weight)

    # a new process: Lightning loads `state_dict` into the module, then calls the callback
    # (before fit starts, on one device), then the average is built at fit start
    again, fresh = EMA(decay=0.5), Holder()
    fresh.load_state_dict(checkpoint["state_dict"])
    again.on_load_checkpoint(None, fresh, checkpoint)
    again.load_state_dict(checkpoint["callbacks"]["EMA"])
    again.on_fit_start(None, fresh)
    assert torch.equal(fresh.model.weight, torch.full((2, 2), 4.0)), "training continues from its own weights"
    assert torch.equal(again.average.module.weight, torch.full((2, 2), 3.0)) and again.updates == 2
    _step(again, fresh, 3)
    assert torch.equal(again.average.module.weight, torch.full((2, 2), 3.5))


def test_bad_decay_is_refused():
    with pytest.raises(ValueError, match="decay"):
        EMA(decay=1.5)


# -- through encdec-train -----------------------------------------------------------------------
# 240 training pairs, 60 per batch: 4 steps per epoch, so step 6 is in the middle of epoch 1.
COMMON = ["loader.max_sentences=60", "loader.max_tokens=4096", "trainer.max_epochs=100", "test_after_training=false",
          "checkpoint_every_minutes=null", "+callbacks.ema._target_=encdec.ema.EMA", "+callbacks.ema.decay=0.5"]


def _ckpt(run_dir, name="last") -> dict:
    return torch.load(run_dir / "checkpoints" / f"{name}.ckpt", weights_only=True)


def test_resume_with_ema_ends_bit_identical_to_the_uninterrupted_run(tiny_corpus, tmp_path):
    straight, split = tmp_path / "straight", tmp_path / "split"
    run_cli("train", *tiny_train_args(tiny_corpus, straight, *COMMON, "trainer.max_steps=10"))
    run_cli("train", *tiny_train_args(tiny_corpus, split, *COMMON, "trainer.max_steps=6"))
    resumed = run_cli("train", f"resume={split}", "trainer.max_steps=10", "seed=999")
    assert "continuing epoch 1 after its first 2 batches" in resumed.stdout + resumed.stderr
    a, b = _ckpt(straight), _ckpt(split)
    assert a["global_step"] == b["global_step"] == 10
    for key in ("state_dict", TRAINED_WEIGHTS):
        for name, tensor in a[key].items():
            assert torch.equal(b[key][name], tensor), f"{key} differs at {name}"
    ema_state = next(v for k, v in a["callbacks"].items() if "EMA" in k)
    assert ema_state["updates"] == 10
    # the checkpoint's weights are the EMA, not the trained weights
    assert any(not torch.equal(t, a[TRAINED_WEIGHTS][n]) for n, t in a["state_dict"].items() if n.startswith("model."))
    best = _ckpt(straight, "best")
    assert TRAINED_WEIGHTS in best and best["global_step"] in (4, 8)
