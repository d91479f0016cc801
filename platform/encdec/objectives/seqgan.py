"""SeqGAN (Yu et al., AAAI 2017): a generator trained by policy gradient against a
discriminator, with per-token rewards from Monte-Carlo rollouts.

Three explicit phases, in order, each a number of training steps (one step = one batch of
the task's real data):

1. ``generator_mle``: maximum-likelihood pre-training of the generator
   (``generator_pretrain_epochs`` passes over the data);
2. ``discriminator_pretrain``: the discriminator learns real (a data batch) vs generated
   (a fresh generator sample of the same size) for ``discriminator_pretrain_epochs`` passes;
3. ``adversarial``: ``adversarial_rounds`` rounds of ``generator_steps`` policy-gradient
   updates (reward of token t = mean discriminator probability "real" over ``rollouts``
   completions of y_1..y_t sampled by the rollout policy, a delayed copy of the generator
   updated as rollout <- r * rollout + (1 - r) * generator after each generator update),
   then ``discriminator_steps`` discriminator updates.

The phase name and its counters live in the objective's state dict (``get_extra_state``), so
they are checkpointed with the weights: resuming mid-phase continues that phase where it
stopped. The same step functions drive the Lightning run (``manual_step``) and a plain loop
(bench/seqgan_oracle.py).
"""

from __future__ import annotations

import copy
import logging
from typing import Any, Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from encdec.decoding.categorical import sample_categorical
from encdec.errors import ConfigError
from encdec.modules.discriminators import build_with_accepted
from encdec.objectives.base import ManualObjective, StepContext, StepResult, plain_backward
from encdec.objectives.mle import MLE
from encdec.objectives.policy_gradient import reinforce_loss, teacher_forcing_input
from encdec.optim import param_groups
from encdec.types import Batch

log = logging.getLogger(__name__)

PHASES = ("generator_mle", "discriminator_pretrain", "adversarial", "done")


