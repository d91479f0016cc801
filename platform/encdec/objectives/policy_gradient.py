"""REINFORCE on the task's own reward, with a choice of baseline (SCST, RLOO, GRPO-style).

One training step: draw K samples per source with the core's `Sampling` search (no grad,
any decoder), score them with the reward(s), subtract a baseline, then teacher-force the
samples through the decoder to get differentiable log-probabilities (decoder-agnostic: it
only needs `forward(tgt_in, enc)`), and minimise

    - sum_{i,t} A_i log p(y_it) / #tokens  -  entropy_coef * H  +  kl_coef * KL(p || p_ref)
    + mle_weight * NLL(reference)

Baselines (`baseline=`):
  greedy  self-critical (Rennie et al. 2017): b_i = reward of the greedy decode of source i.
  loo     leave-one-out mean of the other K-1 samples of the same source (RLOO, Kool et al.
          2019; Ahmadian et al. 2024).
  group   group-normalised: A = (r - mean_K) / (std_K + eps), std with Bessel's correction
          (GRPO, Shao et al. 2024, as TRL computes it).
  none    plain REINFORCE, b = 0.

The KL penalty is to the model as it was when training started (after `init_from`): a
frozen copy taken at setup time, registered under `objective.reference` so that a resumed run
keeps the true starting model (the live weights have moved on by then). It is excluded from
the optimiser and from `model.*`, which is all that eval, predict and `init_from` read; it
does double the checkpoint size, which is why it exists only when kl_coef > 0. H and KL are
exact per position (full vocabulary sums), averaged over sampled tokens.

By default the whole step runs with dropout off (`keep_dropout=false`): samples and the log-probs
of their gradient then come from the same policy, as in RLHF practice.
"""

from __future__ import annotations

import copy
from typing import Any, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from encdec.decoding.search import Greedy, Sampling
from encdec.errors import ConfigError
from encdec.objectives.base import Objective, StepContext
from encdec.objectives.mle import MLE
from encdec.objectives.rewards import Weighted, as_weighted, mix

BASELINES = ("greedy", "loo", "group", "none")
_LENGTH_KEYS = ("max_len", "max_len_a", "max_len_b", "min_len", "no_repeat_ngram_size")


# --- the math, on plain tensors (tested exactly) --------------------------------------------


def advantages(
    rewards: Tensor, baseline: str, greedy_rewards: Tensor | None = None, eps: float = 1e-4
) -> tuple[Tensor, Tensor]:
    """rewards [B, K] -> (advantages [B, K], baseline [B, K]).

    For `group` the returned baseline is the group mean (the advantage is also divided by
    the group's standard deviation + eps).
    """
    k = rewards.size(1)
    if baseline == "greedy":
        if greedy_rewards is None:
            raise ValueError("baseline 'greedy' needs greedy_rewards")
        base = greedy_rewards[:, None].expand_as(rewards)
        return rewards - base, base
    if baseline == "loo":
        if k < 2:
            raise ValueError("baseline 'loo' needs at least 2 samples per source")
        base = (rewards.sum(dim=1, keepdim=True) - rewards) / (k - 1)
        return rewards - base, base
    if baseline == "group":
        if k < 2:
            raise ValueError("baseline 'group' needs at least 2 samples per source")
        mean = rewards.mean(dim=1, keepdim=True)
        std = rewards.std(dim=1, keepdim=True)  # unbiased, as TRL's GRPO
        return (rewards - mean) / (std + eps), mean.expand_as(rewards)
    if baseline == "none":
        return rewards.clone(), torch.zeros_like(rewards)
    raise ValueError(f"unknown baseline {baseline!r}; choose one of {BASELINES}")


def sample_mask(tokens: Tensor, eos: int, pad: int) -> Tensor:
    """[N, L] bool: the generated tokens up to and including the first EOS."""
    is_eos = tokens == eos
    ended_before = (is_eos.long().cumsum(dim=1) - is_eos.long()) > 0
    return ~ended_before & ((tokens != pad) | is_eos)


