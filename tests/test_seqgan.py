"""SeqGAN: the paper's oracle, discriminators, Monte-Carlo rollout rewards (exact small
cases), the policy-gradient loss, the delayed rollout copy and the phase machine."""

import math
import os
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from conftest import SHARED_DATA
from encdec.model import EncoderDecoder
from encdec.modules.constant_encoder import ConstantEncoder
from encdec.modules.discriminators import CNNTextClassifier, EncoderClassifier, build_with_accepted
from encdec.modules.rnn import RNNDecoder, RNNEncoder
from encdec.objectives.base import StepContext
from encdec.objectives.seqgan import PHASES, SeqGAN
from encdec.types import Batch
from encdec_tasks.textgen.oracle import ORACLE_ARRAYS, OracleLSTM
from encdec_tasks.textgen.synthetic.fixtures import write_tiny_oracle


def _oracle_path() -> Path:
    root = Path(os.environ.get("ENCDEC_DATA_DIR") or SHARED_DATA)
    return root / "seqgan-oracle" / "oracle_lstm.npz"


# -- the oracle -----------------------------------------------------------------------------
def test_oracle_cell_follows_the_readme_equations(tmp_path):
    path = write_tiny_oracle(tmp_path / "o.npz", vocab=7, dim=3, seed=1)
    a = dict(np.load(path))
    oracle = OracleLSTM.load(path, check_hash=False)
    seq = [4, 0, 6]
    sig = lambda z: 1 / (1 + np.exp(-z))  # noqa: E731
    h, c, x, total = np.zeros(3), np.zeros(3), a["embedding"][0], 0.0  # start token 0
    for tok in seq:
        i = sig(x @ a["Wi"] + h @ a["Ui"] + a["bi"])
        f = sig(x @ a["Wf"] + h @ a["Uf"] + a["bf"])
        o = sig(x @ a["Wo_gate"] + h @ a["Uo_gate"] + a["bo_gate"])
        c = f * c + i * np.tanh(x @ a["Wc"] + h @ a["Uc"] + a["bc"])
        h = o * np.tanh(c)
        logits = h @ a["W_out"] + a["b_out"]
        total -= logits[tok] - np.log(np.exp(logits - logits.max()).sum()) - logits.max()
        x = a["embedding"][tok]
    assert oracle.nll(torch.tensor([seq]))[0].item() == pytest.approx(total / 3, rel=1e-5)


def test_oracle_file_checks(tmp_path):
    from encdec.errors import DataError

    with pytest.raises(DataError, match="not found; set ENCDEC_DATA_DIR"):
        OracleLSTM.load(tmp_path / "missing.npz")
    path = write_tiny_oracle(tmp_path / "o.npz")
    with pytest.raises(DataError, match="sha256"):
        OracleLSTM.load(path)
    np.savez(tmp_path / "bad.npz", **{k: np.zeros(2) for k in ORACLE_ARRAYS[:3]})
    with pytest.raises(DataError, match="lack array"):
        OracleLSTM.load(tmp_path / "bad.npz", check_hash=False)


@pytest.mark.skipif(not _oracle_path().exists(), reason="SeqGAN oracle weights not available (ENCDEC_DATA_DIR)")
def test_paper_oracle_reproduces_its_measured_nll():
    """README: the oracle's own samples score 5.75 and uniform tokens 11.44 (10,000 each).
    1,000 samples with a fixed seed keep the test fast (standard error ~0.02)."""
    oracle = OracleLSTM.load(_oracle_path())
    samples = oracle.sample(1000, generator=torch.Generator().manual_seed(0))
    assert samples.shape == (1000, 20) and int(samples.max()) < 5000
    assert oracle.nll_oracle(samples) == pytest.approx(5.75, abs=0.05)
    uniform = torch.randint(0, 5000, (1000, 20), generator=torch.Generator().manual_seed(0))
    assert oracle.nll_oracle(uniform) == pytest.approx(11.44, abs=0.1)


# -- discriminators -------------------------------------------------------------------------
def test_cnn_discriminator_shapes_and_short_sequences():
    disc = CNNTextClassifier(30, embed_dim=8, filter_sizes=[1, 2, 5], num_filters=[3, 4, 5], pad_id=0)
    assert disc(torch.randint(1, 30, (4, 9))).shape == (4,)
    assert disc(torch.randint(1, 30, (2, 3))).shape == (2,)  # padded up to the widest filter
    reg = disc.regulariser()
    expected = 0.2 * 0.5 * (disc.out.weight.pow(2).sum() + disc.out.bias.pow(2).sum())
    assert torch.allclose(reg, expected)
    with pytest.raises(ValueError, match="same length"):
        CNNTextClassifier(30, filter_sizes=[1, 2], num_filters=[3])


def test_encoder_classifier_builds_any_encoder_for_the_vocabulary():
    from functools import partial

    disc = build_with_accepted(
        partial(EncoderClassifier, encoder=partial(RNNEncoder, d_model=16, hidden_size=8, cell="gru"), d_model=16),
        vocab_size=25, pad_id=0,
    )
    assert disc.encoder.embed.embed.num_embeddings == 25
    tokens = torch.tensor([[3, 4, 5, 0], [0, 0, 0, 0]])
    assert disc(tokens).shape == (2,)


