"""Show, Attend and Tell heatmaps: where a recurrent decoder's attention looks in the image
for each word it generates, drawn over the image and sent to the loggers with the samples.

The weights are read with a forward hook on the decoder's attention module (it returns
(context, weights) every step), so neither the decoder nor the search knows about it.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import pytorch_lightning as pl
import torch
from PIL import Image, ImageDraw, ImageFont

from encdec.decoding import Greedy
from encdec.reporting import log_samples
from encdec.task import ImageCell, SampleTable

log = logging.getLogger(__name__)


@torch.no_grad()
def attention_per_step(model, src: torch.Tensor, max_len: int = 30) -> tuple[torch.Tensor, torch.Tensor, tuple[int, int]]:
    """Greedy captions of `src` and the decoder's attention at every step.

    Returns tokens [B, L] (padded), weights [B, L, S] (zero after a caption ends) and the
    memory grid (H, W) with H*W = S. Images are decoded one at a time: a search drops the
    rows that have ended, so a batched decode would record fewer rows at later steps.
    """
    attention = getattr(model.decoder, "attention", None)
    if attention is None or not isinstance(attention, torch.nn.Module):
        raise ValueError("attention maps need a decoder with an `attention` module (decoder=lstm or gru)")
    steps: list[torch.Tensor] = []
    encoded = []  # the encoder's output carries the image grid of its memory
    hooks = [
        attention.register_forward_hook(lambda mod, args, out: steps.append(out[1].detach().float())),
        model.encoder.register_forward_hook(lambda mod, args, out: encoded.append(out)),
    ]
    captions, maps = [], []
    try:
        for image in src.split(1):
            steps.clear()
            tokens = Greedy(max_len=max_len, max_len_a=0)(model, image, None).best()[0]
            captions.append(tokens)
            maps.append(torch.cat(steps)[: tokens.numel()])
    finally:
        for hook in hooks:
            hook.remove()
    grid = encoded[0].grid if encoded else None
    if grid is None or grid[0] * grid[1] != maps[0].size(-1):
        raise ValueError(f"the encoder's memory ({maps[0].size(-1)} vectors) is not a known image grid")
    tokens = torch.nn.utils.rnn.pad_sequence(captions, batch_first=True, padding_value=model.pad_id)
    weights = torch.nn.utils.rnn.pad_sequence(maps, batch_first=True)
    return tokens, weights, grid


def heatmap_strip(image: np.ndarray, words: list[str], weights: np.ndarray, grid: tuple[int, int], tile: int = 160) -> np.ndarray:
    """The image once per word, its attention (an H x W grid) upsampled and blended in red,
    the word it produced written in a band under each tile (a label of the figure, at a
    font size that scales with the tile). uint8 [tile + band, tile * len(words), 3], where
    band = max(14, tile // 8)."""
    band = max(14, tile // 8)
    base = Image.fromarray(image).convert("RGB").resize((tile, tile), Image.BICUBIC)
    strip = Image.new("RGB", (tile * max(1, len(words)), tile + band), "white")
    draw = ImageDraw.Draw(strip)
    font = ImageFont.load_default(size=band - 3)
    for i, (word, w) in enumerate(zip(words, weights)):
        w = w.reshape(grid)
        w = (w - w.min()) / max(float(w.max() - w.min()), 1e-8)
        heat = Image.fromarray(np.uint8(255 * w)).resize((tile, tile), Image.BILINEAR)
        red = Image.merge("RGB", [heat, Image.new("L", heat.size, 0), Image.new("L", heat.size, 0)])
        strip.paste(Image.blend(base, red, 0.5), (i * tile, 0))
        if i:  # a thin white line between tiles, so neighbouring heatmaps do not run together
            draw.line([(i * tile, 0), (i * tile, tile)], fill="white", width=2)
        draw.text((i * tile + 3, tile + 1), word, fill="black", font=font)
    return np.asarray(strip)


class AttentionMaps(pl.Callback):
    """At each validation end, draw per-word attention heatmaps for the first `num_images`
    images of the first validation batch (`val/attention` in the loggers and run_dir/samples)."""

    def __init__(self, num_images: int = 4, max_len: int = 30, tile: int = 160):
        self.num_images, self.max_len, self.tile = num_images, max_len, tile
        self._batch: Any = None
        self._warned = False

    def on_validation_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0) -> None:
        if batch_idx == 0:
            self._batch = batch

    def on_validation_epoch_end(self, trainer, pl_module) -> None:
        batch, self._batch = self._batch, None
        if batch is None or trainer.sanity_checking or not trainer.is_global_zero:
            return
        if not isinstance(getattr(pl_module.model.decoder, "attention", None), torch.nn.Module):
            if not self._warned:
                log.warning("attention maps skipped: %s has no attention module", type(pl_module.model.decoder).__name__)
                self._warned = True
            return
        table = self.table(pl_module.model, pl_module.adapter, batch)
        log_samples(pl_module.loggers, "val/attention", table, pl_module.global_step, pl_module.run_dir)

    def table(self, model, adapter, batch) -> SampleTable:
        n = min(self.num_images, len(batch))
        was_training = model.training
        model.eval()
        try:
            tokens, weights, grid = attention_per_step(model, batch.src[:n], self.max_len)
        finally:
            model.train(was_training)
        eos = model.eos_id
        rows = []
        for i in range(n):
            ids = tokens[i].tolist()
            ids = ids[: ids.index(eos) + 1] if eos in ids else ids
            words = adapter.pieces(ids)
            strip = heatmap_strip(adapter.thumbnail(batch.meta["path"][i]), words, weights[i, : len(ids)].cpu().numpy(), grid, self.tile)
            rows.append([ImageCell(strip), adapter.decode(tokens[i : i + 1])[0]])
        return SampleTable(["attention", "output"], rows)
