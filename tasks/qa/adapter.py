"""The QA task adapter: question + context in, answer text out, SQuAD EM/F1 scored.

Source = question, separator, context (with [CLS] ... [SEP] around it for a pretrained
BERT-style tokenizer); target = the first reference answer ("" for an unanswerable
question: the model learns to emit EOS at once). Source and target share ONE vocabulary so
the decoder can copy source tokens (decoder.copy=true): a subword vocabulary trained on the
train split, or the pretrained encoder's own tokenizer when
task.adapter.tokenizer.pretrained points at its model folder (conf/task/qa.yaml interpolates
encoder.model_dir, so the folder is named once).
"""

from __future__ import annotations

import logging
import string
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import torch
from torch import Tensor

from encdec.data.collate import pad_source, teacher_forcing
from encdec.data.vocabulary import Vocabulary
from encdec.errors import DataError
from encdec.task import Example, MetricReport, SampleTable, SharedVocabularyTask
from encdec.types import Batch
from encdec_tasks.qa.metrics import PROTOCOL, best_over_references, exact_match, f1_score
from encdec_tasks.qa.squad import QAItem

log = logging.getLogger(__name__)

INPUT_SEPARATOR = "|||"  # predict reads "question ||| context" lines
# every printable ASCII character enters the subword alphabet, so a name spelled with a
# letter the train split never shows is still copyable pieces, not <unk>
ALPHABET_LINE = " ".join(string.ascii_letters + string.digits + string.punctuation)


@dataclass(frozen=True)
class QAReference:
    """What a question is scored against: all its reference answers (empty: unanswerable),
    and its question type / unseen-name flag for the breakdown."""

    answers: tuple[str, ...]
    qtype: str | None = None
    unseen: bool = False

    def __str__(self) -> str:
        return " | ".join(self.answers) if self.answers else "<no answer>"


def _text(output: Any) -> str:
    """A prediction as text; a QAReference stands for its first answer (perfect-score checks)."""
    if isinstance(output, QAReference):
        return output.answers[0] if output.answers else ""
    return output


