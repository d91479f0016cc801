"""Greedy, beam and sampling search over any decoder with `init_state` / `step` / `reorder`.

All strategies return `Hypotheses`: tokens [B, N, L] (BOS dropped, EOS kept, then padding)
and scores [B, N], best first. Options live in the `decoding` config group and nowhere else.

Finished sources leave the batch (as in fairseq): once every row of a source has ended (or
its beam search has stopped), the decoder's `reorder(state, index)` selects only the rows
still decoding, so no step is spent on finished rows. Outputs do not change: a source
decodes the same alone or in any batch.

A search never uses a state again after reordering it, so it calls the decoder's optional
`reorder_consumed(state, index)` when there is one: the decoder may then reuse the old
state's buffers (the Transformer's key/value caches) instead of allocating new ones.
"""

from __future__ import annotations

import contextlib
import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from encdec.decoding import processors as P
from encdec.errors import ConfigError
from encdec.types import EncoderOutput

NEG_INF = float("-inf")
DTYPES = {"fp32": None, "bf16": torch.bfloat16}


@dataclass
class Hypotheses:
    tokens: Tensor  # [B, N, L]
    scores: Tensor  # [B, N]

    def best(self) -> Tensor:
        return self.tokens[:, 0]


class Search:
    """Options shared by every strategy.

    max_len: hard cap on generated tokens (EOS included); the last step is forced to EOS.
    max_len_a / max_len_b: when max_len_a > 0 the cap is also min(., a * source_len + b),
      fairseq-style, so short sources do not decode for max_len steps. The cap is per source
      (its own length, not the batch's longest), so a source decodes the same in any batch.
    min_len: EOS is banned until this many tokens are out.
    no_repeat_ngram_size: no n-gram appears twice in one hypothesis (0 = off).
    dtype: fp32 | bf16 (the decoder's steps run under bf16 autocast; scores are still
      accumulated in fp32).
    The pad token is never generated (a pad inside a hypothesis would read as its end).
    """

    def __init__(
        self,
        max_len: int = 128,
        max_len_a: float = 0.0,
        max_len_b: int = 10,
        min_len: int = 0,
        no_repeat_ngram_size: int = 0,
        dtype: str = "fp32",
    ):
        if max_len < 1 or min_len >= max_len:
            raise ValueError(
                f"decoding needs 0 <= min_len < max_len, got min_len={min_len}, max_len={max_len}"
            )
        if dtype not in DTYPES:
            raise ConfigError(f"decoding.dtype must be one of {', '.join(DTYPES)}, got {dtype!r}")
        self.max_len, self.max_len_a, self.max_len_b = max_len, max_len_a, max_len_b
        self.min_len, self.no_repeat_ngram_size = min_len, no_repeat_ngram_size
        self.dtype = dtype

    def processors(self, eos: int, pad: int) -> list:
        procs = [P.ban_tokens([pad])] if pad != eos else []
        if self.min_len > 0:
            procs.append(P.ban_eos_before(self.min_len, eos))
        if self.no_repeat_ngram_size > 0:
            procs.append(P.no_repeat_ngram(self.no_repeat_ngram_size))
        return procs

    def length_limits(self, enc: EncoderOutput) -> Tensor:
        """[B] long: how many tokens (EOS included) each row may generate."""
        rows, device = enc.memory.size(0), enc.memory.device
        if self.max_len_a <= 0:
            return torch.full((rows,), self.max_len, dtype=torch.long, device=device)
        # float64 and truncation toward zero: the same numbers as Python's int(a * len + b)
        src_len = enc.memory_mask.sum(1).to(torch.float64)
        limits = (self.max_len_a * src_len + self.max_len_b).long()
        return limits.clamp(max=self.max_len).clamp(min=self.min_len + 1)

    def autocast(self, device: torch.device):
        if DTYPES[self.dtype] is None:
            return contextlib.nullcontext()
        return torch.autocast(device_type=device.type, dtype=DTYPES[self.dtype])

    @torch.no_grad()
    def __call__(self, model, src: Tensor, src_mask: Tensor | None) -> Hypotheses:
        enc = model.encode(src, src_mask)
        with self.autocast(enc.memory.device):
            return self.search(model.decoder, enc, model.bos_id, model.eos_id, model.pad_id)

    def search(self, decoder, enc: EncoderOutput, bos: int, eos: int, pad: int) -> Hypotheses:
        raise NotImplementedError


