"""SQuAD exact match and F1, as the official v2.0 evaluation script computes them.

Hand-written (some 30 lines) because the official script is not a package: torchmetrics'
SQuAD metric takes one prediction per question id and no unanswerable questions, and HF
`evaluate` would download its script from the hub at run time. Normalisation is the
official one: lower case, drop punctuation, drop the articles a/an/the, collapse spaces.
A question scores the maximum over its reference answers; an unanswerable question has
the single reference "" and scores 1 only for an empty prediction (SQuAD v2.0 rule).
"""

from __future__ import annotations

import collections
import re
import string

_PUNCT = set(string.punctuation)
_ARTICLES = re.compile(r"\b(a|an|the)\b", re.UNICODE)

PROTOCOL = (
    "SQuAD v2.0 official answer normalisation (lower case, punctuation and articles a/an/the removed, "
    "whitespace collapsed); per question the max over all reference answers; unanswerable = empty "
    "reference, scored 1 only for an empty prediction; mean over questions x 100"
)


def normalize_answer(text: str) -> str:
    text = "".join(ch for ch in text.lower() if ch not in _PUNCT)
    return " ".join(_ARTICLES.sub(" ", text).split())


def exact_match(prediction: str, reference: str) -> float:
    return float(normalize_answer(prediction) == normalize_answer(reference))


def f1_score(prediction: str, reference: str) -> float:
    pred, gold = normalize_answer(prediction).split(), normalize_answer(reference).split()
    if not pred or not gold:  # unanswerable, or an answer made only of articles/punctuation
        return float(pred == gold)
    common = collections.Counter(pred) & collections.Counter(gold)
    same = sum(common.values())
    if same == 0:
        return 0.0
    precision, recall = same / len(pred), same / len(gold)
    return 2 * precision * recall / (precision + recall)


def best_over_references(metric, prediction: str, references: list[str]) -> float:
    return max(metric(prediction, r) for r in (references or [""]))
