"""Policy-gradient objectives: exact baseline/advantage, entropy and KL math; RL raises a
known reward over its MLE start on a toy task; the frozen reference model stays out of the
optimiser and of `model.*`; SCST through the CLI from an `init_from` run directory."""

from __future__ import annotations

import csv
import math
from types import SimpleNamespace

import pytest
import torch

from conftest import run_cli, tiny_train_args
from encdec.checkpointing import load_weights
from encdec.decoding import Greedy
from encdec.errors import ConfigError
from encdec.lightning_module import EncDecModule
from encdec.objectives import MLE, PolicyGradient, StepContext
from encdec.objectives.policy_gradient import (
    advantages,
    entropy,
    kl_divergence,
    reinforce_loss,
    sample_mask,
    teacher_forcing_input,
)
from encdec.objectives.rewards import Weighted, mix
from encdec.optim import param_groups
from denoise_runs import denoise_run, finetuned_run, monolingual_corpus  # noqa: F401 (fixtures)
from toy import BOS, EOS, NUM_SPECIALS, PAD, make_batch, make_model

REWARDS = torch.tensor([[1.0, 2.0, 3.0], [0.0, 0.0, 3.0]])


# --- exact math -----------------------------------------------------------------------------


def test_greedy_baseline_is_the_greedy_decodes_reward():
    adv, base = advantages(REWARDS, "greedy", greedy_rewards=torch.tensor([2.0, 1.0]))
    assert torch.equal(base, torch.tensor([[2.0, 2.0, 2.0], [1.0, 1.0, 1.0]]))
    assert torch.equal(adv, torch.tensor([[-1.0, 0.0, 1.0], [-1.0, -1.0, 2.0]]))


def test_leave_one_out_baseline_is_the_mean_of_the_other_samples():
    adv, base = advantages(REWARDS, "loo")
    assert torch.allclose(base, torch.tensor([[2.5, 2.0, 1.5], [1.5, 1.5, 0.0]]))
    assert torch.allclose(adv, torch.tensor([[-1.5, 0.0, 1.5], [-1.5, -1.5, 3.0]]))
    # RLOO's advantage is K/(K-1) times the advantage over the plain group mean
    assert torch.allclose(adv, 1.5 * (REWARDS - REWARDS.mean(1, keepdim=True)))


def test_group_baseline_normalises_by_the_groups_unbiased_std():
    adv, base = advantages(REWARDS, "group", eps=0.0)
    # row 0: mean 2, std sqrt(((1)^2 + 0 + 1^2) / 2) = 1; row 1: mean 1, std sqrt((1+1+4)/2) = sqrt(3)
    assert torch.allclose(base, torch.tensor([[2.0] * 3, [1.0] * 3]))
    assert torch.allclose(adv, torch.tensor([[-1.0, 0.0, 1.0], [-1 / math.sqrt(3), -1 / math.sqrt(3), 2 / math.sqrt(3)]]))
    adv_eps, _ = advantages(torch.tensor([[0.5, 0.5]]), "group", eps=1e-4)
    assert torch.equal(adv_eps, torch.zeros(1, 2)), "equal rewards: no signal, no division by zero"


def test_no_baseline_and_invalid_settings():
    adv, base = advantages(REWARDS, "none")
    assert torch.equal(adv, REWARDS) and torch.equal(base, torch.zeros_like(REWARDS))
    with pytest.raises(ValueError, match="at least 2"):
        advantages(REWARDS[:, :1], "loo")
    with pytest.raises(ConfigError, match="objective.samples_per_source=1"):
        PolicyGradient(baseline="group", samples_per_source=1)
    with pytest.raises(ConfigError, match="objective.baseline"):
        PolicyGradient(baseline="mean")


def test_sample_mask_and_teacher_forcing_input():
    tokens = torch.tensor([[5, 6, EOS, PAD], [EOS, PAD, PAD, PAD], [5, 5, 5, EOS]])
    assert sample_mask(tokens, EOS, PAD).tolist() == [
        [True, True, True, False], [True, False, False, False], [True, True, True, True]
    ]
    assert teacher_forcing_input(tokens, BOS).tolist() == [[BOS, 5, 6, EOS], [BOS, EOS, PAD, PAD], [BOS, 5, 5, 5]]


