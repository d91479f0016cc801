"""The image captioning task adapter: pixels in, subword captions out, COCO-toolkit metrics.

Training sees one example per (image, caption) pair; evaluation one per image, scored against
all of its captions. Pixels are prepared by timm's transform for the encoder's model
(`image_model` / `image_size` follow the encoder config). Training reads every image once per
caption in every epoch, so each is decoded and resized once per process and kept as uint8
pixels while `image_cache_mb` lasts (image_cache.py).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
from torch import Tensor

from encdec.data.collate import teacher_forcing
from encdec.data.vocabulary import Vocabulary
from encdec.errors import ConfigError, DataError
from encdec.modules.image_encoders import input_transform
from encdec.task import Example, ImageCell, MetricReport, SampleTable, SharedVocabularyTask
from encdec.types import Batch
from encdec_tasks.captioning import metrics as M
from encdec_tasks.captioning.data import load_image
from encdec_tasks.captioning.image_cache import ImageCache

log = logging.getLogger(__name__)
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff"}


class CaptioningTask(SharedVocabularyTask):
    data_kind = "captioned_images"
    source_kind = "pixels"
    monitor = "val/cider_d"
    monitor_mode = "max"

    def __init__(
        self,
        data: Any,
        image_model: str | None,
        image_size: int | None = None,
        tokenizer: dict[str, Any] | None = None,
        max_caption_len: int = 40,
        meteor: bool = False,
        thumbnail_size: int = 128,
        image_cache_mb: float = 2048,
    ):
        if not image_model:
            raise ConfigError(
                "task=captioning needs an image encoder: set encoder=cnn or encoder=vit "
                "(task.adapter.image_model follows encoder.model_name), or use experiment=captioning_scenes_cnn"
            )
        self.data = data
        self.image_model, self.image_size = image_model, image_size
        self.tok_cfg = {"model": "bpe", "vocab_size": 5000, **(tokenizer or {})}
        self.max_caption_len, self.meteor, self.thumbnail_size = max_caption_len, meteor, thumbnail_size
        if isinstance(image_cache_mb, bool) or not isinstance(image_cache_mb, (int, float)) or not image_cache_mb >= 0:
            raise ConfigError(f"task.adapter.image_cache_mb={image_cache_mb!r}: give the cache's size in MiB, "
                              ">= 0 (0 turns the image cache off)")
        self.transform = input_transform(image_model, image_size)
        self.images = ImageCache(self.transform, image_cache_mb)
        self.tok: Vocabulary | None = None
        self._cache: dict[str, list[Example]] = {}
        self._reward_scorer: M.SentenceCiderD | None = None

    # -- vocabulary -----------------------------------------------------------------------
    def setup(self, run_dir: Path, stage: str) -> None:
        self.load_or_train_tokenizer(run_dir, stage, lambda: [c for item in self.data.read("train") for c in item.captions])

    def vocabularies(self) -> dict[str, Vocabulary]:
        return {"target": self.tok}  # the source is pixels

    # -- examples and batches -------------------------------------------------------------
    def _encode(self, text: str) -> Tensor:
        return torch.tensor(self.tok.encode(text)[: self.max_caption_len] or [self.tok.unk_id])

    def examples(self, split: str) -> Sequence[Example]:
        if split not in self._cache:
            items = self.data.read(split)
            if split == "train":  # every caption is a training target for its image
                examples = [{"path": it.path, "tgt": self._encode(c), "refs": it.captions, "id": it.image_id}
                            for it in items for c in it.captions]
            else:  # scored once per image against all its captions; the first gives the loss
                examples = [{"path": it.path, "tgt": self._encode(it.captions[0]), "refs": it.captions, "id": it.image_id}
                            for it in items]
            self._cache[split] = examples
        return self._cache[split]

    def length(self, example: Example) -> int:
        tgt = example["tgt"]
        return 1 if tgt is None else len(tgt) + 1

    def _pixels(self, examples: list[Example]) -> tuple[list[Example], Tensor]:
        kept, pixels = [], []
        for e in examples:
            try:
                pixels.append(self.images(e["path"]))
                kept.append(e)
            except DataError as exc:
                # the reader checked every file up front; one that decodes badly anyway is
                # handled under the same data.on_bad_image policy, so an epoch never crashes
                if getattr(self.data, "on_bad_image", "error") == "error":
                    raise DataError(f"{exc}; set data.on_bad_image=skip to leave it out") from None
                log.warning("skipping %s", exc)
        if not kept:
            raise DataError(f"no readable image in a batch of {len(examples)} (first: {examples[0]['path']})")
        return kept, self.images.batch(pixels)

    def collate(self, examples: list[Example]) -> Batch:
        examples, src = self._pixels(examples)
        meta = {"path": [str(e["path"]) for e in examples], "ref": [e["refs"] for e in examples],
                "id": [e["id"] for e in examples]}
        if examples[0]["tgt"] is None:
            return Batch(src=src, meta=meta)
        t = self.tok
        tgt_in, tgt_out = teacher_forcing([e["tgt"] for e in examples], t.bos_id, t.eos_id, t.pad_id)
        return Batch(src=src, tgt_in=tgt_in, tgt_out=tgt_out, meta=meta)

    def parse_inputs(self, lines: list[str]) -> list[Example]:
        """Image paths, one per line (encdec-predict input=<folder> lists a folder's images)."""
        examples = []
        for number, line in enumerate(lines, start=1):
            path = Path(line.strip()).expanduser()
            if not line.strip():
                raise DataError(f"input line {number} is empty; give one image path per line")
            if path.suffix.lower() not in IMAGE_SUFFIXES:
                raise DataError(f"input line {number}: {path} is not an image file ({', '.join(sorted(IMAGE_SUFFIXES))})")
            load_image(path)  # a bad file is named now, not mid-batch
            examples.append({"path": path, "tgt": None, "refs": [], "id": path.name})
        return examples

    # -- outputs and metrics --------------------------------------------------------------
    def decode(self, tokens: Tensor) -> list[str]:
        return self.tok.decode_batch(tokens.tolist())

    def pieces(self, ids: list[int]) -> list[str]:
        """Readable subword pieces of `ids` (for per-word displays), EOS shown as <end>."""
        return ["<end>" if i == self.tok.eos_id else self.tok.tok.id_to_token(i).lstrip("\u2581") or "_" for i in ids]

    def references(self, batch: Batch) -> list[list[str]]:
        return [list(r) for r in batch.meta["ref"]]

    def metrics(self, outputs: list[str], references: list[list[str]], split: str) -> MetricReport:
        values = M.caption_scores(outputs, references, meteor=self.meteor)
        # CIDEr-D first: the progress bar shows the first metric
        values = {"cider_d": values.pop("cider_d"), **values} if values else values
        proto = M.protocol(split, references)
        protocol = {k: proto + (", CIDEr-D document frequencies from these references" if k == "cider_d" else "")
                    for k in values}
        return MetricReport(values, protocol)

    def reward(self, sources: list[Any], outputs: list[Any], references: list[list[str]]) -> list[float]:
        """Sentence-level CIDEr-D (x1, as SCST uses it), document frequencies from the
        training captions."""
        if self._reward_scorer is None:
            self._reward_scorer = M.SentenceCiderD([it.captions for it in self.data.read("train")])
        score = self._reward_scorer.score
        return [float(score(o if isinstance(o, str) else o[0], refs)) for o, refs in zip(outputs, references)]

    def thumbnail(self, path: str | Path) -> np.ndarray:
        """uint8 [H, W, 3] pixels of an image for display, longest side thumbnail_size."""
        img = load_image(Path(path))
        img.thumbnail((self.thumbnail_size, self.thumbnail_size))
        return np.asarray(img)

    def samples(self, batch: Batch, outputs: list[str], limit: int) -> SampleTable:
        rows = []
        for path, refs, out in list(zip(batch.meta["path"], self.references(batch), outputs))[:limit]:
            rows.append([ImageCell(self.thumbnail(path)), out, " // ".join(refs), Path(path).name])
        return SampleTable(["image", "output", "references", "file"], rows)
