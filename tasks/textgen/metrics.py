"""Quality and diversity of generated text: BLEU-n against a whole held-out reference set,
and self-BLEU (each sample against all the other samples).

This is the protocol of the language-GAN literature (SeqGAN, LeakGAN, Texygen; Caccia et al.
2020): the sentence-level BLEU-n of every sample, uniform weights over orders 1..n, with
all references of the set as its references (clipped counts = the maximum count over
references, brevity penalty to the closest reference length, ties to the shorter), NLTK's
smoothing "method1" (a zero n-gram match count becomes 0.1) - which is sacreBLEU's
`smooth_method="floor", smooth_value=0.1` - averaged over samples.

Hand-written rather than sacreBLEU / torchmetrics: those take references per hypothesis and
would recount the whole reference set for every sample (quadratic; minutes for 1,000 x
1,000); here each reference set is counted once into max-count tables. The tests check the
scores equal sacreBLEU's sentence BLEU with the same settings.
"""

from __future__ import annotations

import bisect
import math
from collections import Counter
from typing import Sequence

SMOOTH = 0.1


def ngrams(tokens: Sequence[str], n: int) -> Counter:
    return Counter(tuple(tokens[i : i + n]) for i in range(len(tokens) - n + 1))


class ReferenceSet:
    """Max n-gram counts (and the runner-up, for leave-one-out) over a set of token lists."""

    def __init__(self, references: Sequence[Sequence[str]], max_order: int):
        if not references:
            raise ValueError("BLEU needs at least one reference")
        self.max_order = max_order
        self.lengths = sorted(len(r) for r in references)
        # per order: ngram -> [best count, how many references have it, second-best count]
        self.tables: list[dict[tuple, list[int]]] = []
        for n in range(1, max_order + 1):
            table: dict[tuple, list[int]] = {}
            for ref in references:
                for gram, count in ngrams(ref, n).items():
                    entry = table.setdefault(gram, [0, 0, 0])
                    if count > entry[0]:
                        entry[0], entry[1], entry[2] = count, 1, entry[0]
                    elif count == entry[0]:
                        entry[1] += 1
                    elif count > entry[2]:
                        entry[2] = count
            self.tables.append(table)

    def max_count(self, gram: tuple, own: int = 0) -> int:
        """Max count of `gram` over the references, leaving out one reference whose own
        count is `own` when own > 0 (self-BLEU: a sample is not its own reference)."""
        entry = self.tables[len(gram) - 1].get(gram)
        if entry is None:
            return 0
        best, holders, second = entry
        if own and own == best and holders == 1:
            return second
        return best

    def closest_length(self, length: int, leave_out: int | None = None) -> int:
        lengths = self.lengths
        if leave_out is not None:
            lengths = list(lengths)
            lengths.pop(bisect.bisect_left(lengths, leave_out))
        if not lengths:
            return length
        i = bisect.bisect_left(lengths, length)
        candidates = lengths[max(0, i - 1) : i + 1]
        return min(candidates, key=lambda r: (abs(r - length), r))


def sentence_bleu(hyp: Sequence[str], refs: ReferenceSet, order: int, leave_out_self: bool = False) -> float:
    """BLEU-`order` of one tokenised sample in [0, 1] (see the module docstring)."""
    if not hyp:
        return 0.0
    log_precision = 0.0
    for n in range(1, order + 1):
        counts = ngrams(hyp, n)
        total = max(1, len(hyp) - n + 1)
        matched = sum(
            min(c, refs.max_count(g, own=c if leave_out_self else 0)) for g, c in counts.items()
        )
        log_precision += math.log((matched if matched > 0 else SMOOTH) / total)
    ref_len = refs.closest_length(len(hyp), leave_out=len(hyp) if leave_out_self else None)
    brevity = 1.0 if len(hyp) > ref_len else math.exp(1.0 - ref_len / len(hyp))
    return brevity * math.exp(log_precision / order)


def tokenize(text: str) -> list[str]:
    return text.lower().split()


def corpus_bleu(hypotheses: Sequence[str], references: Sequence[str], orders: Sequence[int]) -> dict[int, float]:
    """Mean sentence BLEU-n of each hypothesis against the whole reference set."""
    refs = ReferenceSet([tokenize(r) for r in references], max(orders))
    hyps = [tokenize(h) for h in hypotheses]
    return {n: sum(sentence_bleu(h, refs, n) for h in hyps) / max(1, len(hyps)) for n in orders}


def self_bleu(hypotheses: Sequence[str], orders: Sequence[int]) -> dict[int, float]:
    """Mean BLEU-n of each hypothesis against all the other hypotheses (higher = less diverse)."""
    hyps = [tokenize(h) for h in hypotheses]
    if len(hyps) < 2:
        return {n: 0.0 for n in orders}
    refs = ReferenceSet(hyps, max(orders))
    return {n: sum(sentence_bleu(h, refs, n, leave_out_self=True) for h in hyps) / len(hyps) for n in orders}