# -- rollouts and the policy gradient on a stub policy ---------------------------------------
class FixedPolicy(nn.Module):
    """A decoder whose next-token distribution is `probs` at every step."""

    def __init__(self, probs: list[float]):
        super().__init__()
        self.logits = nn.Parameter(torch.tensor(probs).log())

    def init_state(self, enc):
        return {"rows": torch.zeros(enc.memory.size(0))}

    def step(self, tokens, state):
        return self.logits.expand(tokens.size(0), -1), state

    @staticmethod
    def reorder(state, index):
        return {k: v.index_select(0, index) for k, v in state.items()}

    def forward(self, tgt_in, enc):
        return self.logits.expand(*tgt_in.shape, -1)


class CountingDiscriminator(nn.Module):
    """logit = weight * (number of `token` in the sequence) + bias."""

    def __init__(self, token: int, weight: float, bias: float):
        super().__init__()
        self.token, self.weight, self.bias = token, weight, bias

    def forward(self, tokens):
        return self.weight * (tokens == self.token).float().sum(1) + self.bias

    def regulariser(self):
        return torch.zeros(())


PAD, BOS, EOS = 0, 1, 2  # vocabulary: 0 pad, 1 bos, 2 eos, 3 and 4 words


def _stub(probs, disc, **kw):
    model = EncoderDecoder(ConstantEncoder(4), FixedPolicy(probs), bos_id=BOS, eos_id=EOS, pad_id=PAD)
    obj = SeqGAN(disc, max_len=kw.pop("max_len", 5), **kw)  # 4 tokens + EOS (counted as decoding counts it)
    obj.build(model, {})
    return model, obj


def test_rollout_rewards_exact_with_a_deterministic_policy():
    """The rollout policy always writes token 4, so the completion of y_1..y_t is known:
    reward_t = sigmoid(w * (#4 in y_1..y_t + (L - t)) + b)."""
    model, obj = _stub([0, 0, 0, 0, 1.0], CountingDiscriminator(4, 1.0, -2.0), rollouts=3)
    tokens = torch.tensor([[3, 3, 4, 3], [4, 4, 4, 4]])
    src = torch.zeros(2, 1, dtype=torch.long)
    rewards = obj.rollout_rewards(src, None, tokens, model)
    sig = lambda z: 1 / (1 + math.exp(-z))  # noqa: E731
    expected = [
        [sig(0 + 3 - 2), sig(0 + 2 - 2), sig(1 + 1 - 2), sig(1 - 2)],
        [sig(4 - 2)] * 4,
    ]
    assert torch.allclose(rewards, torch.tensor(expected), atol=1e-6)


def test_rollout_rewards_average_the_completions_and_stop_at_eos():
    """Uniform policy over {3, 4}: with a discriminator that only reads the last position,
    the reward before the end is the mean over completions, ~ (sig(a) + sig(b)) / 2; after
    EOS the rewards are zero, and completions of an ended prefix are padding."""
    disc = CountingDiscriminator(4, 4.0, -2.0)
    model, obj = _stub([0, 0, 0, 0.5, 0.5], disc, rollouts=4000, max_len=4)
    obj.discriminator = LastTokenIs4(disc)
    tokens = torch.tensor([[3, 3, 3], [3, EOS, PAD]])
    rewards = obj.rollout_rewards(torch.zeros(2, 1, dtype=torch.long), None, tokens, model)
    sig = lambda z: 1 / (1 + math.exp(-z))  # noqa: E731
    half = (sig(2.0) + sig(-2.0)) / 2
    assert rewards[0, 0].item() == pytest.approx(half, abs=0.02)
    assert rewards[0, 1].item() == pytest.approx(half, abs=0.02)
    assert rewards[0, 2].item() == pytest.approx(sig(-2.0), abs=1e-6)  # the sequence itself
    # the prefix (3) is completed at random; the prefix (3, EOS) only with padding
    assert rewards[1, 0].item() == pytest.approx(half, abs=0.02)
    assert rewards[1, 1].item() == pytest.approx(sig(-2.0), abs=1e-6)
    assert rewards[1, 2].item() == 0.0


class LastTokenIs4(nn.Module):
    def __init__(self, base):
        super().__init__()
        self.base = base

    def forward(self, tokens):
        return 4.0 * (tokens[:, -1] == 4).float() - 2.0

    def regulariser(self):
        return torch.zeros(())


def test_policy_gradient_loss_is_reward_weighted_nll_over_real_tokens():
    probs = [0.0, 0.0, 0.1, 0.3, 0.6]
    model, obj = _stub(probs, CountingDiscriminator(4, 1.0, 0.0))
    tokens = torch.tensor([[3, 4, EOS, PAD]])
    rewards = torch.tensor([[0.5, 1.0, 2.0, 7.0]])
    loss = obj.policy_gradient_loss(model, torch.zeros(1, 1, dtype=torch.long), None, tokens, rewards)
    expected = -(0.5 * math.log(0.3) + 1.0 * math.log(0.6) + 2.0 * math.log(0.1)) / 3
    assert loss.item() == pytest.approx(expected, rel=1e-5)


