"""Text generation on real sentences: BLEU-n against held-out references, self-BLEU,
held-out NLL. (The SeqGAN synthetic oracle is `encdec_tasks.textgen.synthetic`.)

Unconditional generation: every example's source is one dummy token and the decoder is a
language model (use `encoder=none`, a learned constant memory). Prefix-conditioned
generation (`task.adapter.prefix_words=k`): the first k words of a sentence are the source,
the rest the target, so any encoder reads the prefix and the decoder continues it.
The held-out NLL per target token is the core's `val/loss` (teacher-forced); it is the
monitored metric.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Sequence

import torch
from torch import Tensor

from encdec.data.collate import pad_source, teacher_forcing
from encdec.data.vocabulary import Vocabulary
from encdec.errors import ConfigError
from encdec.task import Example, MetricReport, SampleTable, SharedVocabularyTask
from encdec.types import Batch
from encdec_tasks.textgen.metrics import corpus_bleu, self_bleu

log = logging.getLogger(__name__)


class TextGenTask(SharedVocabularyTask):
    data_kind = "sentences"
    monitor = "val/loss"
    monitor_mode = "min"

    def __init__(
        self,
        data: Any,
        tokenizer: dict[str, Any] | None = None,
        max_len: int = 128,
        prefix_words: int = 0,
        bleu_orders: Sequence[int] = (2, 3, 4, 5),
        max_eval_samples: int = 1000,
    ):
        if prefix_words < 0:
            raise ConfigError(f"task.adapter.prefix_words must be >= 0, got {prefix_words}")
        self.data = data
        self.tok_cfg = {"model": "bpe", "vocab_size": 8000, **(tokenizer or {})}
        if max_len < 2:
            raise ConfigError(f"task.adapter.max_len must be >= 2 (EOS included), got {max_len}")
        # max_len is the run's generation length (decoding.max_len, which counts the EOS the
        # model must learn to write): a training target keeps max_len - 1 tokens, plus its EOS
        self.max_target_tokens, self.prefix_words = max_len - 1, prefix_words
        self.bleu_orders = tuple(int(n) for n in bleu_orders)
        self.max_eval_samples = max_eval_samples
        self.tok: Vocabulary | None = None
        self._cache: dict[str, list[Example]] = {}

    # -- vocabulary ---------------------------------------------------------------------------
    def setup(self, run_dir: Path, stage: str) -> None:
        self.load_or_train_tokenizer(run_dir, stage, lambda: self.data.read("train"))

    # -- examples -----------------------------------------------------------------------------
    def _split(self, sentence: str) -> tuple[str, str]:
        words = sentence.split()
        return " ".join(words[: self.prefix_words]), " ".join(words[self.prefix_words :])

    def _encode(self, sentences: list[str]) -> list[Example]:
        pairs = [self._split(s) for s in sentences]
        prefixes = self.tok.encode_batch([p for p, _ in pairs]) if self.prefix_words else [[]] * len(pairs)
        targets = self.tok.encode_batch([t for _, t in pairs])
        return [
            {"src": torch.tensor(p or [self.tok.bos_id]), "tgt": torch.tensor(t[: self.max_target_tokens]), "source": pt[0], "ref": pt[1]}
            for p, t, pt in zip(prefixes, targets, pairs)
        ]

    def examples(self, split: str) -> Sequence[Example]:
        if split not in self._cache:
            sentences = self.data.read(split)
            examples = self._encode(sentences)
            if split == "train":
                kept = [e for e in examples if len(e["tgt"]) > 0]
                if len(kept) < len(examples):
                    log.warning("train: dropped %d sentences with nothing after the %d-word prefix",
                                len(examples) - len(kept), self.prefix_words)
                examples = kept
            self._cache[split] = examples
        return self._cache[split]

    def length(self, example: Example) -> int:
        return max(len(example["src"]), len(example["tgt"]) + 1)

    def collate(self, examples: list[Example]) -> Batch:
        t = self.tok
        src, src_mask = pad_source([e["src"] for e in examples], t.pad_id)
        tgt_in, tgt_out = teacher_forcing([e["tgt"] for e in examples], t.bos_id, t.eos_id, t.pad_id)
        meta = {"source": [e["source"] for e in examples], "ref": [e["ref"] for e in examples]}
        return Batch(src=src, src_mask=src_mask, tgt_in=tgt_in, tgt_out=tgt_out, meta=meta)

    def parse_inputs(self, lines: list[str]) -> list[Example]:
        """predict: each line is a prefix (or empty for an unconditional sample)."""
        if not self.prefix_words and any(line.strip() for line in lines):
            log.warning("task.adapter.prefix_words=0: input lines are ignored (unconditional samples)")
        prefixes = self.tok.encode_batch([line.strip() for line in lines]) if self.prefix_words else [[]] * len(lines)
        return [
            {"src": torch.tensor(p or [self.tok.bos_id]), "tgt": torch.zeros(0, dtype=torch.long), "source": line.strip(), "ref": ""}
            for p, line in zip(prefixes, lines)
        ]

    # -- outputs and metrics ------------------------------------------------------------------
    def decode(self, tokens: Tensor) -> list[str]:
        return self.tok.decode_batch(tokens.tolist())

    def references(self, batch: Batch) -> list[str]:
        return list(batch.meta["ref"])

    def metrics(self, outputs: list[str], references: list[str], split: str) -> MetricReport:
        """BLEU-n of each output against every held-out reference of the split (quality) and
        self-BLEU-n among the outputs (diversity), over at most max_eval_samples outputs."""
        outputs = outputs[: self.max_eval_samples]  # references: the whole split, always
        quality = corpus_bleu(outputs, references, self.bleu_orders)
        diversity = self_bleu(outputs, self.bleu_orders)
        values, protocol = {}, {}
        common = (
            f"{split} split, {len(outputs)} samples, lower-cased whitespace words, mean sentence BLEU "
            "(uniform weights, closest-length brevity penalty, NLTK method1 smoothing eps=0.1)"
        )
        for n in self.bleu_orders:
            values[f"bleu{n}"] = quality[n]
            protocol[f"bleu{n}"] = f"{common}; references: all {len(references)} {split} sentences"
            values[f"self_bleu{n}"] = diversity[n]
            protocol[f"self_bleu{n}"] = f"{common}; references: the other {len(outputs) - 1} samples"
        return MetricReport(values, protocol)

    def samples(self, batch: Batch, outputs: list[Any], limit: int) -> SampleTable:
        rows = [[s, o] for s, o in list(zip(batch.meta["source"], outputs))[:limit]]
        return SampleTable(["prefix", "output"], rows)

    def reward(self, sources: list[Any], outputs: list[str], references: list[str]) -> list[float]:
        """BLEU-4 of each output against the references given (e.g. the batch's)."""
        from encdec_tasks.textgen.metrics import ReferenceSet, sentence_bleu, tokenize

        refs = ReferenceSet([tokenize(r) for r in references], 4)
        return [float(sentence_bleu(tokenize(o), refs, 4)) for o in outputs]
