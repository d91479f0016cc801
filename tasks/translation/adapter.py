"""The translation task adapter: subword tokenisation, batching, sacreBLEU/chrF scoring."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Sequence

import torch
from sacrebleu.metrics import BLEU, CHRF
from torch import Tensor

from encdec.data.collate import pad_source, teacher_forcing
from encdec.data.vocabulary import Vocabulary, load_or_build
from encdec.errors import DataError
from encdec.task import Example, MetricReport, TaskAdapter
from encdec.types import Batch
from encdec_tasks.translation.rewards import sentence_bleu

log = logging.getLogger(__name__)


class TranslationTask(TaskAdapter):
    data_kind = "pairs"
    monitor = "val/sacrebleu"
    monitor_mode = "max"

    def __init__(
        self,
        data: Any,
        tokenizer: dict[str, Any] | None = None,
        max_src_len: int = 128,
        max_tgt_len: int = 128,
    ):
        self.data = data
        self.tok_cfg = {
            **{"model": "bpe", "vocab_size": 8000, "joint": True},
            **{"mask_token": True, "pretrained": None},
            **(tokenizer or {}),
        }
        self.max_src_len, self.max_tgt_len = max_src_len, max_tgt_len
        self.src_tok: Vocabulary | None = None
        self.tgt_tok: Vocabulary | None = None
        self._cache: dict[str, list[Example]] = {}

    # -- vocabularies ---------------------------------------------------------------------
    def setup(self, run_dir: Path, stage: str) -> None:
        cfg = self.tok_cfg
        if cfg["pretrained"]:  # a pretrained encoder's folder: its tokenizer on both sides
            self.src_tok = self.tgt_tok = Vocabulary.pretrained(cfg["pretrained"])
            return
        train_kw = {k: cfg[k] for k in ("vocab_size", "model", "mask_token")}
        side = lambda i: lambda: Vocabulary.train([pair[i] for pair in self.data.read("train")], **train_kw)  # noqa: E731
        if cfg["joint"]:
            both = lambda: Vocabulary.train([s for pair in self.data.read("train") for s in pair], **train_kw)  # noqa: E731
            self.src_tok = self.tgt_tok = load_or_build(run_dir, "tokenizer.json", stage, both)
        else:
            self.src_tok = load_or_build(run_dir, "tokenizer.src.json", stage, side(0))
            self.tgt_tok = load_or_build(run_dir, "tokenizer.tgt.json", stage, side(1))

    def vocabularies(self) -> dict[str, Vocabulary]:
        return {"source": self.src_tok, "target": self.tgt_tok}

    # -- examples and batches -------------------------------------------------------------
    def _encode(self, sources: list[str], targets: list[str] | None) -> list[Example]:
        src_ids = self.src_tok.encode_batch(sources)
        tgt_ids = self.tgt_tok.encode_batch(targets) if targets is not None else [None] * len(sources)
        return [
            {"src": torch.tensor(s[: self.max_src_len] or [self.src_tok.unk_id]), "tgt": None if t is None else torch.tensor(t),
             "source": src, "ref": ref}
            for s, t, src, ref in zip(src_ids, tgt_ids, sources, targets or [None] * len(sources))
        ]

    def examples(self, split: str) -> Sequence[Example]:
        if split not in self._cache:
            pairs = self.data.read(split)
            examples = self._encode([s for s, _ in pairs], [t for _, t in pairs])
            long_src = sum(len(e["src"]) >= self.max_src_len for e in examples)
            if split == "train":
                kept = [e for e in examples if len(e["src"]) < self.max_src_len and len(e["tgt"]) < self.max_tgt_len]
                if len(kept) < len(examples):
                    log.warning(
                        "train: dropped %d of %d pairs longer than task.adapter.max_src_len=%d / task.adapter.max_tgt_len=%d",
                        len(examples) - len(kept), len(examples), self.max_src_len, self.max_tgt_len,
                    )
                examples = kept
            elif long_src:
                log.warning("%s: %d sources truncated to task.adapter.max_src_len=%d tokens", split, long_src, self.max_src_len)
            self._cache[split] = examples
        return self._cache[split]

    def length(self, example: Example) -> int:
        tgt = example["tgt"]
        return max(len(example["src"]), 0 if tgt is None else len(tgt) + 1)

    def collate(self, examples: list[Example]) -> Batch:
        src, src_mask = pad_source([e["src"] for e in examples], self.src_tok.pad_id)
        meta = {"source": [e["source"] for e in examples], "ref": [e["ref"] for e in examples]}
        if examples[0]["tgt"] is None:
            return Batch(src=src, src_mask=src_mask, meta=meta)
        t = self.tgt_tok
        tgt_in, tgt_out = teacher_forcing([e["tgt"] for e in examples], t.bos_id, t.eos_id, t.pad_id)
        return Batch(src=src, src_mask=src_mask, tgt_in=tgt_in, tgt_out=tgt_out, meta=meta)

    def parse_inputs(self, lines: list[str]) -> list[Example]:
        lines = [line.strip() for line in lines]
        if not all(lines):
            raise DataError(f"input line {lines.index('') + 1} is empty")
        examples = self._encode(lines, None)
        for example, ids in zip(examples, self.src_tok.encode_batch(lines)):
            if len(ids) > self.max_src_len:  # predict warns (or refuses) with the line numbers
                example["truncated"] = f"task.adapter.max_src_len={self.max_src_len} pieces"
        return examples

    # -- outputs and metrics --------------------------------------------------------------
    def decode(self, tokens: Tensor) -> list[str]:
        return self.tgt_tok.decode_batch(tokens.tolist())

    def references(self, batch: Batch) -> list[str]:
        return list(batch.meta["ref"])

    def metrics(self, outputs: list[str], references: list[str], split: str) -> MetricReport:
        """Detokenised sacreBLEU and chrF on raw references (primary), plus lower-cased BLEU
        for comparison with tutorial figures; every value carries its sacreBLEU signature."""
        scorers = {"sacrebleu": BLEU(), "chrf": CHRF(), "bleu_lc": BLEU(lowercase=True)}
        values, protocol = {}, {}
        for name, scorer in scorers.items():
            values[name] = scorer.corpus_score(outputs, [references]).score
            protocol[name] = f"{split} split, {len(outputs)} segments, detokenised hypotheses, {scorer.get_signature()}"
        return MetricReport(values, protocol)

    def reward(self, sources: list[str], outputs: list[str], references: list[str]) -> list[float]:
        """Sentence BLEU in [0, 1] (the policy-gradient objectives' default reward); other
        sentence-level rewards to mix in are in encdec_tasks.translation.rewards."""
        return sentence_bleu(sources, outputs, references)
