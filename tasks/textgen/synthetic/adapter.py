"""`task=textgen_oracle`: the SeqGAN synthetic benchmark (data = oracle samples, metric =
NLL-oracle), on the same core decoders and objectives as real text."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import torch
from torch import Tensor

from encdec.data.vocabulary import BOS, EOS, PAD, Vocabulary
from encdec.task import Example, MetricReport, SampleTable, TaskAdapter
from encdec.types import Batch
from encdec_tasks.textgen.data import collate_oracle


class OracleTextGenTask(TaskAdapter):
    """The SeqGAN synthetic benchmark: data = oracle samples, metric = NLL-oracle (the
    oracle's per-token NLL of the model's samples; lower is better, 5.75 = the oracle itself)."""
    data_kind = "oracle_samples"

    monitor = "val/nll_oracle"
    monitor_mode = "min"

    def __init__(self, data: Any, tokenizer: dict[str, Any] | None = None):
        # `tokenizer` is accepted and unused (ids are the oracle's own), so task-agnostic
        # overrides such as a tiny test vocabulary apply to every task config alike
        self.data = data
        self._cache: dict[str, list[Example]] = {}

    def setup(self, run_dir: Path, stage: str) -> None:
        # the oracle's tokens keep their ids 0..V-1 (0 is also its start token, a normal
        # output); the generator's specials go after them
        size = self.data.oracle().vocab_size
        self.vocab = Vocabulary.closed([*map(str, range(size)), PAD, BOS, EOS], specials=())
        self.ids = self.special_ids()

    def vocabularies(self) -> dict[str, Vocabulary]:
        return {"source": self.vocab, "target": self.vocab}

    def examples(self, split: str) -> Sequence[Example]:
        if split not in self._cache:
            self._cache[split] = [{"tgt": row} for row in self.data.read(split)]
        return self._cache[split]

    def length(self, example: Example) -> int:
        return len(example["tgt"]) + 1

    def collate(self, examples: list[Example]) -> Batch:
        return collate_oracle(torch.stack([e["tgt"] for e in examples]), self.ids)

    def decode(self, tokens: Tensor) -> list[list[int]]:
        out = []
        for row in tokens.tolist():
            if self.ids["eos_id"] in row:
                row = row[: row.index(self.ids["eos_id"])]
            out.append([t for t in row if t != self.ids["pad_id"]])
        return out

    def references(self, batch: Batch) -> list[list[int]]:
        return list(batch.meta["ref"])

    def metrics(self, outputs: list[list[int]], references: list[Any], split: str) -> MetricReport:
        oracle = self.data.oracle()
        valid = [o for o in outputs if o and max(o) < oracle.vocab_size]
        if not valid:  # e.g. an untrained model emitting special tokens: worst possible score
            return MetricReport({"nll_oracle": float("inf"), "valid_fraction": 0.0},
                                {"nll_oracle": "no valid generated sequence", "valid_fraction": "share of valid sequences"})
        by_length: dict[int, list[list[int]]] = {}
        for o in valid:
            by_length.setdefault(len(o), []).append(o)
        total = sum(oracle.nll(torch.tensor(seqs)).sum().item() for seqs in by_length.values())
        values = {"nll_oracle": total / len(valid), "valid_fraction": len(valid) / len(outputs)}
        protocol = {
            "nll_oracle": (
                f"SeqGAN oracle (Yu et al. 2017, {self.data.path.name}); mean over {len(valid)} generated "
                f"sequences ({split} split prompts, the configured decoding) of the oracle's per-token NLL "
                "(sum over tokens / length); oracle's own samples 5.75, uniform 11.44"
            ),
            "valid_fraction": "share of generated sequences made only of oracle tokens (others are left out of nll_oracle)",
        }
        return MetricReport(values, protocol)

    def samples(self, batch: Batch, outputs: list[Any], limit: int) -> SampleTable:
        return SampleTable(["output"], [[" ".join(map(str, o))] for o in outputs[:limit]])

    def reward(self, sources: list[Any], outputs: list[list[int]], references: list[Any]) -> list[float]:
        """Minus the oracle's per-token NLL of each output (invalid or empty: minus log V
        of a uniform guess minus one, below any valid sequence's typical score)."""
        oracle = self.data.oracle()
        worst = -float(torch.log(torch.tensor(float(oracle.vocab_size)))) - 1.0
        return [
            -float(oracle.nll(torch.tensor([o]))[0]) if o and max(o) < oracle.vocab_size else worst
            for o in outputs
        ]
