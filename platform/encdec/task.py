"""The task adapter contract: the only task-specific code in a run.

A task adapter turns raw data into examples and batches, says what vocabularies the
encoder and decoder need, turns generated ids back into outputs, and scores them. The core
(training loop, decoding, objectives, checkpoints, loggers, CLI) calls nothing else.
Adapters live in `tasks/<name>/` (or in a user's own package, see README "Adding a task")
and are wired by `conf/task/<name>.yaml`.

The adapter is given a reader (the `data` config group) that declares the shape of what it
reads as `kind`; the adapter declares the one it accepts as `data_kind`, and a mismatch stops
the run before any data is read (`check_reader`). The shapes and their protocols are below.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, ClassVar, Iterable, Protocol, Sequence, TypeVar

from torch import Tensor

from encdec.data.vocabulary import Vocabulary, load_or_build
from encdec.errors import ConfigError
from encdec.types import Batch

Example = dict[str, Any]
Record = TypeVar("Record", covariant=True)


# -- readers: one protocol per data shape ------------------------------------------------------
# A reader is the `_target_` of a `conf/data/*.yaml`. It reads lazily (the constructor only
# checks its arguments), raises `encdec.errors.DataError` naming file and line on bad input,
# and declares its shape as a class attribute `kind`.


class SplitReader(Protocol[Record]):
    """`read(split) -> records` for split in 'train', 'val', 'test'. `kind` names the record
    type; the task that defines the record type owns the kind, e.g. "captioned_images"
    (`encdec_tasks.captioning.data.CaptionedImage`) or "qa_items" (`encdec_tasks.qa.squad.QAItem`)."""

    kind: ClassVar[str]

    def read(self, split: str) -> Sequence[Record]: ...


class PairsReader(SplitReader[tuple[str, str]], Protocol):
    """kind = "pairs": (source text, target text) per example (translation; any seq2seq text task)."""


class SentencesReader(SplitReader[str], Protocol):
    """kind = "sentences": one text per example (text generation, language models)."""


class TensorReader(Protocol):
    """`read(split) -> Tensor [N, L]` of token ids, e.g. kind = "oracle_samples" (SeqGAN's oracle)."""

    kind: ClassVar[str]

    def read(self, split: str) -> Tensor: ...


class LogReader(Protocol[Record]):
    """`read() -> one log` that the adapter splits itself by its protocol, e.g. kind =
    "interactions" (`encdec_tasks.recommendation.data.Interactions`, split leave-one-out)."""

    kind: ClassVar[str]

    def read(self) -> Record: ...


def check_reader(adapter: "TaskAdapter", reader: Any) -> None:
    """Stop with a ConfigError when `reader` does not give what `adapter` reads."""
    wanted = getattr(adapter, "data_kind", None)
    if wanted is None:  # an adapter that declares nothing takes any reader
        return
    given = getattr(reader, "kind", None)
    if given == wanted:
        return
    reader_name, adapter_name = type(reader).__name__, type(adapter).__name__
    if given is None:
        raise ConfigError(
            f"data: {reader_name} declares no `kind`; {adapter_name} reads {wanted!r} data: "
            f"set `kind = {wanted!r}` on the reader class if that is what it gives"
        )
    raise ConfigError(
        f"data: {reader_name} gives {given!r} data but task {adapter_name} reads {wanted!r}: "
        f"choose a data config of that kind (conf/data/), or leave data= out for the task's own"
    )


@dataclass
class MetricReport:
    """Metric values plus, for each, the protocol needed to compare it with anyone else's
    (e.g. the sacreBLEU signature, or "full ranking, leave-one-out, test split")."""

    values: dict[str, float]
    protocol: dict[str, str] = field(default_factory=dict)


@dataclass
class ImageCell:
    """An image in a SampleTable cell: uint8 pixels [H, W, 3]. Loggers show it as an image
    (wandb.Image, TensorBoard image with the row's text drawn beneath)."""

    pixels: Any


@dataclass
class SampleTable:
    """Rows worth looking at in a dashboard (source, reference, hypothesis...); a cell may be
    an ImageCell."""

    columns: list[str]
    rows: list[list[Any]]


class TaskAdapter(ABC):
    #: the reader shape this adapter accepts (see the reader protocols above); None: any
    data_kind: str | None = None
    #: metric the checkpoint callback should track, and whether higher is better
    monitor: str = "val/loss"
    monitor_mode: str = "min"
    #: what `Batch.src` holds, matched against the encoder's `reads` before any work:
    #: "tokens", "pixels" or "items"
    source_kind: str = "tokens"

    @abstractmethod
    def setup(self, run_dir: Path, stage: str) -> None:
        """Read data and prepare vocabularies. stage 'fit' may train and save them under
        run_dir; 'eval' and 'predict' must load them from run_dir."""

    @abstractmethod
    def examples(self, split: str) -> Sequence[Example]:
        """Encoded examples of a split ('train', 'val', 'test')."""

    @abstractmethod
    def length(self, example: Example) -> int:
        """Cost of an example for token-budget batching (e.g. its longest side)."""

    @abstractmethod
    def collate(self, examples: list[Example]) -> Batch: ...

    def vocabularies(self) -> dict[str, Vocabulary]:
        """The task's vocabularies by role, "source" and/or "target" (one object for both when
        they are shared), each an `encdec.data.vocabulary.Vocabulary` (BPE, unigram,
        word-level or pretrained) saved in the run directory by `setup`. Their spec goes into
        every checkpoint; `init_from` copies their files into the new run; the defaults below
        read them, and objective=denoise takes its mask id from the source vocabulary."""
        return {}

    def special_ids(self) -> dict[str, int]:
        """Target-side ids: {'bos_id', 'eos_id', 'pad_id'}."""
        t = self.vocabularies()["target"]
        return {"bos_id": t.bos_id, "eos_id": t.eos_id, "pad_id": t.pad_id}

    def encoder_kwargs(self) -> dict[str, Any]:
        """What an encoder may need from the data (e.g. vocab_size, pad_id); nothing for a
        source without a vocabulary (pixels)."""
        s = self.vocabularies().get("source")
        return {} if s is None else {"vocab_size": s.size, "pad_id": s.pad_id}

    def decoder_kwargs(self) -> dict[str, Any]:
        """What a decoder may need from the data (e.g. vocab_size, pad_id)."""
        t = self.vocabularies()["target"]
        return {"vocab_size": t.size, "pad_id": t.pad_id}

    @abstractmethod
    def decode(self, tokens: Tensor) -> list[Any]:
        """Generated ids [N, L] -> outputs (strings, item lists...)."""

    @abstractmethod
    def references(self, batch: Batch) -> list[Any]: ...

    @abstractmethod
    def metrics(self, outputs: list[Any], references: list[Any], split: str) -> MetricReport: ...

    def samples(self, batch: Batch, outputs: list[Any], limit: int) -> SampleTable:
        refs = self.references(batch)
        sources = batch.meta.get("source", [""] * len(outputs))
        rows = [[s, r, o] for s, r, o in list(zip(sources, refs, outputs))[:limit]]
        return SampleTable(["source", "reference", "output"], rows)

    def parse_inputs(self, lines: list[str]) -> list[Example]:
        """Raw user inputs (one per line) -> examples, for `predict`. An input cut to fit the
        model is marked `example["truncated"] = "<the limit, e.g. task.adapter.max_src_len=128>"`:
        predict then warns with its line number, or refuses it under `truncate=error`."""
        raise NotImplementedError(f"{type(self).__name__} does not support predict from text")

    def reward(self, sources: list[Any], outputs: list[Any], references: list[Any]) -> list[float]:
        """Sentence-level task metric, the default reward for RL objectives."""
        raise NotImplementedError(f"{type(self).__name__} defines no reward")


class SharedVocabularyTask(TaskAdapter):
    """An adapter whose target side (and text source, if any) uses one vocabulary, `self.tok`,
    saved with the run as tokenizer.json: trained on the training split (`self.tok_cfg`
    {'model': bpe | unigram | word, 'vocab_size'}) or, with `'pretrained': <model folder>`,
    that folder's tokenizer.json. Subclasses call `load_or_train_tokenizer` from `setup`."""

    tok: Any = None
    tok_cfg: dict[str, Any]

    def load_or_train_tokenizer(self, run_dir: Path, stage: str, train_texts: Callable[[], Iterable[str]]) -> None:
        cfg = self.tok_cfg
        self.tok = load_or_build(run_dir, "tokenizer.json", stage, lambda: Vocabulary.pretrained(cfg["pretrained"])
                                 if cfg.get("pretrained") else Vocabulary.train(list(train_texts()), cfg["vocab_size"], cfg["model"]))

    def vocabularies(self) -> dict[str, Vocabulary]:
        return {"source": self.tok, "target": self.tok}
