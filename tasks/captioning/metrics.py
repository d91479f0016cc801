"""Caption metrics: the COCO caption toolkit's BLEU-1..4, CIDEr-D and ROUGE-L (pycocoevalcap's
pure-Python scorers), METEOR when asked and Java exists, and a sentence-level CIDEr-D reward.

Captions are compared as the toolkit's PTB tokenizer leaves them: lower-cased words with
punctuation tokens dropped. The Java tokenizer itself is not run (it needs a JVM for every
evaluation); `coco_tokens` splits punctuation off words and drops the same punctuation list.
"""

from __future__ import annotations

import math
import re
import shutil
from collections import defaultdict
from typing import Sequence

from encdec.errors import ConfigError, UserError

try:
    from pycocoevalcap.bleu.bleu import Bleu
    from pycocoevalcap.cider.cider import Cider
    from pycocoevalcap.cider.cider_scorer import precook
    from pycocoevalcap.rouge.rouge import Rouge
    from pycocoevalcap.tokenizer.ptbtokenizer import PUNCTUATIONS
except ImportError as exc:  # pragma: no cover - the captioning extra is part of `dev`
    raise UserError("captioning metrics need pycocoevalcap: pip install 'encdec[captioning]'") from exc

_PUNCT = set(PUNCTUATIONS)
_SPLIT = re.compile(r"\.\.\.|--|[.,!?;:()\[\]{}\"`]|'(?=\s|$)|\w+(?:'\w+)*|[^\w\s]")

PROTOCOL = (
    "COCO caption toolkit (pycocoevalcap {version}) scorers, x100; lower-cased, punctuation removed "
    "(PTB punctuation list, Python split instead of the Java PTB tokenizer); {n} images, {refs} refs/image on average; "
    "{split} split"
)


def coco_tokens(text: str) -> str:
    """Lower-cased words of `text` with the PTB punctuation tokens removed, space-joined."""
    return " ".join(w for w in _SPLIT.findall(text.lower()) if w not in _PUNCT)


def _prepare(outputs: Sequence, references: Sequence[Sequence[str]]) -> tuple[dict, dict]:
    if len(outputs) != len(references):
        raise ValueError(f"{len(outputs)} outputs for {len(references)} reference sets")
    # An output may arrive as a reference set (the adapter contract test scores references
    # against themselves): its first caption is the hypothesis.
    hyp = {i: [coco_tokens(o if isinstance(o, str) else o[0])] for i, o in enumerate(outputs)}
    refs = {i: [coco_tokens(r) for r in rs] for i, rs in enumerate(references)}
    return hyp, refs


def caption_scores(outputs: Sequence, references: Sequence[Sequence[str]], meteor: bool = False) -> dict[str, float]:
    """Corpus scores x100: bleu1..bleu4, cider_d (document frequencies from these
    references, as in the COCO toolkit), rouge_l, and meteor when asked."""
    hyp, refs = _prepare(outputs, references)
    if not hyp:
        return {}
    bleu, _ = Bleu(4).compute_score(refs, hyp, verbose=0)
    values = {f"bleu{n + 1}": 100.0 * b for n, b in enumerate(bleu)}
    # CIDEr-D's idf is log(#images / df): with one image every n-gram has idf 0
    values["cider_d"] = 100.0 * float(Cider().compute_score(refs, hyp)[0]) if len(hyp) > 1 else 0.0
    values["rouge_l"] = 100.0 * float(Rouge().compute_score(refs, hyp)[0])
    if meteor:
        values["meteor"] = 100.0 * float(_meteor(refs, hyp))
    return values


def _meteor(refs: dict, hyp: dict) -> float:
    if shutil.which("java") is None:
        raise ConfigError("task.adapter.meteor=true needs Java on PATH (METEOR 1.5 is a Java program)")
    from pycocoevalcap.meteor.meteor import Meteor

    scorer = Meteor()  # starts a JVM; it is ended when the scorer is garbage-collected
    return scorer.compute_score(refs, hyp)[0]


def protocol(split: str, references: Sequence[Sequence[str]]) -> str:
    from importlib.metadata import version

    n = len(references)
    return PROTOCOL.format(
        version=version("pycocoevalcap"), n=n, refs=f"{sum(map(len, references)) / max(1, n):.1f}", split=split
    )


class SentenceCiderD:
    """Sentence-level CIDEr-D with document frequencies fixed from a reference corpus (the
    training captions), as self-critical sequence training uses it as a reward.

    pycocoevalcap's CiderScorer always recomputes document frequencies from the sentences it
    scores (a batch, for a reward); this keeps them fixed and reuses its n-gram counting. The
    scoring follows its compute_cider line by line (clipped tf-idf cosine per n, Gaussian
    length penalty sigma=6, mean over n and references, x10); tests check it matches the
    toolkit when both use the same corpus.
    """

    def __init__(self, corpus: Sequence[Sequence[str]], n: int = 4, sigma: float = 6.0):
        self.n, self.sigma = n, sigma
        self.df: dict[tuple, float] = defaultdict(float)
        for refs in corpus:
            for ngram in {g for r in refs for g in precook(coco_tokens(r), n)}:
                self.df[ngram] += 1
        self.ref_len = math.log(float(max(1, len(corpus))))

    def _vec(self, counts: dict) -> tuple[list[dict], list[float], int]:
        vec = [defaultdict(float) for _ in range(self.n)]
        norm = [0.0] * self.n
        length = 0
        for ngram, tf in counts.items():
            k = len(ngram) - 1
            vec[k][ngram] = float(tf) * (self.ref_len - math.log(max(1.0, self.df.get(ngram, 0.0))))
            norm[k] += vec[k][ngram] ** 2
            if k == 1:  # the toolkit counts the length in bigrams; kept for identical scores
                length += tf
        return vec, [math.sqrt(x) for x in norm], length

    def score(self, hypothesis: str, references: Sequence[str]) -> float:
        vh, nh, lh = self._vec(precook(coco_tokens(hypothesis), self.n))
        total = 0.0
        for ref in references:
            vr, nr, lr = self._vec(precook(coco_tokens(ref), self.n))
            penalty = math.exp(-((lh - lr) ** 2) / (2 * self.sigma**2))
            for k in range(self.n):
                val = sum(min(w, vr[k][g]) * vr[k][g] for g, w in vh[k].items())
                if nh[k] != 0 and nr[k] != 0:
                    val /= nh[k] * nr[k]
                total += val * penalty
        return 10.0 * total / self.n / max(1, len(references))