class QATask(SharedVocabularyTask):
    data_kind = "qa_items"
    monitor = "val/f1"
    monitor_mode = "max"

    def __init__(
        self,
        data: Any,
        tokenizer: dict[str, Any] | None = None,
        max_src_len: int = 256,
        max_tgt_len: int = 32,
        drop_cut_answers: bool = True,
    ):
        self.data = data
        self.tok_cfg = {"model": "bpe", "vocab_size": 4000, "pretrained": None, **(tokenizer or {})}
        self.max_src_len, self.max_tgt_len = max_src_len, max_tgt_len
        self.drop_cut_answers = drop_cut_answers
        self.tok: Vocabulary | None = None
        self._cache: dict[str, list[Example]] = {}

    # -- vocabulary -----------------------------------------------------------------------
    def setup(self, run_dir: Path, stage: str) -> None:
        self.load_or_train_tokenizer(run_dir, stage, self._tokenizer_texts)

    def _tokenizer_texts(self) -> list[str]:
        train = self.data.read("train")
        contexts = list(dict.fromkeys(item.context for item in train))
        texts = contexts + [item.question for item in train] + [a for item in train for a in item.answers]
        return texts + [ALPHABET_LINE]  # every character a piece: unseen names stay spellable

    # -- examples -------------------------------------------------------------------------
    def _source(self, question: str, context: str) -> tuple[list[int], int, bool]:
        """(source ids, kept context characters, whether the context was truncated)."""
        tok = self.tok
        q = tok.encode(question)
        enc = tok.tok.encode(context, add_special_tokens=False)
        bert = tok.kind == "pretrained"
        head, tail = ([tok.bos_id] if bert else []), ([tok.eos_id] if bert else [])
        q = q[: max(1, self.max_src_len // 2)]  # a runaway question never pushes out all context
        budget = max(0, self.max_src_len - len(head) - len(q) - 1 - len(tail))
        c = enc.ids[:budget]
        kept_chars = enc.offsets[len(c) - 1][1] if c else 0
        return head + q + [tok.eos_id] + c + tail, kept_chars, len(c) < len(enc.ids)

    def _encode(self, items: list[QAItem], split: str, with_targets: bool = True) -> list[Example]:
        examples, cut, lost, long_answers = [], 0, 0, 0
        for item in items:
            src, kept_chars, truncated = self._source(item.question, item.context)
            cut += truncated
            spans = [(s, a) for s, a in zip(item.answer_starts, item.answers) if s >= 0]
            answer_cut = truncated and bool(spans) and all(s + len(a) > kept_chars for s, a in spans)
            lost += answer_cut
            tgt = None
            if with_targets:
                tgt = self.tok.encode(item.answers[0]) if item.answers else []
                if len(tgt) >= self.max_tgt_len:
                    long_answers += 1
                    if split == "train":
                        continue
                    tgt = tgt[: self.max_tgt_len - 1]
                if split == "train" and answer_cut and self.drop_cut_answers:
                    continue
            examples.append({
                "src": torch.tensor(src),
                "tgt": None if tgt is None else torch.tensor(tgt, dtype=torch.long),
                "source": f"{item.question} {INPUT_SEPARATOR} {item.context}",
                "ref": QAReference(item.answers, item.qtype, item.unseen),
            })
        if cut:
            log.warning(
                "%s: %d of %d contexts truncated to task.adapter.max_src_len=%d pieces; %d lost every answer span%s",
                split, cut, len(items), self.max_src_len, lost,
                " (dropped from training: task.adapter.drop_cut_answers=true)" if split == "train" and self.drop_cut_answers else "",
            )
        if long_answers:
            log.warning("%s: %d answers longer than task.adapter.max_tgt_len=%d %s", split, long_answers, self.max_tgt_len,
                        "dropped" if split == "train" else "truncated (their references stay whole)")
        return examples

    def examples(self, split: str) -> Sequence[Example]:
        if split not in self._cache:
            self._cache[split] = self._encode(self.data.read(split), split)
        return self._cache[split]

    def length(self, example: Example) -> int:
        tgt = example["tgt"]
        return max(len(example["src"]), 0 if tgt is None else len(tgt) + 1)

    def collate(self, examples: list[Example]) -> Batch:
        t = self.tok
        src, src_mask = pad_source([e["src"] for e in examples], t.pad_id)
        meta = {"source": [e["source"] for e in examples], "ref": [e["ref"] for e in examples]}
        if examples[0]["tgt"] is None:
            return Batch(src=src, src_mask=src_mask, meta=meta)
        tgt_in, tgt_out = teacher_forcing([e["tgt"] for e in examples], t.bos_id, t.eos_id, t.pad_id)
        return Batch(src=src, src_mask=src_mask, tgt_in=tgt_in, tgt_out=tgt_out, meta=meta)

    def parse_inputs(self, lines: list[str]) -> list[Example]:
        items = []
        for n, line in enumerate(lines, 1):
            question, sep, context = line.partition(INPUT_SEPARATOR)
            if not sep or not question.strip() or not context.strip():
                raise DataError(f"input line {n}: expected 'question {INPUT_SEPARATOR} context', got {line[:60]!r}")
            items.append(QAItem(f"input-{n}", question.strip(), context.strip(), ()))
        examples = []
        for item in items:  # not _encode: predict reports cut contexts by line, not as a count
            src, _, truncated = self._source(item.question, item.context)
            examples.append({
                "src": torch.tensor(src), "tgt": None,
                "source": f"{item.question} {INPUT_SEPARATOR} {item.context}", "ref": QAReference((), None, False),
                **({"truncated": f"task.adapter.max_src_len={self.max_src_len} pieces"} if truncated else {}),
            })
        return examples

    # -- outputs and metrics --------------------------------------------------------------
    def decode(self, tokens: Tensor) -> list[str]:
        return [s.strip() for s in self.tok.decode_batch(tokens.tolist())]

    def references(self, batch: Batch) -> list[QAReference]:
        return list(batch.meta["ref"])

    def metrics(self, outputs: list[Any], references: list[QAReference], split: str) -> MetricReport:
        """EM and F1 overall; per question type, for answers with unseen names, and
        HasAns/NoAns when the split has unanswerable questions (as the v2.0 script does)."""
        groups: dict[str, list[tuple[float, float]]] = defaultdict(list)
        for out, ref in zip(outputs, references):
            pred, answers = _text(out), list(ref.answers)
            score = (best_over_references(exact_match, pred, answers), best_over_references(f1_score, pred, answers))
            groups[""].append(score)
            if ref.qtype:
                groups[ref.qtype].append(score)
            if ref.unseen:
                groups["unseen"].append(score)
            groups["no_ans" if not answers else "has_ans"].append(score)
        if "no_ans" not in groups:
            groups.pop("has_ans", None)
        values, protocol = {}, {}
        for group, scores in groups.items():
            suffix = f"_{group}" if group else ""
            for i, name in enumerate(["em", "f1"]):
                values[name + suffix] = 100.0 * sum(s[i] for s in scores) / len(scores)
                subset = f"questions of type {group}" if group and group not in ("unseen", "has_ans", "no_ans") else (
                    {"unseen": "questions whose answer has a name never seen in train",
                     "has_ans": "answerable questions", "no_ans": "unanswerable questions"}.get(group, "all questions"))
                protocol[name + suffix] = f"{split} split, {len(scores)} {subset}; {PROTOCOL}"
        values = {"em": values.pop("em"), "f1": values.pop("f1"), **values}  # headline first
        return MetricReport(values, protocol)

    def samples(self, batch: Batch, outputs: list[Any], limit: int) -> SampleTable:
        rows = [
            [src, ref.qtype or "", str(ref), out]
            for src, ref, out in list(zip(batch.meta["source"], self.references(batch), outputs))[:limit]
        ]
        return SampleTable(["question ||| context", "type", "reference", "output"], rows)

    def reward(self, sources: list[Any], outputs: list[Any], references: list[QAReference]) -> list[float]:
        """SQuAD F1 in [0, 1] against the best reference."""
        return [best_over_references(f1_score, _text(o), list(r.answers)) for o, r in zip(outputs, references)]
