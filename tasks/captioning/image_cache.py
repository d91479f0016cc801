"""Prepared pixels of captioning images, decoded and resized once per process.

timm's evaluation transform is a few PIL steps (resize, centre crop), ToTensor (uint8 ->
floats in [0, 1]) and Normalize (mean / std). `ImageCache` splits it before ToTensor: it keeps
each image's resized pixels as uint8 [3, H, W] (a quarter of float32), keyed by path, and turns
a stacked batch into normalised floats with the transform's own operations in one tensor op,
so a batch holds the same numbers as the whole transform applied image by image.

The budget is filled until full; images beyond it are prepared again at every read. Training
reads the images of a shuffled epoch in an order where every image is as likely next as any
other, so evicting one image for another (LRU) would add work without raising the hit rate.
A transform that is not a fixed function of the image (random crops, flips: training
augmentation) is never cached; it is applied whole at every read.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Callable

import torch
from PIL import Image
from timm.data.transforms import CenterCropOrPad, ResizeKeepRatio, TrimBorder
from torch import Tensor
from torchvision import transforms as T
from torchvision.transforms import functional as F

from encdec_tasks.captioning.data import load_image

log = logging.getLogger(__name__)
MIB = 2**20


def _is_fixed(step: Callable) -> bool:
    """Whether a PIL step gives the same output for the same image at every call."""
    if isinstance(step, ResizeKeepRatio):  # random only when asked to jitter scale or aspect
        return not (step.random_scale_prob or step.random_aspect_prob)
    return isinstance(step, (T.Resize, T.CenterCrop, CenterCropOrPad, TrimBorder))


def split_at_normalize(transform: Callable) -> tuple[T.Compose, T.Normalize]:
    """(the PIL steps before ToTensor, the Normalize) of a timm evaluation transform:
    ToTensor(x) is x / 255 in float32, so Normalize(stack(pixels).float() / 255) equals the
    transform applied to each image. ValueError saying why when `transform` is not
    [fixed PIL steps..., ToTensor, Normalize]."""
    steps = list(getattr(transform, "transforms", []))
    if not isinstance(transform, T.Compose) or len(steps) < 2:
        raise ValueError(f"{type(transform).__name__} is not a Compose of PIL steps, ToTensor and Normalize")
    *pil_steps, to_tensor, normalize = steps
    if not isinstance(to_tensor, T.ToTensor) or not isinstance(normalize, T.Normalize):
        raise ValueError(f"the transform ends in {type(to_tensor).__name__}, {type(normalize).__name__}, "
                         "not ToTensor, Normalize")
    changing = [type(s).__name__ for s in pil_steps if not _is_fixed(s)]
    if changing:
        raise ValueError(f"its step(s) {', '.join(changing)} may give other pixels at every read")
    return T.Compose(pil_steps), normalize


class ImageCache:
    """Path -> prepared pixels of the image, kept in memory up to `budget_mb` MiB.

    `cache(path)` is one image's pixels (uint8 [3, H, W], or the whole transform's float output
    when it cannot be split); `cache.batch(pixels)` stacks and normalises them. A file that
    cannot be decoded raises encdec's DataError (from `load_image`) and is never stored.
    Each process fills its own: DataLoader workers (persistent across epochs) keep theirs, and
    a pickled copy (a spawned worker or process) starts empty instead of carrying the pixels.
    """

    def __init__(self, transform: Callable, budget_mb: float):
        self.transform = transform
        self.budget = int(budget_mb * MIB)
        self.entries: dict[str, Tensor] = {}
        self.nbytes = 0
        self._full = False
        try:
            self._resize, self._normalize = split_at_normalize(transform)
        except ValueError as why:
            self._resize = self._normalize = None
            if self.budget:
                log.warning("task.adapter.image_cache_mb: images are not cached, the image transform "
                            "cannot be split at its Normalize (%s)", why)
            self.budget = 0

    def __len__(self) -> int:
        return len(self.entries)

    def __call__(self, path: str | Path) -> Tensor:
        key = str(path)
        pixels = self.entries.get(key)
        if pixels is None:
            pixels = self.prepare(load_image(Path(path)))
            self._store(key, pixels)
        return pixels

    def prepare(self, image: Image.Image) -> Tensor:
        if self._resize is None:
            return self.transform(image)
        return F.pil_to_tensor(self._resize(image)).contiguous()

    def batch(self, pixels: list[Tensor]) -> Tensor:
        """Float [B, 3, H, W]: the prepared pixels of a batch, normalised in one tensor op."""
        stacked = torch.stack(pixels)
        if self._normalize is None:
            return stacked
        # ToTensor's conversion (to the default float dtype, / 255), then Normalize's, in place
        floats = stacked.to(torch.get_default_dtype()).div_(255)
        return F.normalize(floats, self._normalize.mean, self._normalize.std, inplace=True)

    def _store(self, key: str, pixels: Tensor) -> None:
        size = pixels.numel() * pixels.element_size()
        if self.nbytes + size <= self.budget:
            self.entries[key] = pixels
            self.nbytes += size
        elif self.budget and not self._full:
            self._full = True
            log.info("image cache full at %d images (%.0f MiB, task.adapter.image_cache_mb): "
                     "later images are decoded at every read", len(self.entries), self.nbytes / MIB)

    def __getstate__(self) -> dict:
        # worker processes and pickled adapters start with an empty cache, not a copy of this one
        return {**self.__dict__, "entries": {}, "nbytes": 0, "_full": False}