def teacher_forcing_input(tokens: Tensor, bos: int) -> Tensor:
    """Decoder input for generated tokens [N, L] (BOS dropped): BOS + tokens[:, :-1]."""
    return torch.cat([torch.full_like(tokens[:, :1], bos), tokens[:, :-1]], dim=1)


def masked_mean(values: Tensor, mask: Tensor) -> Tensor:
    # where, not a product: log p of a padding position may be -inf, and -inf * 0 is nan
    return torch.where(mask, values, 0.0).sum() / mask.sum().clamp_min(1)


def entropy(lprobs: Tensor) -> Tensor:
    """[..., V] log-probabilities -> [...] entropy -sum_v p log p (nats)."""
    return -(lprobs.exp() * lprobs).sum(dim=-1)


def kl_divergence(lprobs: Tensor, ref_lprobs: Tensor) -> Tensor:
    """[..., V] -> [...] KL(p || p_ref) = sum_v p (log p - log p_ref), exact per position."""
    return (lprobs.exp() * (lprobs - ref_lprobs)).sum(dim=-1)


def reinforce_loss(token_lprobs: Tensor, mask: Tensor, adv: Tensor) -> Tensor:
    """-sum_{i,t} A_it log p(y_it) over sampled tokens, divided by their number. `adv` is one
    advantage per sequence [N] (SCST, RLOO, GRPO) or one per token [N, L] (SeqGAN rollouts)."""
    per_token = adv if adv.dim() == 2 else adv[:, None]
    return -masked_mean(per_token * token_lprobs, mask.bool())


# --- the objective --------------------------------------------------------------------------


def _sampler(sampling: Sampling | dict[str, Any] | None, samples_per_source: int) -> Sampling:
    """The search drawing the samples: the `decoding/sampling` config (composed into
    `objective.sampling`, so sampling options have one home) or keyword arguments for it;
    how many samples per source is `objective.samples_per_source`."""
    if sampling is None or not isinstance(sampling, Sampling):
        try:
            sampling = Sampling(**dict(sampling or {}))
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"objective.sampling: {exc}") from None
    if sampling.num_return != 1:
        raise ConfigError("set objective.samples_per_source, not objective.sampling.num_return")
    sampling.num_return = samples_per_source
    return sampling