def _eos_score(logprobs: Tensor, eos: int) -> Tensor:
    """EOS's log-probability, kept finite so a forced EOS still ends a live hypothesis."""
    return logprobs[:, eos].clamp_min(torch.finfo(logprobs.dtype).min)


def _force_eos(logprobs: Tensor, eos: int) -> Tensor:
    forced = torch.full_like(logprobs, NEG_INF)
    forced[:, eos] = _eos_score(logprobs, eos)
    return forced


def _reorder(decoder):
    """The decoder's reorder for a state that is never used again."""
    return getattr(decoder, "reorder_consumed", None) or decoder.reorder


def _must_end(logprobs: Tensor, limits: Tensor, t: int) -> Tensor:
    """[N] bool: rows at their last allowed step, or with no token left to choose."""
    return (limits == t + 1) | (logprobs.amax(dim=-1) == NEG_INF)


class _TokenByToken(Search):
    """One hypothesis per row, each step choosing one token (greedy or sampled)."""

    num_return: int = 1

    def extra_processors(self) -> list:
        """Reshape the distribution (temperature): scores are read after these."""
        return []

    def truncation_processors(self) -> list:
        """Narrow the choice (top-k, top-p) without changing the kept tokens' scores."""
        return []

    def pick(self, logprobs: Tensor) -> Tensor:
        raise NotImplementedError

    def search(self, decoder, enc, bos, eos, pad) -> Hypotheses:
        n = self.num_return
        if n > 1:
            enc = enc.repeat_interleave(n)
        rows, device = enc.memory.size(0), enc.memory.device
        limits = self.length_limits(enc)
        steps = int(limits.max())
        process = P.chain(self.processors(eos, pad) + self.extra_processors())
        truncate = P.chain(self.truncation_processors())
        out = torch.full((rows, steps), pad, dtype=torch.long, device=device)
        scores = torch.zeros(rows, device=device)
        # the rows still decoding: their ids in `out`, BOS + tokens so far, and which of them
        # have ended while another row of their source (num_return > 1) has not
        live = torch.arange(rows, device=device)
        history = torch.full((rows, steps + 1), bos, dtype=torch.long, device=device)
        finished = torch.zeros(rows, dtype=torch.bool, device=device)
        state = decoder.init_state(enc)
        reorder = _reorder(decoder)
        length = steps
        for t in range(steps):
            tokens = history[:, : t + 1]
            logits, state = decoder.step(tokens[:, -1], state)
            logprobs = process(F.log_softmax(logits.float(), dim=-1), tokens)
            choices = truncate(logprobs, tokens)
            # rows at their length limit (or with nothing left to choose) take EOS, whatever
            # the truncation kept; finished and forced rows get a dummy, always valid, choice
            forced = _must_end(choices, limits, t) & ~finished
            nxt = self.pick(choices.masked_fill((finished | forced)[:, None], 0.0))
            nxt = nxt.masked_fill(forced, eos)
            step_score = logprobs.gather(1, nxt[:, None]).squeeze(1)
            step_score = torch.where(forced, _eos_score(logprobs, eos), step_score)
            nxt = nxt.masked_fill(finished, pad)
            scores.index_add_(0, live, step_score.masked_fill(finished, 0.0))
            out[live, t] = nxt
            history[:, t + 1] = nxt
            finished = finished | (nxt == eos)
            ended = finished.view(-1, n).all(dim=1)  # per source
            if bool(ended.all()):
                length = t + 1
                break
            if bool(ended.any()):
                keep = (~ended).repeat_interleave(n).nonzero().squeeze(1)
                live, history, finished, limits = live[keep], history[keep], finished[keep], limits[keep]
                state = reorder(state, keep)
        batch = rows // n
        tokens, scores = out[:, :length].reshape(batch, n, -1), scores.view(batch, n)
        scores, order = scores.sort(dim=1, descending=True, stable=True)  # best first
        tokens = tokens.gather(1, order[:, :, None].expand_as(tokens))
        return Hypotheses(tokens, scores)


class Greedy(_TokenByToken):
    def pick(self, logprobs: Tensor) -> Tensor:
        return logprobs.argmax(dim=-1)


