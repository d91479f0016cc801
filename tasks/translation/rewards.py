"""Sentence-level translation rewards in [0, 1]: plain functions (sources, outputs,
references) -> list[float] for the policy-gradient objectives (`objective.rewards`).

Both score detokenised text against the raw reference with sacreBLEU, like the corpus
metrics; sentence BLEU uses effective order (sacreBLEU's recommendation for single
sentences: n-gram orders longer than the hypothesis do not zero the score) and exp smoothing.
"""

from __future__ import annotations

from sacrebleu.metrics import BLEU, CHRF

_BLEU = BLEU(effective_order=True)
_CHRF = CHRF()


def sentence_bleu(sources: list, outputs: list[str], references: list[str]) -> list[float]:
    return [_BLEU.sentence_score(o, [r]).score / 100.0 for o, r in zip(outputs, references)]


def sentence_chrf(sources: list, outputs: list[str], references: list[str]) -> list[float]:
    return [_CHRF.sentence_score(o, [r]).score / 100.0 for o, r in zip(outputs, references)]
