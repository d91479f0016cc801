"""Data sources for text generation: the SeqGAN oracle's samples, and files of sentences."""

from __future__ import annotations

from pathlib import Path

import torch

from encdec.data.text_files import require_examples
from encdec.errors import ConfigError, DataError
from encdec.types import Batch
from encdec_tasks.textgen.oracle import ORACLE_FILE, SEQ_LEN, OracleLSTM
from encdec_tasks.translation.data import Multi30k, read_lines

# split -> seed offset: the three splits are disjoint draws of one seeded stream each
_SPLIT_OFFSET = {"train": 0, "val": 1, "test": 2}


def collate_oracle(tokens: torch.Tensor, ids: dict[str, int]) -> Batch:
    """Fixed-length oracle sequences [B, 20] -> a batch (a dummy one-token source)."""
    rows = tokens.size(0)
    bos = torch.full((rows, 1), ids["bos_id"], dtype=torch.long)
    eos = torch.full((rows, 1), ids["eos_id"], dtype=torch.long)
    return Batch(
        src=bos.clone(),
        src_mask=torch.ones(rows, 1, dtype=torch.bool),
        tgt_in=torch.cat([bos, tokens], dim=1),
        tgt_out=torch.cat([tokens, eos], dim=1),
        meta={"ref": tokens.tolist()},
    )


class OracleData:
    """The SeqGAN synthetic benchmark: 'real' data are sequences sampled from the oracle.

    Protocol of the paper: train = 10,000 oracle samples. val/test are further independent
    oracle samples (the model's NLL on them is the 'NLL-test' of later papers); the number of
    val examples is also how many generator samples the NLL-oracle metric averages over.
    Splits are deterministic in `seed`.
    """
    kind = "oracle_samples"

    def __init__(
        self,
        root: str,
        oracle_path: str | None = None,
        sizes: dict[str, int] | None = None,
        seed: int = 88,
        seq_len: int = SEQ_LEN,
        check_hash: bool = True,
    ):
        self.path = Path(oracle_path) if oracle_path else Path(root) / "seqgan-oracle" / ORACLE_FILE
        self.sizes = {"train": 10000, "val": 10000, "test": 10000, **(sizes or {})}
        self.seed, self.seq_len, self.check_hash = seed, seq_len, check_hash
        self._oracle: OracleLSTM | None = None
        self._cache: dict[str, torch.Tensor] = {}

    def oracle(self) -> OracleLSTM:
        if self._oracle is None:
            self._oracle = OracleLSTM.load(self.path, check_hash=self.check_hash)
        return self._oracle

    def read(self, split: str) -> torch.Tensor:
        if split not in self.sizes:
            raise DataError(f"no {split!r} split for the oracle data (data.sizes has {sorted(self.sizes)})")
        if split not in self._cache:
            gen = torch.Generator().manual_seed(self.seed * 10 + _SPLIT_OFFSET.get(split, 3))
            n = self.sizes[split]
            if isinstance(n, bool) or not isinstance(n, int) or n < 1:
                raise ConfigError(f"data.sizes.{split}={n!r}: give a positive number of oracle samples")
            chunks = [self.oracle().sample(min(1000, n - i), self.seq_len, gen) for i in range(0, n, 1000)]
            self._cache[split] = torch.cat(chunks) if chunks else torch.zeros(0, self.seq_len, dtype=torch.long)
        return self._cache[split]


class TextFile:
    """One sentence per line (plain or .gz) per split: <root>/<splits[split]>."""
    kind = "sentences"

    def __init__(self, root: str, splits: dict[str, str]):
        self.root, self.splits = Path(root), dict(splits)

    def read(self, split: str) -> list[str]:
        if split not in self.splits:
            raise DataError(f"no {split!r} split configured (data.splits has {sorted(self.splits)})")
        path = self.root / self.splits[split]
        if not path.exists() and Path(f"{path}.gz").exists():
            path = Path(f"{path}.gz")
        lines = read_lines(path)
        require_examples(lines, path, split, "the file is empty")
        return lines


class Multi30kText:
    """One side of Multi30k task 1 (default English) as monolingual sentences."""
    kind = "sentences"

    def __init__(self, root: str, lang: str = "en", test_split: str = "test_2016_flickr", download: bool = True):
        # the translation loader already knows the files, their download and their errors
        self.pairs = Multi30k(root, src_lang=lang, tgt_lang=lang, test_split=test_split, download=download)

    def read(self, split: str) -> list[str]:
        return [s for s, _ in self.pairs.read(split)]
