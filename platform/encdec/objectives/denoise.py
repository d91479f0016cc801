"""Denoising pre-training (BART, Lewis et al. 2020): reconstruct text from a corrupted copy.

Each training batch's target text y becomes its own source: src = noise(y), and the model is
trained by MLE to produce y. So any task whose targets are text, and whose encoder reads the
same vocabulary (translation with `task.adapter.tokenizer.joint=true`), pre-trains on its target side
or on any monolingual file (`data=monolingual`); the checkpoint then starts a fine-tuning
run with `init_from=<checkpoint>`.

Noise, in BART's order:
  text infilling  spans with Poisson(poisson_lambda) lengths cover round(mask_ratio * n)
                  tokens; each span becomes ONE mask token (a 0-length span inserts one).
  token deletion  each remaining non-mask token is dropped with probability delete_ratio.
  local shuffle   tokens move at most `shuffle_distance` places (Lample et al. 2018: sort
                  positions i + U[0, k]).
BART's sentence permutation and document rotation need multi-sentence documents; examples
here are single sentences, so they are not implemented.

The noise of a step is drawn from a generator seeded by (seed, global step): a run and its
resumed continuation see the same corrupted batches.
"""

from __future__ import annotations

import torch

from encdec.errors import ConfigError
from encdec.objectives.base import Objective, StepContext
from encdec.objectives.mle import MLE
from encdec.types import Batch


def infill(tokens: list[int], mask_id: int, mask_ratio: float, poisson_lambda: float, gen: torch.Generator) -> list[int]:
    """Text infilling: kept tokens stay in order; every span -> one `mask_id`."""
    n = len(tokens)
    to_mask = int(round(n * mask_ratio))
    if n == 0 or to_mask == 0:
        return list(tokens)
    lengths: list[int] = []
    while sum(lengths) < to_mask:
        lengths.append(int(torch.poisson(torch.tensor([poisson_lambda]), generator=gen).item()))
        if len(lengths) > 10 * n + 100:  # poisson_lambda ~ 0 would only draw empty spans
            break
    lengths[-1] -= sum(lengths) - to_mask  # the last span is cut to cover exactly to_mask
    # a uniformly random interleaving of the kept tokens and the spans
    markers = torch.cat([torch.zeros(n - to_mask, dtype=torch.long), torch.ones(len(lengths), dtype=torch.long)])
    markers = markers[torch.randperm(len(markers), generator=gen)].tolist()
    out, pos, span = [], 0, 0
    for is_span in markers:
        if is_span:
            out.append(mask_id)
            pos += lengths[span]
            span += 1
        else:
            out.append(tokens[pos])
            pos += 1
    return out


def delete(tokens: list[int], mask_id: int, ratio: float, gen: torch.Generator) -> list[int]:
    if ratio <= 0 or not tokens:
        return tokens
    drop = (torch.rand(len(tokens), generator=gen) < ratio).tolist()
    kept = [t for t, d in zip(tokens, drop) if t == mask_id or not d]
    return kept or tokens[:1]


def local_shuffle(tokens: list[int], distance: float, gen: torch.Generator) -> list[int]:
    if distance <= 0 or len(tokens) < 2:
        return tokens
    keys = torch.arange(len(tokens), dtype=torch.float) + torch.rand(len(tokens), generator=gen) * (distance + 1)
    return [tokens[i] for i in keys.argsort(stable=True).tolist()]


class Denoise(Objective):
    def __init__(
        self,
        mask_ratio: float = 0.3,
        poisson_lambda: float = 3.0,
        delete_ratio: float = 0.0,
        shuffle_distance: float = 0.0,
        label_smoothing: float = 0.1,
        seed: int = 0,
        mask_id: int | None = None,
    ):
        if not 0.0 <= mask_ratio <= 1.0 or not 0.0 <= delete_ratio < 1.0:
            raise ConfigError(
                f"objective.mask_ratio must be in [0, 1] and objective.delete_ratio in [0, 1), "
                f"got {mask_ratio} and {delete_ratio}"
            )
        if poisson_lambda <= 0 or shuffle_distance < 0:
            raise ConfigError("objective.poisson_lambda must be > 0 and objective.shuffle_distance >= 0")
        self.mask_ratio, self.poisson_lambda = mask_ratio, poisson_lambda
        self.delete_ratio, self.shuffle_distance = delete_ratio, shuffle_distance
        self.seed, self.mask_id = seed, mask_id
        self.mle = MLE(label_smoothing)
        self.src_pad_id: int | None = None

    def setup(self, model, adapter) -> None:
        vocabularies = adapter.vocabularies()
        source, target = vocabularies.get("source"), vocabularies.get("target")
        if source is None or target is None or source.spec().fingerprint != target.spec().fingerprint:
            raise ConfigError(
                "objective=denoise feeds noised targets to the encoder, so the encoder and decoder "
                "must share one vocabulary (translation: task.adapter.tokenizer.joint=true)"
            )
        if self.mask_id is None:  # part of the vocabulary's spec, saved with the run
            self.mask_id = source.mask_id
        if self.mask_id is None:
            raise ConfigError(
                "objective=denoise needs a mask token: the task's vocabulary has none (a tokenizer "
                "trained without <mask>?); train one with task.adapter.tokenizer.mask_token=true "
                "(and tokenizer.joint=true) or set objective.mask_id"
            )
        self.src_pad_id = source.pad_id

    def noise(self, tokens: list[int], gen: torch.Generator) -> list[int]:
        out = infill(tokens, self.mask_id, self.mask_ratio, self.poisson_lambda, gen)
        out = delete(out, self.mask_id, self.delete_ratio, gen)
        return local_shuffle(out, self.shuffle_distance, gen)

    def noise_batch(self, batch: Batch, eos: int, pad: int, gen: torch.Generator) -> Batch:
        """A batch whose source is the noised target text (tgt_out without EOS / padding)."""
        rows = [[t for t in row if t not in (eos, pad)] for row in batch.tgt_out.tolist()]
        noised = [self.noise(r, gen) or [self.mask_id] for r in rows]
        width = max(len(r) for r in noised)
        src = torch.full((len(rows), width), self.src_pad_id, dtype=torch.long)
        for i, r in enumerate(noised):
            src[i, : len(r)] = torch.tensor(r, dtype=torch.long)
        lengths = torch.tensor([len(r) for r in noised])
        src_mask = torch.arange(width)[None, :] < lengths[:, None]
        device = batch.tgt_out.device
        return Batch(src.to(device), src_mask.to(device), batch.tgt_in, batch.tgt_out, batch.meta)

    def generator(self, step: int) -> torch.Generator:
        return torch.Generator().manual_seed(self.seed * 1_000_003 + step)

    def loss(self, model, batch: Batch, ctx: StepContext | None = None):
        """MLE on the batch with its source replaced by the noised target text; the noise
        depends on the step only (step 0 outside a training loop)."""
        step = ctx.global_step if ctx is not None else 0
        return self.mle.loss(model, self.noise_batch(batch, model.eos_id, model.pad_id, self.generator(step)))