class Sampling(_TokenByToken):
    """Ancestral sampling with temperature, top-k and top-p; `num_return` samples per source.

    Scores are the log-probabilities of the samples under the temperature-scaled
    distribution; top-k / top-p only restrict which tokens may be drawn (no renormalisation,
    as in fairseq). A forced EOS at the length limit is scored even when truncation excluded it.
    """

    def __init__(
        self,
        temperature: float = 1.0,
        top_k: int = 0,
        top_p: float = 1.0,
        num_return: int = 1,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.temperature, self.top_k, self.top_p = temperature, top_k, top_p
        self.num_return = num_return
        P.temperature(temperature)  # validates now, not mid-decoding

    def extra_processors(self) -> list:
        return [P.temperature(self.temperature)] if self.temperature != 1.0 else []

    def truncation_processors(self) -> list:
        procs = []
        if self.top_k > 0:
            procs.append(P.top_k(self.top_k))
        if self.top_p < 1.0:
            procs.append(P.top_p(self.top_p))
        return procs

    def pick(self, logprobs: Tensor) -> Tensor:
        return torch.multinomial(logprobs.exp(), 1).squeeze(1)


STOPPING = ("exact", "heuristic", "early")


class BeamSearch(Search):
    """Batched beam search.

    Each step scores all K*V extensions of a sentence's K beams with one top-2K. An EOS
    extension that ranks within the top K is offered to the sentence's pool of K finalised
    hypotheses with score sum_logprob / length**length_penalty (length counts EOS); the K
    best non-EOS extensions continue. The last step forces EOS. `num_return` best finalised
    hypotheses come back.

    When a sentence stops (`stopping`):
      exact (default): once its pool is full and no live beam can still beat the pool's worst
        hypothesis, by a bound that holds for any continuation (see `best_attainable`).
      heuristic: Hugging Face's default (`early_stopping=False`): as exact, but a live beam is
        judged by its score at its current length, which may stop before a longer, better
        hypothesis ends when length_penalty > 0.
      early: fairseq's rule (Hugging Face's `early_stopping=True`): as soon as K hypotheses are
        finalised, even when a live beam would have ended better.
    """

    def __init__(
        self,
        beam_size: int = 4,
        length_penalty: float = 1.0,
        num_return: int = 1,
        stopping: str = "exact",
        **kwargs,
    ):
        super().__init__(**kwargs)
        if beam_size < 1 or not 1 <= num_return <= beam_size:
            raise ValueError(
                f"decoding needs beam_size >= 1 and 1 <= num_return <= beam_size, "
                f"got beam_size={beam_size}, num_return={num_return}"
            )
        if stopping not in STOPPING:
            raise ConfigError(f"decoding.stopping must be one of {', '.join(STOPPING)}, got {stopping!r}")
        self.beam_size, self.length_penalty, self.num_return = beam_size, length_penalty, num_return
        self.stopping = stopping

    def best_attainable(self, live: Tensor, t: int, limits: Tensor) -> Tensor:
        """[n] the best final score the best live beam of each sentence could still reach.

        After step t a live beam has t + 1 tokens and a score S = its sum of log-probs <= 0.
        exact: every further token adds a log-prob <= 0, so its final sum S' <= S, and its final
          length L (EOS counted) lies in [t + 2, limit]. Hence S' / L**lp <= S / L**lp, and
          S / L**lp, with S <= 0, is monotone in L: for lp > 0 it is largest at L = limit (a
          negative sum divided by the longest length is closest to zero), for lp < 0 at
          L = t + 2, for lp = 0 it is S at any L. The larger of the two ends bounds every case.
        heuristic: S / (t + 1)**lp, Hugging Face's estimate.
        """
        lp = self.length_penalty
        if self.stopping == "heuristic":
            return live / math.pow(t + 1, lp)
        shortest = live / math.pow(t + 2, lp)
        longest = live / limits.to(live.dtype).pow(lp)
        return torch.maximum(shortest, longest)

    def search(self, decoder, enc, bos, eos, pad) -> Hypotheses:
        k = self.beam_size
        batch = enc.memory.size(0)
        device = enc.memory.device
        limits = self.length_limits(enc)  # [batch]
        steps = int(limits.max())
        process = P.chain(self.processors(eos, pad))

        state = decoder.init_state(enc.repeat_interleave(k))
        reorder = _reorder(decoder)
        # finalised hypotheses, per sentence of the whole batch
        fin_tokens = torch.full((batch, k, steps), pad, dtype=torch.long, device=device)
        fin_scores = torch.full((batch, k), NEG_INF, device=device)
        # the sentences still searching (ids into the batch), their beams' BOS + tokens so far,
        # scores and length limits
        active = torch.arange(batch, device=device)
        history = torch.full((batch * k, steps + 1), bos, dtype=torch.long, device=device)
        beam_scores = torch.zeros(batch, k, device=device)
        beam_scores[:, 1:] = NEG_INF  # all beams start identical: expand only the first

        for t in range(steps):
            n = active.numel()
            tokens = history[:, : t + 1]
            logits, state = decoder.step(tokens[:, -1], state)
            logprobs = process(F.log_softmax(logits.float(), dim=-1), tokens)
            forced = _must_end(logprobs, limits.repeat_interleave(k), t)
            if bool(forced.any()):
                logprobs = torch.where(forced[:, None], _force_eos(logprobs, eos), logprobs)
            vocab = logprobs.size(-1)
            cand = (beam_scores.view(-1, 1) + logprobs).view(n, k, vocab)

            # one top-2k per sentence serves both decisions (at most k of them end in EOS)
            top_scores, top_flat = cand.view(n, -1).topk(min(2 * k, k * vocab), dim=1)
            # offer EOS extensions that rank within the sentence's top k to its pool
            kth = top_scores[:, k - 1 : k]
            eos_raw = cand[:, :, eos]
            finalise = (eos_raw >= kth) & (eos_raw > NEG_INF)
            if bool(finalise.any()):
                eos_norm = (eos_raw / math.pow(t + 1, self.length_penalty)).masked_fill(~finalise, NEG_INF)
                ended = torch.full((n * k, steps), pad, dtype=torch.long, device=device)
                ended[:, :t] = tokens[:, 1:]
                ended[:, t] = eos
                pool_scores = torch.cat([fin_scores[active], eos_norm], dim=1)
                pool_tokens = torch.cat([fin_tokens[active], ended.view(n, k, steps)], dim=1)
                kept_scores, keep = pool_scores.topk(k, dim=1)
                fin_scores[active] = kept_scores
                fin_tokens[active] = pool_tokens.gather(1, keep[:, :, None].expand(-1, -1, steps))

            # continue with the k best non-EOS extensions (best first)
            rank = torch.arange(top_flat.size(1), device=device)
            top_tokens = top_flat % vocab
            pick = ((top_tokens == eos).long() * top_flat.size(1) + rank).argsort(dim=1)[:, :k]
            beam_scores, flat = top_scores.gather(1, pick), top_flat.gather(1, pick)
            origin = torch.arange(n, device=device)[:, None] * k + torch.div(flat, vocab, rounding_mode="floor")
            next_tokens = top_tokens.gather(1, pick)

            done = self.stopped(fin_scores[active, -1], beam_scores[:, 0], t, limits)
            if bool(done.all()):
                break
            if bool(done.any()):  # finished sentences leave the batch
                keep = (~done).nonzero().squeeze(1)
                active, limits, beam_scores = active[keep], limits[keep], beam_scores[keep]
                origin, next_tokens = origin[keep], next_tokens[keep]
            index = origin.view(-1)
            history = history.index_select(0, index)
            history[:, t + 1] = next_tokens.view(-1)
            state = reorder(state, index)

        n = self.num_return
        position = torch.arange(1, steps + 1, device=device)
        length = int(((fin_tokens != pad) * position).max().clamp_min(1))  # last real token
        return Hypotheses(fin_tokens[:, :n, :length], fin_scores[:, :n])

    def stopped(self, worst: Tensor, best_live: Tensor, t: int, limits: Tensor) -> Tensor:
        """[n] bool: sentences whose search is over after step t, given the worst score in each
        pool (-inf while the pool is not full) and each best live beam's score."""
        at_limit = (limits == t + 1) | (best_live == NEG_INF)  # nothing can end later
        full = worst > NEG_INF
        if self.stopping == "early":
            return at_limit | full
        return at_limit | (full & (self.best_attainable(best_live, t, limits) <= worst))