def test_entropy_and_kl_are_exact():
    p = torch.tensor([[0.5, 0.25, 0.25], [1 / 3, 1 / 3, 1 / 3]])
    q = torch.tensor([[0.25, 0.5, 0.25], [0.5, 0.25, 0.25]])
    assert torch.allclose(entropy(p.log()), torch.tensor([1.5 * math.log(2), math.log(3)]))
    kl0 = 0.5 * math.log(2) + 0.25 * math.log(0.5)
    kl1 = (1 / 3) * (math.log(2 / 3) + 2 * math.log(4 / 3))
    assert torch.allclose(kl_divergence(p.log(), q.log()), torch.tensor([kl0, kl1]))
    assert torch.allclose(kl_divergence(p.log(), p.log()), torch.zeros(2))


def test_reinforce_loss_weights_each_samples_log_prob_by_its_advantage():
    token_lp = torch.tensor([[-1.0, -2.0, -9.0], [-0.5, -0.5, -0.5]], requires_grad=True)
    mask = torch.tensor([[True, True, False], [True, True, True]])
    adv = torch.tensor([2.0, -1.0])
    loss = reinforce_loss(token_lp, mask, adv)
    assert loss.item() == pytest.approx(-(2.0 * -3.0 + -1.0 * -1.5) / 5)
    loss.backward()
    assert torch.allclose(token_lp.grad, torch.tensor([[-0.4, -0.4, 0.0], [0.2, 0.2, 0.2]]))


def test_rewards_mix_by_weight():
    a = lambda s, o, r: [1.0 for _ in o]  # noqa: E731
    b = lambda s, o, r: [float(len(x)) for x in o]  # noqa: E731
    total, parts = mix([Weighted(a, 0.5, "a"), Weighted(b, 2.0, "b")], [None] * 2, ["xy", "xyz"], ["", ""])
    assert total == [0.5 + 4.0, 0.5 + 6.0] and parts == {"a": [1.0, 1.0], "b": [2.0, 3.0]}


def test_rewards_mixed_by_weight_from_the_config():
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    from conftest import CONF_DIR
    from encdec.build import build_component
    from encdec_tasks.translation.rewards import sentence_bleu, sentence_chrf

    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = compose("train", overrides=[
            "objective=rloo",
            "objective.rewards=[{_target_:encdec.objectives.rewards.Weighted,weight:0.25},"
            "{_target_:encdec.objectives.rewards.Weighted,weight:0.75,"
            "fn:{_target_:encdec_tasks.translation.rewards.sentence_chrf,_partial_:true}}]",
        ])
    GlobalHydra.instance().clear()
    objective = build_component(cfg.objective, "objective")
    objective.setup(None, SimpleNamespace(reward=sentence_bleu))
    outputs, refs = ["A dog runs in the park.", "A cat."], ["A dog runs in the park.", "A small cat sits."]
    total, parts = mix(objective.rewards, [None, None], outputs, refs)
    bleu, chrf = sentence_bleu(None, outputs, refs), sentence_chrf(None, outputs, refs)
    assert parts == {"task": bleu, "sentence_chrf": chrf} and bleu[0] == pytest.approx(1.0)
    assert total == pytest.approx([0.25 * b + 0.75 * c for b, c in zip(bleu, chrf)])
    assert 0 < chrf[1] < 1 and objective.sampler.num_return == 4


# --- learning a known reward ----------------------------------------------------------------

TARGET = NUM_SPECIALS + 3  # the symbol the reward counts


class ToyAdapter:
    """Outputs are symbol lists up to EOS; the default reward is the share of TARGET in them."""

    def decode(self, tokens):
        out = []
        for row in tokens.tolist():
            out.append(row[: row.index(EOS)] if EOS in row else row)
        return out

    def references(self, batch):
        return [None] * len(batch)

    def reward(self, sources, outputs, references):
        return [sum(t == TARGET for t in o) / max(1, len(o)) for o in outputs]


def _greedy_reward(model, batch) -> float:
    model.eval()
    with torch.no_grad():
        out = ToyAdapter().decode(Greedy(max_len=12)(model, batch.src, batch.src_mask).best())
    return sum(ToyAdapter().reward(None, out, None)) / len(out)


@pytest.fixture(scope="module")
def mle_start():
    """A GRU model trained by MLE to copy for a few steps: it copies (TARGET ~1/10 of symbols)."""
    torch.manual_seed(0)
    model = make_model("gru", "gru+additive", d_model=32)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    gen = torch.Generator().manual_seed(0)
    for _ in range(40):
        loss, _ = MLE().loss(model, make_batch("copy", 64, gen))
        opt.zero_grad()
        loss.backward()
        opt.step()
    return {k: v.clone() for k, v in model.state_dict().items()}


