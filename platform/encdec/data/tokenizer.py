"""Subword tokenizers (BPE or unigram) trained with Hugging Face `tokenizers`.

Metaspace pre-tokenisation keeps whitespace in the pieces, so decoding gives back
detokenised text: what sacreBLEU wants as a hypothesis.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterable, Iterator

from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers

from encdec.errors import DataError

PAD, BOS, EOS, UNK = "<pad>", "<s>", "</s>", "<unk>"
SPECIALS = [PAD, BOS, EOS, UNK]
# for denoising pre-training (objective=denoise), trained on request (mask_token=True) after
# the four above so their ids stay 0-3; other tokenizers have none (mask_id None).
MASK = "<mask>"


class SubwordTokenizer:
    """A thin, picklable wrapper exposing ids of the four special tokens."""

    def __init__(self, tokenizer: Tokenizer):
        self.tok = tokenizer
        self.pad_id, self.bos_id, self.eos_id, self.unk_id = (
            tokenizer.token_to_id(t) for t in SPECIALS
        )
        if None in (self.pad_id, self.bos_id, self.eos_id, self.unk_id):
            raise DataError(f"tokenizer lacks one of the special tokens {SPECIALS}")
        self.mask_id = tokenizer.token_to_id(MASK)

    @classmethod
    def train(
        cls, texts: Iterable[str], vocab_size: int = 8000, model: str = "bpe", min_frequency: int = 2,
        mask_token: bool = False,
    ) -> "SubwordTokenizer":
        specials = SPECIALS + [MASK] if mask_token else SPECIALS
        if model == "bpe":
            tok = Tokenizer(models.BPE(unk_token=UNK))
            trainer = trainers.BpeTrainer(
                vocab_size=vocab_size, min_frequency=min_frequency, special_tokens=specials,
                show_progress=False,
            )
        elif model == "unigram":
            tok = Tokenizer(models.Unigram())
            trainer = trainers.UnigramTrainer(
                vocab_size=vocab_size, special_tokens=specials, unk_token=UNK, show_progress=False
            )
        else:
            raise ValueError(f"task.adapter.tokenizer.model must be 'bpe' or 'unigram', got {model!r}")
        tok.normalizer = normalizers.NFKC()
        tok.pre_tokenizer = pre_tokenizers.Metaspace()
        tok.decoder = decoders.Metaspace()
        tok.train_from_iterator(texts, trainer=trainer)
        return cls(tok)

    @classmethod
    def load(cls, path: str | Path) -> "SubwordTokenizer":
        tok = read_tokenizer_file(path)
        try:
            return cls(tok)
        except DataError as exc:
            raise DataError(f"{path}: {exc}; restore it from the run that trained it") from None

    def save(self, path: str | Path) -> None:
        path = Path(path)
        tmp = path.with_suffix(path.suffix + ".tmp")
        self.tok.save(str(tmp))
        tmp.replace(path)

    @property
    def vocab_size(self) -> int:
        return self.tok.get_vocab_size()

    def encode_batch(self, texts: list[str]) -> list[list[int]]:
        return [e.ids for e in self.tok.encode_batch(texts, add_special_tokens=False)]

    def encode(self, text: str) -> list[int]:
        return self.tok.encode(text, add_special_tokens=False).ids

    def decode(self, ids: Iterable[int]) -> str:
        """Ids up to the first EOS; specials dropped."""
        return self.tok.decode(list(_until_eos(ids, self.eos_id)), skip_special_tokens=True)

    def decode_batch(self, rows: list[list[int]]) -> list[str]:
        return self.tok.decode_batch(
            [list(_until_eos(r, self.eos_id)) for r in rows], skip_special_tokens=True
        )


def read_tokenizer_file(path: str | Path) -> Tokenizer:
    """A saved `tokenizers` file; a missing or damaged one is a DataError naming it."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: tokenizer file not found; it is written by encdec-train into the run directory")
    try:
        return Tokenizer.from_file(str(path))
    except Exception as exc:  # the Rust library raises plain Exception for every failure
        raise DataError(
            f"{path}: not a valid tokenizer file ({exc}); restore it from the run that trained it"
        ) from None


def _until_eos(ids: Iterable[int], eos: int) -> Iterator[int]:
    for i in ids:
        if i == eos:
            return
        yield int(i)
