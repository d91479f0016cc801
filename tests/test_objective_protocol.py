"""The objective contract as the Lightning module drives it: the declared kind decides
automatic or manual optimisation, a step sees only its context, a manual objective ends
training by saying so, and the non-finite guard covers both kinds. Also the task facts that
travel through contracts instead of attributes (the image grid of an encoder's memory)."""

from __future__ import annotations

import pytest
import pytorch_lightning as pl
import torch

from encdec.decoding import Greedy
from encdec.errors import ConfigError
from encdec.fault_tolerance import NonFiniteGuard, TrainingDivergedError
from encdec.lightning_module import EncDecModule
from encdec.objectives import MLE, Denoise, ManualObjective, Objective, StepContext, StepResult
from toy import make_batch, make_model


class _Adapter:
    """Enough of an adapter for training steps (validation is off in these runs)."""


def _fit(module: EncDecModule, steps: int = 3, max_steps: int = 3) -> pl.Trainer:
    gen = torch.Generator().manual_seed(0)
    batches = [make_batch("copy", 8, gen) for _ in range(steps)]
    loader = torch.utils.data.DataLoader(batches, batch_size=None, collate_fn=lambda b: b)
    trainer = pl.Trainer(
        max_steps=max_steps, max_epochs=100, logger=False, enable_checkpointing=False, enable_progress_bar=False,
        enable_model_summary=False, limit_val_batches=0, accelerator="cpu", num_sanity_val_steps=0,
    )
    trainer.fit(module, train_dataloaders=loader)
    return trainer


def _module(objective, **kw) -> EncDecModule:
    torch.manual_seed(0)
    model = make_model("gru", "gru+additive", d_model=16)
    return EncDecModule(model=model, objective=objective, adapter=_Adapter(), decoding=Greedy(max_len=8),
                        optimizer=lambda params: torch.optim.SGD(params, lr=0.1), schedule=lambda step: 1.0, **kw)


class RecordingLoss(Objective):
    progress_bar = ("extra",)

    def __init__(self):
        self.seen: list[StepContext] = []
        self.setup_with = None
        self.mle = MLE()

    def setup(self, model, adapter):
        self.setup_with = (model, adapter)

    def loss(self, model, batch, ctx=None):
        self.seen.append(ctx)
        loss, logs = self.mle.loss(model, batch)
        ctx.log("custom/step", float(ctx.global_step))
        return loss, {**logs, "extra": torch.tensor(1.5)}


def test_an_automatic_objective_sees_its_step_context_and_its_logs_are_logged():
    objective = RecordingLoss()
    module = _module(objective)
    assert module.automatic_optimization and objective.setup_with == (module.model, module.adapter)
    trainer = _fit(module)
    assert [c.global_step for c in objective.seen] == [0, 1, 2]
    assert all(c.adapter is module.adapter and c.decoding is module.decoding for c in objective.seen)
    assert objective.seen[0].epoch_length == 3
    metrics = trainer.callback_metrics
    assert {"train/loss", "train/nll", "train/extra", "custom/step"} <= set(metrics)
    assert float(metrics["custom/step"]) == 2.0 and float(metrics["train/extra"]) == 1.5


class StopsAfter(ManualObjective):
    """One SGD optimiser stepped by hand; `nan_at` poisons the loss of that call."""

    def __init__(self, steps: int, nan_at: int | None = None):
        self.steps, self.nan_at, self.calls = steps, nan_at, 0
        self.went_on: list[bool] = []

    def configure_optimizers(self, model):
        return [torch.optim.SGD(model.parameters(), lr=0.1)]

    def manual_step(self, model, batch, optimizers, ctx):
        (opt,) = optimizers
        loss, _ = MLE().loss(model, batch)
        if self.calls == self.nan_at:
            loss = loss * float("nan")
        opt.zero_grad()
        went_on = ctx.backward(loss)
        if went_on:
            opt.step()
        self.went_on.append(went_on)
        self.calls += 1
        return StepResult({"loss": loss.detach()}, finished=self.calls >= self.steps)


def test_a_manual_objective_steps_its_own_optimisers_and_ends_training_by_saying_so():
    objective = StopsAfter(steps=3)
    module = _module(objective)
    assert not module.automatic_optimization
    before = [p.detach().clone() for p in module.model.parameters()]
    trainer = _fit(module, steps=2, max_steps=100)  # 2 batches an epoch: the objective stops in epoch 2
    assert objective.calls == 3 and trainer.global_step == 3, "max_steps=100: the objective ended training"
    assert any(not torch.equal(a, b) for a, b in zip(before, module.model.parameters()))
    assert "train/loss" in trainer.callback_metrics


def test_the_non_finite_guard_skips_a_manual_update_with_a_nan_loss():
    objective = StopsAfter(steps=3, nan_at=1)
    guard = NonFiniteGuard("skip", max_skipped=2)
    module = _module(objective, nonfinite=guard)
    trainer = _fit(module, steps=3, max_steps=100)
    assert objective.went_on == [True, False, True] and guard.skipped_total == 1
    assert trainer.global_step == 2, "the skipped update is no optimiser step"
    assert all(torch.isfinite(p).all() for p in module.model.parameters())
    with pytest.raises(TrainingDivergedError):
        _fit(_module(StopsAfter(steps=3, nan_at=0), nonfinite=NonFiniteGuard("stop")), steps=3, max_steps=100)


def test_an_objective_of_no_declared_kind_is_refused():
    class DuckTyped:
        def loss(self, model, batch):
            return MLE().loss(model, batch)

    with pytest.raises(ConfigError, match="must derive from encdec.objectives.Objective"):
        _module(DuckTyped())


def test_denoising_noise_follows_the_step_of_the_context():
    batch = make_batch("copy", 8, torch.Generator().manual_seed(0))
    objective = Denoise(mask_ratio=0.5, mask_id=3)
    objective.src_pad_id = 0
    model = make_model("gru", "gru+additive", d_model=16).eval()
    loss = lambda step: float(objective.loss(model, batch, StepContext(global_step=step))[0].detach())  # noqa: E731
    assert loss(5) == loss(5) and loss(5) != loss(6)
    assert float(objective.loss(model, batch)[0].detach()) == loss(0), "outside a loop the noise is step 0's"


def test_attention_maps_read_the_image_grid_from_the_encoder_output():
    pytest.importorskip("timm")
    from encdec.model import EncoderDecoder
    from encdec.modules.image_encoders import CNNEncoder
    from encdec.modules.rnn import RNNDecoder
    from encdec_tasks.captioning.attention_maps import attention_per_step

    torch.manual_seed(0)
    encoder = CNNEncoder("test_resnet", d_model=16, img_size=64, model_kwargs={"output_stride": 16})
    decoder = RNNDecoder(12, d_model=16, hidden_size=16, cell="lstm", dropout=0.0)
    model = EncoderDecoder(encoder, decoder, bos_id=1, eos_id=2, pad_id=0).eval()
    tokens, weights, grid = attention_per_step(model, torch.randn(2, 3, 64, 64), max_len=4)
    assert grid == (4, 4) and weights.shape[-1] == 16 and weights.shape[:2] == tokens.shape
    assert not hasattr(encoder, "grid_size"), "the grid travels in EncoderOutput, not on the encoder"