class SeqGAN(nn.Module, ManualObjective):
    progress_bar = ("loss",)

    def __init__(
        self,
        discriminator: Callable[..., nn.Module] | nn.Module,
        generator_pretrain_epochs: float = 120,
        discriminator_pretrain_epochs: float = 50,
        adversarial_rounds: int = 200,
        generator_steps: int = 1,
        discriminator_steps: int = 15,
        rollouts: int = 16,
        rollout_update_rate: float = 0.8,
        max_len: int = 21,
        min_len: int = 0,
        generator_lr: float = 0.01,
        discriminator_lr: float = 1e-4,
        grad_clip: float = 5.0,
        label_smoothing: float = 0.0,
        discriminator_chunk: int = 4096,
        temperature: float = 1.0,
        reward_baseline: str = "none",
        fresh_adversarial_optimizer: bool = False,
    ):
        super().__init__()
        if rollouts < 1 or generator_steps < 1 or discriminator_steps < 0:
            raise ConfigError("objective: rollouts and generator_steps must be >= 1 and discriminator_steps >= 0")
        if not 0 <= min_len < max_len or max_len < 2:
            raise ConfigError(
                f"objective.max_len={max_len}, objective.min_len={min_len}: need max_len >= 2 and "
                "0 <= min_len < max_len (both follow decoding.max_len, decoding.min_len)"
            )
        if not 0.0 <= rollout_update_rate <= 1.0:
            raise ConfigError(f"objective.rollout_update_rate must be in [0, 1], got {rollout_update_rate}")
        self._discriminator_factory = None if isinstance(discriminator, nn.Module) else discriminator
        self.discriminator = discriminator if isinstance(discriminator, nn.Module) else None
        self.rollout: nn.Module | None = None
        self.generator_pretrain_epochs = generator_pretrain_epochs
        self.discriminator_pretrain_epochs = discriminator_pretrain_epochs
        self.adversarial_rounds, self.generator_steps = adversarial_rounds, generator_steps
        self.discriminator_steps, self.rollouts = discriminator_steps, rollouts
        self.rollout_update_rate = rollout_update_rate
        # max_len and min_len mean what they mean to decoding (the run's one home for them):
        # max_len counts the EOS that ends a full-length output. A sample is the tokens before
        # that EOS (EOS -> pad in the discriminator's input), so it has max_len - 1 positions.
        self.length, self.min_len = max_len - 1, min_len
        self.generator_lr, self.discriminator_lr, self.grad_clip = generator_lr, discriminator_lr, grad_clip
        self.mle = MLE(label_smoothing)
        self.discriminator_chunk = discriminator_chunk  # rows per discriminator call in rollouts
        if temperature <= 0:
            raise ConfigError(f"objective.temperature must be > 0, got {temperature}")
        self.temperature = temperature  # of every sample the objective draws (the paper: 1)
        if reward_baseline not in ("none", "batch_mean"):
            raise ConfigError(f"objective.reward_baseline must be 'none' (the paper) or 'batch_mean', got {reward_baseline!r}")
        # batch_mean: subtract the batch's mean reward at each position (variance reduction,
        # not in the paper); fresh_adversarial_optimizer: the paper's code gives the
        # adversarial updates their own Adam, i.e. no moments carried over from MLE
        self.reward_baseline, self.fresh_adversarial_optimizer = reward_baseline, fresh_adversarial_optimizer
        self.phase, self.phase_step = PHASES[0], 0
        self.steps_per_epoch = 1

    # -- wiring ---------------------------------------------------------------------------
    def setup(self, model: nn.Module, adapter) -> None:
        self.build(model, adapter.decoder_kwargs())

    def build(self, model: nn.Module, decoder_kwargs: dict[str, Any]) -> None:
        """Build the discriminator for the model's vocabulary and the rollout copy."""
        if self.discriminator is None:
            self.discriminator = build_with_accepted(self._discriminator_factory, **decoder_kwargs)
        self.rollout = copy.deepcopy(model).requires_grad_(False)

    def configure_optimizers(self, model: nn.Module) -> list[torch.optim.Optimizer]:
        return [
            torch.optim.Adam(param_groups(model), lr=self.generator_lr),
            torch.optim.Adam(self.discriminator.parameters(), lr=self.discriminator_lr),
        ]

    # -- phases ---------------------------------------------------------------------------
    def phase_length(self, phase: str) -> int:
        if phase == "generator_mle":
            return round(self.generator_pretrain_epochs * self.steps_per_epoch)
        if phase == "discriminator_pretrain":
            return round(self.discriminator_pretrain_epochs * self.steps_per_epoch)
        if phase == "adversarial":
            return self.adversarial_rounds * (self.generator_steps + self.discriminator_steps)
        return 0

    def _advance(self, model: nn.Module) -> None:
        self.phase_step += 1
        while self.phase != "done" and self.phase_step >= self.phase_length(self.phase):
            self.phase, self.phase_step = PHASES[PHASES.index(self.phase) + 1], 0
            log.info("SeqGAN: entering phase %s (%d steps)", self.phase, self.phase_length(self.phase))
            if self.phase == "adversarial":  # the rollout policy starts as the pre-trained generator
                self.rollout.load_state_dict(model.state_dict())

    def get_extra_state(self) -> dict[str, Any]:
        return {"phase": self.phase, "phase_step": self.phase_step}

    def set_extra_state(self, state: dict[str, Any]) -> None:
        self.phase, self.phase_step = state["phase"], int(state["phase_step"])

    def step(self, model: nn.Module, batch: Batch, g_opt, d_opt, backward=None) -> dict[str, float]:
        """One step of the current phase on one batch of real data; returns logs.
        `backward(loss) -> bool`: False skips that update (a non-finite loss or gradient)."""
        backward = backward or plain_backward
        self._skip_empty_phases(model)
        phase, logs = self.phase, {}
        if phase == "generator_mle":
            logs = self.generator_mle_step(model, batch, g_opt, backward)
        elif phase == "discriminator_pretrain":
            logs = self.discriminator_step(model, batch, d_opt, backward)
        elif phase == "adversarial":
            if self.phase_step % (self.generator_steps + self.discriminator_steps) < self.generator_steps:
                logs = self.adversarial_generator_step(model, batch, g_opt, backward)
            else:
                logs = self.discriminator_step(model, batch, d_opt, backward)
        if phase != "done":
            self._advance(model)
            if self.phase == "adversarial" != phase and self.fresh_adversarial_optimizer:
                getattr(g_opt, "optimizer", g_opt).state.clear()
        return logs

    def _skip_empty_phases(self, model: nn.Module) -> None:
        if self.phase != "done" and self.phase_length(self.phase) == 0:
            self.phase_step -= 1
            self._advance(model)

    def manual_step(self, model: nn.Module, batch: Batch, optimizers: list, ctx: StepContext) -> StepResult:
        self.steps_per_epoch = ctx.epoch_length or self.steps_per_epoch
        g_opt, d_opt = optimizers
        self._skip_empty_phases(model)
        # the phase this step belongs to and its index within that phase (0-based)
        ctx.log("seqgan/phase", float(PHASES.index(self.phase)), prog_bar=True)
        ctx.log("seqgan/phase_step", float(self.phase_step))
        logs = self.step(model, batch, g_opt, d_opt, ctx.backward)
        return StepResult(logs, finished=self.phase == "done")

    # -- the three kinds of update ------------------------------------------------------------
    def _update(self, loss: Tensor, params, opt, backward) -> None:
        opt.zero_grad()
        if not backward(loss):
            return
        if self.grad_clip:
            torch.nn.utils.clip_grad_norm_(params, self.grad_clip)
        opt.step()

    def generator_mle_step(self, model, batch: Batch, opt, backward) -> dict[str, float]:
        loss, logs = self.mle.loss(model, batch)
        self._update(loss, model.parameters(), opt, backward)
        return {"loss": float(loss.detach()), "nll": float(logs["nll"])}

    def discriminator_step(self, model, batch: Batch, opt, backward) -> dict[str, float]:
        disc = self.discriminator
        real = self.discriminator_input(batch.tgt_out, model)
        fake = self.discriminator_input(self.sample(model, batch.src, batch.src_mask), model)
        logits = disc(torch.cat([real, fake]))
        labels = torch.cat([torch.ones(len(real)), torch.zeros(len(fake))]).to(logits.device)
        loss = F.binary_cross_entropy_with_logits(logits, labels) + disc.regulariser()
        self._update(loss, disc.parameters(), opt, backward)
        accuracy = ((logits > 0).float() == labels).float().mean()
        return {"d_loss": float(loss.detach()), "d_accuracy": float(accuracy)}

    def adversarial_generator_step(self, model, batch: Batch, opt, backward) -> dict[str, float]:
        tokens = self.sample(model, batch.src, batch.src_mask)
        rewards = self.rollout_rewards(batch.src, batch.src_mask, tokens, model)
        loss = self.policy_gradient_loss(model, batch.src, batch.src_mask, tokens, self.advantages(rewards, tokens, model))
        self._update(loss, model.parameters(), opt, backward)
        self.update_rollout(model)
        keep = self.token_mask(tokens, model)
        return {"pg_loss": float(loss.detach()), "reward": float((rewards * keep).sum() / keep.sum().clamp_min(1))}

    # -- pieces -------------------------------------------------------------------------------
    @staticmethod
    def token_mask(tokens: Tensor, model) -> Tensor:
        """1.0 for real tokens (EOS included), 0.0 for the padding after it."""
        return (tokens != model.pad_id).float()

    def discriminator_input(self, tokens: Tensor, model) -> Tensor:
        """Real targets and samples in one form: EOS -> pad, padded/cut to `length`, so the
        discriminator cannot tell them apart by length conventions."""
        tokens = tokens[:, : self.length].masked_fill(tokens[:, : self.length] == model.eos_id, model.pad_id)
        return F.pad(tokens, (0, self.length - tokens.size(1)), value=model.pad_id)

    def _pick(self, logits: Tensor, t: int, model) -> Tensor:
        banned = [model.pad_id, model.bos_id] + ([model.eos_id] if t < self.min_len else [])
        # out of place: a decoder may hand back a view of its own tensors
        logits = logits.float().index_fill(1, torch.tensor(banned, device=logits.device), float("-inf"))
        if self.temperature != 1.0:
            logits = logits / self.temperature
        return sample_categorical(F.softmax(logits, dim=-1))

    @torch.no_grad()
    def _continue(self, model, state: dict, prev: Tensor, start: int, done: Tensor, length: int | None = None) -> Tensor:
        """Read `prev` (the token at position start-1, or BOS) and sample positions
        start..length-1; rows already ended (`done`) get padding."""
        out = []
        for t in range(start, length or self.length):
            logits, state = model.decoder.step(prev, state)
            token = self._pick(logits, t, model).masked_fill(done, model.pad_id)
            done = done | (token == model.eos_id)
            out.append(token)
            prev = token
        return torch.stack(out, dim=1) if out else prev.new_zeros(prev.size(0), 0)

    @torch.no_grad()
    def sample(self, model, src: Tensor, src_mask: Tensor | None) -> Tensor:
        """[B, max_len - 1] sampled tokens (EOS kept, pad after it)."""
        was_training = model.training
        model.eval()
        state = model.decoder.init_state(model.encode(src, src_mask))
        prev = torch.full((src.size(0),), model.bos_id, dtype=torch.long, device=src.device)
        tokens = self._continue(model, state, prev, 0, torch.zeros_like(prev, dtype=torch.bool))
        model.train(was_training)
        return tokens

    @torch.no_grad()
    def rollout_rewards(self, src: Tensor, src_mask: Tensor | None, tokens: Tensor, model) -> Tensor:
        """[B, L] reward of each token: for t < L-1 the mean over `rollouts` completions of
        y_1..y_t (sampled by the rollout policy) of D's probability "real"; for the last
        position D's probability of the sequence itself. Zero on the padding after EOS."""
        policy, disc, n = self.rollout, self.discriminator, self.rollouts
        policy_was, disc_was = policy.training, disc.training
        policy.eval(), disc.eval()
        rows, length = tokens.shape
        fork = torch.arange(rows, device=tokens.device).repeat_interleave(n)
        ended = torch.cumsum((tokens == model.eos_id) | (tokens == model.pad_id), dim=1) > 0
        state = policy.decoder.init_state(policy.encode(src, src_mask))
        consume = torch.full((rows,), model.bos_id, dtype=torch.long, device=tokens.device)
        completed = []
        for t in range(length - 1):
            _, state = policy.decoder.step(consume, state)  # has read BOS, y_1..y_{t}
            consume = tokens[:, t]
            # each of the n copies reads y_{t+1} and samples the rest of the sequence
            completion = self._continue(
                policy, policy.decoder.reorder(state, fork), consume[fork], t + 1, ended[fork, t], length
            )
            completed.append(torch.cat([tokens[fork, : t + 1], completion], dim=1))
        completed.append(tokens)  # the last position is scored on the sequence itself
        # one discriminator pass over every completion: large batches use the cores better
        prob = torch.cat([
            torch.sigmoid(disc(self.discriminator_input(chunk, model)).float())
            for chunk in torch.cat(completed).split(self.discriminator_chunk)
        ])
        by_position = prob[: rows * n * (length - 1)].view(length - 1, rows, n).mean(2).t()
        rewards = torch.cat([by_position, prob[rows * n * (length - 1) :, None]], dim=1)
        policy.train(policy_was), disc.train(disc_was)
        return rewards * self.token_mask(tokens, model)

    def advantages(self, rewards: Tensor, tokens: Tensor, model) -> Tensor:
        """The rewards (the paper), or minus the batch mean at each position over the rows
        that have a token there."""
        if self.reward_baseline == "none":
            return rewards
        keep = self.token_mask(tokens, model)
        mean = (rewards * keep).sum(0, keepdim=True) / keep.sum(0, keepdim=True).clamp_min(1)
        return (rewards - mean) * keep

    def policy_gradient_loss(self, model, src, src_mask, tokens: Tensor, rewards: Tensor) -> Tensor:
        """REINFORCE with per-token rewards: -sum_t r_t log p(y_t | y_<t), averaged over
        real tokens (the paper sums; Adam makes the scale immaterial)."""
        tgt_in = teacher_forcing_input(tokens, model.bos_id)
        logp = F.log_softmax(model(src, src_mask, tgt_in).float(), dim=-1)
        token_logp = logp.gather(-1, tokens.unsqueeze(-1)).squeeze(-1)
        return reinforce_loss(token_logp, tokens != model.pad_id, rewards.detach())

    @torch.no_grad()
    def update_rollout(self, model) -> None:
        r = self.rollout_update_rate
        for p_roll, p_gen in zip(self.rollout.parameters(), model.parameters()):
            p_roll.mul_(r).add_(p_gen.detach(), alpha=1.0 - r)