@pytest.mark.parametrize("baseline, k", [("greedy", 2), ("loo", 4), ("group", 4)])
def test_rl_raises_a_known_reward_over_its_mle_start(mle_start, baseline, k):
    torch.manual_seed(1)
    model = make_model("gru", "gru+additive", d_model=32)
    model.load_state_dict(mle_start)
    held_out = make_batch("copy", 200, torch.Generator().manual_seed(7))
    before = _greedy_reward(model, held_out)
    objective = PolicyGradient(baseline=baseline, samples_per_source=k, sampling={"max_len": 12})
    objective.setup(model, ToyAdapter())
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    gen = torch.Generator().manual_seed(3)
    for step in range(12):
        model.train()
        loss, logs = objective.loss(model, make_batch("copy", 32, gen), StepContext(global_step=step))
        opt.zero_grad()
        loss.backward()
        opt.step()
    after = _greedy_reward(model, held_out)
    print(f"{baseline}: greedy reward {before:.3f} -> {after:.3f}")
    assert before < 0.2, "the MLE start copies, so TARGET is only ~1/10 of its output"
    assert after > before + 0.25
    assert {"reward", "baseline", "advantage_mean", "entropy"} <= set(logs)


def test_kl_reference_is_a_frozen_copy_outside_the_optimiser_and_model_weights(mle_start, tmp_path):
    model = make_model("gru", "gru+additive", d_model=32)
    model.load_state_dict(mle_start)
    objective = PolicyGradient(baseline="loo", samples_per_source=2, kl_coef=0.5, entropy_coef=0.01, sampling={"max_len": 12})
    module = EncDecModule(model=model, objective=objective, adapter=ToyAdapter(), decoding=Greedy(max_len=12))
    optimised = {id(p) for g in param_groups(module.model) for p in g["params"]}
    assert optimised == {id(p) for p in model.parameters()}
    assert not any(p.requires_grad for p in objective.reference.parameters())
    opt = torch.optim.SGD(model.parameters(), lr=0.5)
    for step in range(3):
        loss, _ = objective.loss(model, make_batch("copy", 16, torch.Generator().manual_seed(step)))
        opt.zero_grad()
        loss.backward()
        opt.step()
    ref = objective.reference.state_dict()
    assert all(torch.equal(ref[k], v) for k, v in mle_start.items()), "the reference never trains"
    assert not all(torch.equal(model.state_dict()[k], v) for k, v in mle_start.items())
    # the checkpoint keeps the reference (a resumed run needs the true start), but only
    # `model.*` is what eval, predict and init_from read
    path = tmp_path / "m.ckpt"
    torch.save({"state_dict": module.state_dict()}, path)
    keys = module.state_dict().keys()
    assert any(k.startswith("objective.reference.") for k in keys)
    assert set(load_weights(path)) == set(model.state_dict())


# --- the CLI --------------------------------------------------------------------------------


def test_scst_from_an_mle_run_directory_through_the_cli(finetuned_run, tiny_corpus, tmp_path):
    mle_dir, _ = finetuned_run  # MLE fine-tuned after denoising pre-training (denoise_runs.py)
    rl_dir = tmp_path / "scst"
    proc = run_cli(
        "train",
        *tiny_train_args(
            tiny_corpus, rl_dir, "trainer=debug", "trainer.max_steps=3", "objective=scst",
            "objective.samples_per_source=2", "objective.kl_coef=0.1", "objective.sampling.max_len=24",
            f"init_from={mle_dir}", "loader.max_tokens=256",
        ),
    )
    assert "0 missing, 0 unexpected keys" in proc.stderr + proc.stdout
    rows = list(csv.DictReader(open(rl_dir / "csv/metrics.csv")))
    logged = {k for r in rows for k, v in r.items() if v}
    assert {"train/reward", "train/greedy_reward", "train/baseline", "train/advantage_std",
            "train/entropy", "train/kl", "test/sacrebleu"} <= logged
    # the frozen reference in the checkpoint is the init_from model (what resume restores)
    start = load_weights(mle_dir / "checkpoints/best.ckpt")
    ckpt = torch.load(rl_dir / "checkpoints/last.ckpt", weights_only=True)["state_dict"]
    reference = {k.removeprefix("objective.reference."): v for k, v in ckpt.items() if k.startswith("objective.reference.")}
    assert reference.keys() == start.keys() and all(torch.equal(reference[k], v) for k, v in start.items())