class PolicyGradient(nn.Module, Objective):
    progress_bar = ("reward",)

    def __init__(
        self,
        baseline: str = "greedy",
        samples_per_source: int = 1,
        rewards: Sequence[Any] | None = None,
        sampling: Sampling | dict[str, Any] | None = None,
        entropy_coef: float = 0.0,
        kl_coef: float = 0.0,
        mle_weight: float = 0.0,
        group_eps: float = 1e-4,
        keep_dropout: bool = False,
    ):
        super().__init__()
        if baseline not in BASELINES:
            raise ConfigError(f"objective.baseline={baseline!r}; choose one of {', '.join(BASELINES)}")
        k = samples_per_source
        if k < 1 or (baseline in ("loo", "group") and k < 2):
            raise ConfigError(
                f"objective.samples_per_source={k}: baseline {baseline!r} needs "
                f"{'>= 2 samples per source' if baseline in ('loo', 'group') else '>= 1'}"
            )
        for key, value in (("entropy_coef", entropy_coef), ("kl_coef", kl_coef), ("mle_weight", mle_weight)):
            if value < 0:
                raise ConfigError(f"objective.{key} must be >= 0, got {value}")
        self.baseline, self.samples_per_source = baseline, samples_per_source
        self.entropy_coef, self.kl_coef, self.mle_weight = entropy_coef, kl_coef, mle_weight
        self.group_eps, self.keep_dropout = group_eps, keep_dropout
        self.rewards: list[Weighted] = as_weighted(rewards)
        self.sampler = _sampler(sampling, samples_per_source)
        # the greedy baseline decodes under the same length rules as the samples
        self.greedy = Greedy(**{k: getattr(self.sampler, k) for k in _LENGTH_KEYS})
        self._mle = MLE()
        self.adapter: Any = None

    def setup(self, model, adapter) -> None:
        self.adapter = adapter
        self.rewards = [r.bind(adapter) for r in self.rewards]
        if self.kl_coef > 0:
            self.reference = copy.deepcopy(model).requires_grad_(False).eval()

    # -- one step --------------------------------------------------------------------------
    def _rewards(self, batch, tokens: Tensor, repeat: int) -> tuple[Tensor, dict[str, list[float]]]:
        outputs = self.adapter.decode(tokens)
        refs = self.adapter.references(batch)
        sources = batch.meta.get("source", [None] * len(batch))
        rep = lambda xs: [x for x in xs for _ in range(repeat)]  # noqa: E731
        total, parts = mix(self.rewards, rep(sources), outputs, rep(refs))
        return torch.tensor(total, dtype=torch.float32).view(len(batch), repeat), parts

    def loss(self, model, batch, ctx: StepContext | None = None) -> tuple[Tensor, dict[str, Tensor]]:
        was_training = model.training
        if not self.keep_dropout:
            model.eval()
        try:
            return self._step(model, batch)
        finally:
            model.train(was_training)

    def _step(self, model, batch) -> tuple[Tensor, dict[str, Tensor]]:
        bos, eos, pad = model.bos_id, model.eos_id, model.pad_id
        k = self.samples_per_source
        with torch.no_grad():
            enc = model.encode(batch.src, batch.src_mask)
            tokens = self.sampler.search(model.decoder, enc, bos, eos, pad).tokens.flatten(0, 1)  # [B*K, L]
            greedy_r = None
            if self.baseline == "greedy":
                greedy = self.greedy.search(model.decoder, enc, bos, eos, pad).best()
                greedy_r = self._rewards(batch, greedy, 1)[0][:, 0]
        rewards, parts = self._rewards(batch, tokens, k)
        device = enc.memory.device
        adv, base = advantages(rewards, self.baseline, greedy_r, self.group_eps)
        adv = adv.to(device).flatten()

        mask = sample_mask(tokens, eos, pad)
        tgt_in = teacher_forcing_input(tokens, bos)
        enc = model.encode(batch.src, batch.src_mask)
        enc_k = enc.repeat_interleave(k) if k > 1 else enc
        lprobs = F.log_softmax(model.decoder(tgt_in, enc_k).float(), dim=-1)  # [N, L, V]
        token_lp = lprobs.gather(-1, tokens.unsqueeze(-1)).squeeze(-1)
        loss = reinforce_loss(token_lp, mask, adv)

        if self.entropy_coef > 0:
            ent = masked_mean(entropy(lprobs), mask)
            loss = loss - self.entropy_coef * ent
        else:
            with torch.no_grad():
                ent = masked_mean(entropy(lprobs), mask)
        logs = {"entropy": ent.detach()}
        if self.kl_coef > 0:
            self.reference.eval()
            with torch.no_grad():
                ref = self.reference
                ref_lp = F.log_softmax(ref.decoder(tgt_in, ref.encode(batch.src, batch.src_mask).repeat_interleave(k)).float(), dim=-1)
            kl = masked_mean(kl_divergence(lprobs, ref_lp), mask)
            loss = loss + self.kl_coef * kl
            logs["kl"] = kl.detach()
        if self.mle_weight > 0 and batch.tgt_out is not None:
            mle, mle_logs = self._mle.loss(model, batch)
            loss = loss + self.mle_weight * mle
            logs["nll"] = mle_logs["nll"]

        logs.update(
            reward=rewards.mean(), baseline=base.mean(), advantage_mean=adv.mean(), advantage_std=adv.std(correction=0),
            sample_len=mask.sum(1).float().mean(),
        )
        if greedy_r is not None:
            logs["greedy_reward"] = greedy_r.mean()
        if len(parts) > 1:
            logs.update({f"reward_{name}": torch.tensor(v).mean() for name, v in parts.items()})
        return loss, logs
