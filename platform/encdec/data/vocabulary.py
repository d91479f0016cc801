"""One vocabulary interface for every task: subword (BPE, unigram), word-level (a closed
vocabulary: digits, labels, item ids) and pretrained tokenizers, all Hugging Face `tokenizers`
files in the run directory. Each has a spec (kind, size, special ids, a fingerprint of its
piece -> id map), saved in the run directory (vocabulary.json) and in every checkpoint, so
weights are never used with ids that mean other pieces, whatever the difference.

Subword pieces keep their whitespace (Metaspace): decoding gives detokenised text (what
sacreBLEU wants); word-level vocabularies split on whitespace and decode with single spaces.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable, Iterable, Iterator

from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers

from encdec.atomic_file import write_atomic
from encdec.errors import ConfigError, DataError

log = logging.getLogger(__name__)

PAD, BOS, EOS, UNK, MASK = "<pad>", "<s>", "</s>", "<unk>", "<mask>"
# ids 0-3 of every vocabulary trained here; <mask> (for objective=denoise) is 4 when asked for
SPECIALS = [PAD, BOS, EOS, UNK]
# the names of each role: ours, then BERT's (a pretrained model folder's tokenizer.json)
ROLES = {"pad": (PAD, "[PAD]"), "bos": (BOS, "[CLS]"), "eos": (EOS, "[SEP]"), "unk": (UNK, "[UNK]"), "mask": (MASK, "[MASK]")}
SPEC_FILE = "vocabulary.json"  # the run's specs, by role, beside its tokenizer files
SPEC_KEY = "encdec_vocabulary"  # the same, in every checkpoint
_KIND_OF_MODEL = {"BPE": "bpe", "Unigram": "unigram", "WordLevel": "word", "WordPiece": "pretrained"}


@dataclass(frozen=True)
class VocabularySpec:
    kind: str  # bpe | unigram | word | pretrained
    size: int
    specials: dict[str, int]  # role (pad, bos, eos, unk, mask) -> id; roles it lacks are left out
    fingerprint: str  # sha256 of the piece -> id map
    file: str | None = None  # its file in the run directory


class Vocabulary:
    """A `tokenizers.Tokenizer` with the ids of its special tokens; picklable."""

    def __init__(self, tokenizer: Tokenizer, kind: str, source: str = "tokenizer", file: str | None = None):
        self.tok, self.kind, self.file = tokenizer, kind, file
        ids = {role: next((tokenizer.token_to_id(n) for n in names if tokenizer.token_to_id(n) is not None), None)
               for role, names in ROLES.items()}
        for role in ("pad", "bos", "eos"):
            if ids[role] is None:
                raise DataError(f"{source}: no {role} token (looked for {' / '.join(ROLES[role])})")
        self.pad_id, self.bos_id, self.eos_id, self.unk_id, self.mask_id = ids.values()
        if kind == "pretrained":  # source truncation and padding are the task's business (and logged there)
            tokenizer.no_truncation()
            tokenizer.no_padding()

    @classmethod
    def train(
        cls, texts: Iterable[str], vocab_size: int | None = 8000, model: str = "bpe", min_frequency: int | None = None,
        mask_token: bool = False,
    ) -> "Vocabulary":
        """model: bpe | unigram (subwords) | word (every whitespace-separated word, the
        `vocab_size` most frequent if given)."""
        specials = SPECIALS + [MASK] if mask_token else SPECIALS
        common = {"vocab_size": vocab_size or 2**31 - 1, "special_tokens": specials, "show_progress": False}
        if model == "bpe":
            tok, trainer = Tokenizer(models.BPE(unk_token=UNK)), trainers.BpeTrainer(min_frequency=min_frequency or 2, **common)
        elif model == "unigram":
            tok, trainer = Tokenizer(models.Unigram()), trainers.UnigramTrainer(unk_token=UNK, **common)
        elif model == "word":
            tok, trainer = _word_tokenizer(models.WordLevel(unk_token=UNK)), trainers.WordLevelTrainer(min_frequency=min_frequency or 1, **common)
        else:
            raise ValueError(f"task.adapter.tokenizer.model must be bpe, unigram or word, got {model!r}")
        if model != "word":
            tok.normalizer = normalizers.NFKC()
            tok.pre_tokenizer = pre_tokenizers.Metaspace()
            tok.decoder = decoders.Metaspace()
        tok.train_from_iterator(texts, trainer=trainer)
        return cls(tok, model)

    @classmethod
    def closed(cls, words: Iterable[str], specials: Iterable[str] = SPECIALS) -> "Vocabulary":
        """A word-level vocabulary of exactly `words`, ids in their order after the specials."""
        specials = list(specials)
        vocab = {w: i for i, w in enumerate(dict.fromkeys([*specials, *words]))}
        tok = _word_tokenizer(models.WordLevel(vocab, unk_token=UNK))
        tok.add_special_tokens(specials)
        return cls(tok, "word")

    @classmethod
    def pretrained(cls, model_dir: str | Path, key: str = "task.adapter.tokenizer.pretrained") -> "Vocabulary":
        """The tokenizer.json of a Hugging Face model folder."""
        path = Path(model_dir).expanduser() / "tokenizer.json"
        if not path.is_file():
            raise ConfigError(
                f"{key}={model_dir}: no tokenizer.json in that folder (a Hugging Face model folder "
                "saved with a fast tokenizer is needed)"
            )
        return cls(read_tokenizer_file(path), "pretrained", str(path))

    @classmethod
    def load(cls, path: str | Path) -> "Vocabulary":
        """A vocabulary file of a run directory; its kind from the run's vocabulary.json, or,
        in runs written before it, from the file's model."""
        path = Path(path)
        tok = read_tokenizer_file(path)
        try:
            return cls(tok, _kind(path, tok), str(path), path.name)
        except DataError as exc:
            raise DataError(f"{exc}; restore it from the run that trained it") from None

    def save(self, path: str | Path) -> None:
        path = Path(path)
        tmp = path.with_suffix(path.suffix + ".tmp")
        self.tok.save(str(tmp))
        tmp.replace(path)
        self.file = path.name

    @property
    def size(self) -> int:
        return self.tok.get_vocab_size()

    vocab_size = size

    def spec(self) -> VocabularySpec:
        pieces = sorted(self.tok.get_vocab().items(), key=lambda kv: kv[1])
        digest = hashlib.sha256(json.dumps(pieces, ensure_ascii=False).encode("utf-8")).hexdigest()
        ids = (self.pad_id, self.bos_id, self.eos_id, self.unk_id, self.mask_id)
        specials = {role: i for role, i in zip(ROLES, ids) if i is not None}
        return VocabularySpec(self.kind, self.size, specials, digest, self.file)

    def encode_batch(self, texts: list[str]) -> list[list[int]]:
        return [e.ids for e in self.tok.encode_batch(texts, add_special_tokens=False)]

    def encode(self, text: str) -> list[int]:
        return self.tok.encode(text, add_special_tokens=False).ids

    def decode(self, ids: Iterable[int]) -> str:
        """Ids up to the first EOS; specials dropped."""
        return self.tok.decode(list(_until_eos(ids, self.eos_id)), skip_special_tokens=True)

    def decode_batch(self, rows: list[list[int]]) -> list[str]:
        return self.tok.decode_batch([list(_until_eos(r, self.eos_id)) for r in rows], skip_special_tokens=True)