def test_rollout_policy_is_a_delayed_copy():
    model, obj = _stub([0, 0, 0, 0.5, 0.5], CountingDiscriminator(4, 1.0, 0.0), rollout_update_rate=0.8)
    before = obj.rollout.decoder.logits.detach().clone()
    with torch.no_grad():
        model.decoder.logits.add_(1.0)
    obj.update_rollout(model)
    assert torch.allclose(obj.rollout.decoder.logits, 0.8 * before + 0.2 * model.decoder.logits)
    assert not any(p.requires_grad for p in obj.rollout.parameters())


def test_samples_respect_min_len_and_pad_after_eos():
    model, obj = _stub([0, 0, 0.5, 0.25, 0.25], CountingDiscriminator(4, 1.0, 0.0), max_len=7, min_len=2)
    torch.manual_seed(0)
    tokens = obj.sample(model, torch.zeros(200, 1, dtype=torch.long), None)
    assert tokens.shape == (200, 6)
    assert not (tokens[:, :2] == EOS).any() and not (tokens == BOS).any()
    after_end = torch.cumsum((tokens == EOS).long(), 1) - (tokens == EOS).long() > 0
    assert (tokens[after_end] == PAD).all() and after_end.any()


# -- the phase machine -----------------------------------------------------------------------
def _tiny_generator(vocab=12):
    return EncoderDecoder(
        ConstantEncoder(8),
        RNNDecoder(vocab, d_model=8, hidden_size=8, cell="lstm", dropout=0.0, tie_embeddings=False),
        bos_id=1, eos_id=2, pad_id=0,
    )


def _oracle_like_batch(rows=4, length=5, vocab=12):
    y = torch.randint(3, vocab, (rows, length))
    bos, eos = torch.full((rows, 1), 1), torch.full((rows, 1), 2)
    return Batch(src=bos.clone(), src_mask=torch.ones(rows, 1, dtype=torch.bool),
                 tgt_in=torch.cat([bos, y], 1), tgt_out=torch.cat([y, eos], 1))


def test_phases_run_in_order_with_their_lengths_and_state_round_trips():
    model = _tiny_generator()
    disc = CNNTextClassifier(12, embed_dim=4, filter_sizes=[1, 2], num_filters=[2, 2], pad_id=0)
    obj = SeqGAN(disc, generator_pretrain_epochs=1, discriminator_pretrain_epochs=0.5, adversarial_rounds=2,
                 generator_steps=1, discriminator_steps=2, rollouts=2, max_len=6)
    obj.build(model, {})
    optimizers = obj.configure_optimizers(model)
    ctx = StepContext(epoch_length=4)
    seen, logs_seen, finished = [], [], []
    while not (finished and finished[-1]):
        seen.append((obj.phase, obj.phase_step))
        result = obj.manual_step(model, _oracle_like_batch(), optimizers, ctx)
        logs_seen.append(set(result.logs))
        finished.append(result.finished)
    assert obj.phase == "done" and finished.count(True) == 1, "the last step says training is over"
    assert [p for p, _ in seen] == ["generator_mle"] * 4 + ["discriminator_pretrain"] * 2 + ["adversarial"] * 6
    assert logs_seen[0] == {"loss", "nll"} and logs_seen[4] == {"d_loss", "d_accuracy"}
    assert logs_seen[6] == {"pg_loss", "reward"} and logs_seen[7] == {"d_loss", "d_accuracy"}
    assert logs_seen[9] == {"pg_loss", "reward"}
    state = obj.state_dict()
    fresh = SeqGAN(CNNTextClassifier(12, embed_dim=4, filter_sizes=[1, 2], num_filters=[2, 2]))
    fresh.build(_tiny_generator(), {})
    fresh.load_state_dict(state)
    assert (fresh.phase, fresh.phase_step) == ("done", 0)
    assert PHASES[-1] == "done"


def test_batch_mean_baseline_centres_rewards_per_position_over_real_tokens():
    model, obj = _stub([0, 0, 0, 0.5, 0.5], CountingDiscriminator(4, 1.0, 0.0), reward_baseline="batch_mean")
    tokens = torch.tensor([[3, 3, EOS], [4, EOS, PAD]])
    rewards = torch.tensor([[0.2, 0.4, 0.9], [0.6, 0.8, 0.0]])
    adv = obj.advantages(rewards, tokens, model)
    assert torch.allclose(adv, torch.tensor([[-0.2, -0.2, 0.0], [0.2, 0.2, 0.0]]))
    paper = SeqGAN(CountingDiscriminator(4, 1.0, 0.0))
    assert torch.equal(paper.advantages(rewards, tokens, model), rewards)
