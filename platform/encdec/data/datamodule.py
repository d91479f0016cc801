"""One LightningDataModule for every task: the adapter supplies examples and collation."""

from __future__ import annotations

import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader

from encdec.data.bucketing import TokenBudgetBatchSampler
from encdec.data.text_files import SPLIT_NAMES
from encdec.errors import DataError
from encdec.task import TaskAdapter


class EncDecDataModule(pl.LightningDataModule):
    def __init__(
        self,
        adapter: TaskAdapter,
        max_tokens: int = 4096,
        max_sentences: int | None = None,
        eval_max_tokens: int | None = None,
        num_workers: int = 0,
        seed: int = 0,
        test_split: str = "test",
    ):
        super().__init__()
        self.adapter = adapter
        self.max_tokens, self.max_sentences = max_tokens, max_sentences
        self.eval_max_tokens = eval_max_tokens or max_tokens
        self.num_workers, self.seed = num_workers, seed
        self.test_split = test_split  # what the test loop reads: eval may score `val`

    def _loader(self, split: str, train: bool) -> DataLoader:
        examples = self.adapter.examples(split)
        if not examples:
            raise DataError(
                f"no {SPLIT_NAMES.get(split, split)} examples left after reading the data (none read, or all "
                "filtered out, e.g. by the task's length limits): check the data config"
            )
        trainer = self.trainer
        sampler = TokenBudgetBatchSampler(
            [self.adapter.length(e) for e in examples],
            max_tokens=self.max_tokens if train else self.eval_max_tokens,
            max_sentences=self.max_sentences,
            shuffle=train,
            seed=self.seed,
            rank=trainer.global_rank if trainer else 0,
            world_size=trainer.world_size if trainer else 1,
        )
        return DataLoader(
            examples,
            batch_sampler=sampler,
            collate_fn=self.adapter.collate,
            num_workers=self.num_workers,
            persistent_workers=self.num_workers > 0,
            # Its own generator: creating a loader iterator otherwise draws from the global
            # torch RNG, and a resumed run (which creates one more) would see other dropout masks.
            generator=torch.Generator().manual_seed(self.seed),
        )

    def train_dataloader(self) -> DataLoader:
        return self._loader("train", train=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader("val", train=False)

    def test_dataloader(self) -> DataLoader:
        return self._loader(self.test_split, train=False)