def _word_tokenizer(model: models.WordLevel) -> Tokenizer:
    tok = Tokenizer(model)
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    return tok  # no decoder: pieces are joined with single spaces


def _kind(path: Path, tok: Tokenizer) -> str:
    spec_file = path.parent / SPEC_FILE
    if spec_file.is_file():
        for spec in json.loads(spec_file.read_text(encoding="utf-8")).values():
            if spec.get("file") == path.name:
                return spec["kind"]
    bert = tok.token_to_id("[CLS]") is not None
    return "pretrained" if bert else _KIND_OF_MODEL.get(json.loads(tok.to_str())["model"]["type"], "pretrained")


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


# -- a run's vocabularies ---------------------------------------------------------------------


def load_or_build(run_dir: Path, name: str, stage: str, build: Callable[[], Vocabulary]) -> Vocabulary:
    """The run's vocabulary file `name`: loaded when the run directory holds it (eval,
    predict, resume, or a run started with init_from, which copies that run's files in),
    else built and saved (stage 'fit' only)."""
    path = Path(run_dir) / name
    if path.exists():
        return Vocabulary.load(path)
    if stage != "fit":
        raise ConfigError(f"{path} not found: is {run_dir} a run directory of encdec-train?")
    vocab = build()
    vocab.save(path)
    log.info("built %s: a %s vocabulary of %d entries", name, vocab.kind, vocab.size)
    return vocab


def vocabulary_spec(vocabularies: dict[str, Vocabulary]) -> dict[str, dict]:
    """{role: spec as plain values} of a task's vocabularies (TaskAdapter.vocabularies)."""
    return {role: asdict(v.spec()) for role, v in vocabularies.items()}


def save_vocabulary_spec(run_dir: Path, vocabularies: dict[str, Vocabulary]) -> None:
    write_atomic(Path(run_dir) / SPEC_FILE, json.dumps(vocabulary_spec(vocabularies), indent=1) + "\n")


def spec_difference(saved: dict[str, dict], current: dict[str, dict]) -> str | None:
    """How a saved spec differs from the current one, in words; None when they agree (or
    nothing was saved)."""
    if not saved or not current:
        return None
    if not set(saved) & set(current):
        return f"vocabularies for {', '.join(sorted(saved))} there, for {', '.join(sorted(current))} here"
    for role in (r for r in current if r in saved):
        for key in ("kind", "size", "specials", "fingerprint"):
            there, here = saved[role].get(key), current[role].get(key)
            if there != here:
                if key == "fingerprint":
                    return f"the {role} vocabulary maps other pieces to its ids (fingerprint {there[:12]} there, {here[:12]} here)"
                return f"the {role} vocabulary's {key} is {there} there, {here} here"
    return None


def check_vocabulary(saved: dict | None, vocabularies: dict[str, Vocabulary], what: str, advice: str) -> None:
    """`saved`: the spec a checkpoint was written with; any difference from `vocabularies`
    (kind, size, specials, a single piece) is one ConfigError naming `what`."""
    difference = spec_difference(saved or {}, vocabulary_spec(vocabularies))
    if difference:
        raise ConfigError(f"{what}: its vocabulary is not this run's ({difference}); {advice}")
