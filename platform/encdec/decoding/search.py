"""Greedy, beam and sampling search over any decoder with `init_state` / `step` / `reorder`.

All strategies return `Hypotheses`: tokens [B, N, L] (BOS dropped, EOS kept, then padding)
and scores [B, N], best first. Options live in the `decoding` config group and nowhere else.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from encdec.decoding import processors as P
from encdec.types import EncoderOutput

NEG_INF = float("-inf")


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
    The pad token is never generated (a pad inside a hypothesis would read as its end).
    """

    def __init__(
        self,
        max_len: int = 128,
        max_len_a: float = 0.0,
        max_len_b: int = 10,
        min_len: int = 0,
        no_repeat_ngram_size: int = 0,
    ):
        if max_len < 1 or min_len >= max_len:
            raise ValueError(
                f"decoding needs 0 <= min_len < max_len, got min_len={min_len}, max_len={max_len}"
            )
        self.max_len, self.max_len_a, self.max_len_b = max_len, max_len_a, max_len_b
        self.min_len, self.no_repeat_ngram_size = min_len, no_repeat_ngram_size

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
        limits = [
            max(self.min_len + 1, min(self.max_len, int(self.max_len_a * src_len + self.max_len_b)))
            for src_len in enc.memory_mask.sum(1).tolist()
        ]
        return torch.tensor(limits, dtype=torch.long, device=device)

    @torch.no_grad()
    def __call__(self, model, src: Tensor, src_mask: Tensor | None) -> Hypotheses:
        enc = model.encode(src, src_mask)
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
        process = P.chain(self.processors(eos, pad) + self.extra_processors())
        truncate = P.chain(self.truncation_processors())
        tokens = torch.full((rows, 1), bos, dtype=torch.long, device=device)
        scores = torch.zeros(rows, device=device)
        finished = torch.zeros(rows, dtype=torch.bool, device=device)
        state = decoder.init_state(enc)
        for t in range(int(limits.max())):
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
            scores = scores + step_score.masked_fill(finished, 0.0)
            nxt = nxt.masked_fill(finished, pad)
            tokens = torch.cat([tokens, nxt[:, None]], dim=1)
            finished = finished | (nxt == eos)
            if bool(finished.all()):
                break
        batch = rows // n
        tokens, scores = tokens[:, 1:].reshape(batch, n, -1), scores.view(batch, n)
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


class BeamSearch(Search):
    """Batched beam search (fairseq semantics).

    Each step scores all K*V extensions of a sentence's K beams. An EOS extension that ranks
    within the top K is finalised with score sum_logprob / length**length_penalty (length
    counts EOS); the K best non-EOS extensions continue. A sentence stops once K hypotheses
    are finalised; the last step forces EOS. `num_return` best finalised hypotheses come back.
    """

    def __init__(self, beam_size: int = 4, length_penalty: float = 1.0, num_return: int = 1, **kwargs):
        super().__init__(**kwargs)
        if beam_size < 1 or not 1 <= num_return <= beam_size:
            raise ValueError(
                f"decoding needs beam_size >= 1 and 1 <= num_return <= beam_size, "
                f"got beam_size={beam_size}, num_return={num_return}"
            )
        self.beam_size, self.length_penalty, self.num_return = beam_size, length_penalty, num_return

    def search(self, decoder, enc, bos, eos, pad) -> Hypotheses:
        k = self.beam_size
        batch = enc.memory.size(0)
        device = enc.memory.device
        limits = self.length_limits(enc)  # [batch]
        steps = int(limits.max())
        row_limits = limits.repeat_interleave(k)
        process = P.chain(self.processors(eos, pad))

        state = decoder.init_state(enc.repeat_interleave(k))
        tokens = torch.full((batch * k, 1), bos, dtype=torch.long, device=device)
        beam_scores = torch.zeros(batch, k, device=device)
        beam_scores[:, 1:] = NEG_INF  # all beams start identical: expand only the first
        fin_tokens = torch.full((batch, k, steps), pad, dtype=torch.long, device=device)
        fin_scores = torch.full((batch, k), NEG_INF, device=device)
        done = torch.zeros(batch, dtype=torch.bool, device=device)
        offsets = (torch.arange(batch, device=device) * k)[:, None]

        for t in range(steps):
            logits, state = decoder.step(tokens[:, -1], state)
            logprobs = process(F.log_softmax(logits.float(), dim=-1), tokens)
            forced = _must_end(logprobs, row_limits, t)
            if bool(forced.any()):
                logprobs = torch.where(forced[:, None], _force_eos(logprobs, eos), logprobs)
            vocab = logprobs.size(-1)
            cand = (beam_scores.view(-1, 1) + logprobs).view(batch, k, vocab)

            # one top-2k per sentence serves both decisions (at most k of them end in EOS)
            top_scores, top_flat = cand.view(batch, -1).topk(min(2 * k, k * vocab), dim=1)
            # finalise EOS extensions that rank within the sentence's top k
            kth = top_scores[:, k - 1 : k]
            eos_raw = cand[:, :, eos]
            finalise = (eos_raw >= kth) & (eos_raw > NEG_INF) & ~done[:, None]
            eos_norm = (eos_raw / math.pow(t + 1, self.length_penalty)).masked_fill(~finalise, NEG_INF)
            if bool(finalise.any()):
                ended = torch.full((batch * k, steps), pad, dtype=torch.long, device=device)
                ended[:, :t] = tokens[:, 1:]
                ended[:, t] = eos
                pool_scores = torch.cat([fin_scores, eos_norm], dim=1)
                pool_tokens = torch.cat([fin_tokens, ended.view(batch, k, steps)], dim=1)
                fin_scores, keep = pool_scores.topk(k, dim=1)
                fin_tokens = pool_tokens.gather(1, keep[:, :, None].expand(-1, -1, steps))
            # a sentence is done with k hypotheses, or at its own length limit
            done = done | (fin_scores[:, -1] > NEG_INF) | (limits == t + 1)
            if bool(done.all()):
                break

            # continue with the k best non-EOS extensions
            rank = torch.arange(top_flat.size(1), device=device)
            top_tokens = top_flat % vocab
            pick = ((top_tokens == eos).long() * top_flat.size(1) + rank).argsort(dim=1)[:, :k]
            beam_scores, flat = top_scores.gather(1, pick), top_flat.gather(1, pick)
            index = (offsets + torch.div(flat, vocab, rounding_mode="floor")).view(-1)
            tokens = torch.cat([tokens.index_select(0, index), top_tokens.gather(1, pick).view(-1, 1)], dim=1)
            state = decoder.reorder(state, index)

        n = self.num_return
        position = torch.arange(1, steps + 1, device=device)
        length = int(((fin_tokens != pad) * position).max().clamp_min(1))  # last real token
        return Hypotheses(fin_tokens[:, :n, :length], fin_scores[:, :n])
