"""The translation task adapter: subword tokenisation, batching, sacreBLEU/chrF scoring."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Sequence

import torch
from sacrebleu.metrics import BLEU, CHRF
from torch import Tensor

from encdec.data.collate import pad_source, teacher_forcing
from encdec.data.pretrained_tokenizer import PretrainedTokenizer
from encdec.data.tokenizer import SubwordTokenizer
from encdec.errors import ConfigError, DataError
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
            **{"from_run": None, "mask_token": True, "pretrained": None},
            **(tokenizer or {}),
        }
        self.max_src_len, self.max_tgt_len = max_src_len, max_tgt_len
        self.src_tok: SubwordTokenizer | None = None
        self.tgt_tok: SubwordTokenizer | None = None
        self._cache: dict[str, list[Example]] = {}

    # -- vocabularies ---------------------------------------------------------------------
    def _paths(self, run_dir: Path) -> tuple[Path, Path]:
        if self.tok_cfg["joint"]:
            return run_dir / "tokenizer.json", run_dir / "tokenizer.json"
        return run_dir / "tokenizer.src.json", run_dir / "tokenizer.tgt.json"

    def setup(self, run_dir: Path, stage: str) -> None:
        if self.tok_cfg["pretrained"]:  # a pretrained encoder's folder: its tokenizer on both sides
            self.src_tok = self.tgt_tok = PretrainedTokenizer.from_model_dir(self.tok_cfg["pretrained"])
            return
        src_path, tgt_path = self._paths(Path(run_dir))
        if src_path.exists() and tgt_path.exists():
            self.src_tok, self.tgt_tok = SubwordTokenizer.load(src_path), SubwordTokenizer.load(tgt_path)
            return
        if stage != "fit":
            raise ConfigError(f"{src_path} not found: is {run_dir} a run directory of encdec-train?")
        if self.tok_cfg["from_run"]:
            self._copy_from_run(Path(self.tok_cfg["from_run"]), src_path, tgt_path)
            return
        train = self.data.read("train")
        train_kw = {k: self.tok_cfg[k] for k in ("vocab_size", "model", "mask_token")}
        if self.tok_cfg["joint"]:
            self.src_tok = self.tgt_tok = SubwordTokenizer.train(
                [s for pair in train for s in pair], **train_kw
            )
        else:
            self.src_tok = SubwordTokenizer.train([s for s, _ in train], **train_kw)
            self.tgt_tok = SubwordTokenizer.train([t for _, t in train], **train_kw)
        self.src_tok.save(src_path)
        self.tgt_tok.save(tgt_path)
        log.info("trained %s tokenizer(s): %d / %d pieces", self.tok_cfg["model"], self.src_tok.vocab_size, self.tgt_tok.vocab_size)

    def _copy_from_run(self, other: Path, src_path: Path, tgt_path: Path) -> None:
        """The vocabulary of another run (e.g. the pre-training run an `init_from` checkpoint
        comes from), so token ids mean the same in both."""
        other_src, other_tgt = self._paths(other)
        for path in (other_src, other_tgt):
            if not path.exists():
                raise ConfigError(
                    f"task.adapter.tokenizer.from_run={other}: {path.name} not found there "
                    f"(is it a run directory of encdec-train with tokenizer.joint={self.tok_cfg['joint']}?)"
                )
        self.src_tok, self.tgt_tok = SubwordTokenizer.load(other_src), SubwordTokenizer.load(other_tgt)
        self.src_tok.save(src_path)
        self.tgt_tok.save(tgt_path)
        log.info("tokenizer(s) copied from %s", other)

    def special_ids(self) -> dict[str, int]:
        t = self.tgt_tok
        return {"bos_id": t.bos_id, "eos_id": t.eos_id, "pad_id": t.pad_id}

    def encoder_kwargs(self) -> dict[str, Any]:
        # a <mask> id only where the source is written in the target's vocabulary (denoising)
        mask = {"mask_id": self.src_tok.mask_id} if self.tok_cfg["joint"] and self.src_tok.mask_id is not None else {}
        return {"vocab_size": self.src_tok.vocab_size, "pad_id": self.src_tok.pad_id, **mask}

    def decoder_kwargs(self) -> dict[str, Any]:
        return {"vocab_size": self.tgt_tok.vocab_size, "pad_id": self.tgt_tok.pad_id}

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
