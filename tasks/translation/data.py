"""Readers for parallel text: Multi30k, any aligned pair of files, and TSV.

Every reader returns, per split, a list of (source, target) strings and stops with an error
naming the file and line on a mismatched line count, an empty line or invalid UTF-8.
"""

from __future__ import annotations

import logging
import urllib.request
from pathlib import Path

from encdec.data.text_files import read_text_lines, require_examples
from encdec.errors import DataError

log = logging.getLogger(__name__)
Pairs = list[tuple[str, str]]


def read_lines(path: Path) -> list[str]:
    """UTF-8 lines of a plain or gzip file, without line ends; rejects empty lines."""
    lines = read_text_lines(path)
    for number, text in enumerate(lines, start=1):
        if not text.strip():
            raise DataError(f"{path}, line {number}: empty line; remove it (and its translation) or fill it")
    return lines


def read_aligned(src_path: Path, tgt_path: Path) -> Pairs:
    src, tgt = read_lines(src_path), read_lines(tgt_path)
    if len(src) != len(tgt):
        raise DataError(
            f"{src_path} has {len(src)} lines but {tgt_path} has {len(tgt)}: "
            "line N of one must be the translation of line N of the other"
        )
    return list(zip(src, tgt))


def _find(root: Path, stem: str) -> Path:
    for candidate in (root / stem, root / f"{stem}.gz"):
        if candidate.exists():
            return candidate
    return root / stem


class ParallelText:
    """Aligned files <root>/<prefix>.<lang> (or .gz) for each split."""
    kind = "pairs"

    def __init__(self, root: str, src_lang: str, tgt_lang: str, splits: dict[str, str]):
        self.root, self.src_lang, self.tgt_lang = Path(root), src_lang, tgt_lang
        self.splits = dict(splits)

    def read(self, split: str) -> Pairs:
        if split not in self.splits:
            raise DataError(f"no {split!r} split configured (data.splits has {sorted(self.splits)})")
        prefix = self.splits[split]
        src_path = _find(self.root, f"{prefix}.{self.src_lang}")
        pairs = read_aligned(src_path, _find(self.root, f"{prefix}.{self.tgt_lang}"))
        require_examples(pairs, src_path, split, "the file is empty")
        return pairs


class Multi30k(ParallelText):
    """Multi30k task 1 raw files under <root>/multi30k/, downloaded there when missing."""

    URL = "https://raw.githubusercontent.com/multi30k/dataset/master/data/task1/raw/{name}"

    def __init__(
        self,
        root: str,
        src_lang: str = "de",
        tgt_lang: str = "en",
        test_split: str = "test_2016_flickr",
        download: bool = True,
    ):
        super().__init__(
            str(Path(root) / "multi30k"), src_lang, tgt_lang, {"train": "train", "val": "val", "test": test_split}
        )
        self.download = download

    def read(self, split: str) -> Pairs:
        if split not in self.splits:
            raise DataError(f"no {split!r} split in Multi30k (it has {sorted(self.splits)})")
        for lang in (self.src_lang, self.tgt_lang):
            name = f"{self.splits[split]}.{lang}.gz"
            if not (self.root / name).exists() and not (self.root / name[:-3]).exists():
                self._fetch(name)
        return super().read(split)

    def _fetch(self, name: str) -> None:
        target = self.root / name
        hint = (
            f"Multi30k file {target} is missing. Set ENCDEC_DATA_DIR to a folder holding "
            "multi30k/ (offline copy), or data.root=..."
        )
        if not self.download:
            raise DataError(hint + " (data.download=false)")
        log.info("downloading %s", self.URL.format(name=name))
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            tmp = target.with_suffix(".part")
            with urllib.request.urlopen(self.URL.format(name=name), timeout=30) as r:
                tmp.write_bytes(r.read())
            tmp.replace(target)
        except OSError as exc:
            raise DataError(f"{hint}; download failed: {exc}") from None


class TSVText:
    """One file per split, `source<TAB>target` per line."""
    kind = "pairs"

    def __init__(self, root: str, splits: dict[str, str]):
        self.root, self.splits = Path(root), dict(splits)

    def read(self, split: str) -> Pairs:
        if split not in self.splits:
            raise DataError(f"no {split!r} split configured (data.splits has {sorted(self.splits)})")
        path = self.root / self.splits[split]
        pairs = []
        for number, line in enumerate(read_lines(path), start=1):
            fields = line.split("\t")
            if len(fields) != 2:
                raise DataError(
                    f"{path}, line {number}: expected 'source<TAB>target', got {len(fields)} tab-separated field(s)"
                )
            if not fields[0].strip() or not fields[1].strip():
                raise DataError(f"{path}, line {number}: empty {'source' if not fields[0].strip() else 'target'}; fill or remove the line")
            pairs.append((fields[0], fields[1]))
        require_examples(pairs, path, split, "the file is empty")
        return pairs


class MonolingualText:
    """One plain-text file (or .gz) of sentences per split, read as (line, line) pairs:
    monolingual text for denoising pre-training (objective=denoise reads the target side and
    makes its own noised source)."""
    kind = "pairs"

    def __init__(self, root: str, splits: dict[str, str]):
        self.root, self.splits = Path(root), dict(splits)

    def read(self, split: str) -> Pairs:
        if split not in self.splits:
            raise DataError(f"no {split!r} split configured (data.splits has {sorted(self.splits)})")
        path = self.root / self.splits[split]
        lines = read_lines(path)
        require_examples(lines, path, split, "the file is empty")
        return [(line, line) for line in lines]
