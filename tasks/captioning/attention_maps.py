"""Show, Attend and Tell heatmaps: where a recurrent decoder's attention looks in the image
for each word it generates, drawn over the image and sent to the loggers with the samples.
Each caption is one figure with a fixed number of pixels per word (the figure grows with
the caption), its words as labels, one colour bar and the sample's name, so it reads at
the image's actual size.

The weights are read with a forward hook on the decoder's attention module (it returns
(context, weights) every step), so neither the decoder nor the search knows about it.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
import pytorch_lightning as pl
import torch

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


#: the figure's layout in pixels (at DPI), so a word's tile and its label keep their size
#: whatever the number of words: the figure grows instead
DPI = 100
_LABEL, _GAP, _MARGIN, _TITLE, _NOTE, _COLOUR_BAR = 30, 12, 12, 40, 24, 96
_FONT_PT, _TITLE_PT, _NOTE_PT = 13, 14, 11  # 13 pt at 100 dpi: letters 18 px high


def _label(word: str, tile: int) -> str:
    """A word shortened to what fits over its tile (about 9 px a letter at the label size)."""
    room = max(4, tile // 9)
    return word if len(word) <= room else word[: room - 1] + "\u2026"


def attention_figure(image: np.ndarray, words: list[str], weights: np.ndarray, grid: tuple[int, int], title: str,
                     tile: int = 160, max_words: int = 20, columns: int = 5):
    """One matplotlib Figure per caption: the image once per generated word (the first
    `max_words`, with a note saying how many the caption has), the word's attention over the
    H x W memory grid blended over it, the word above its tile, one colour bar (every tile on
    the same scale: 0 to the caption's largest weight) and `title` (which sample it is).
    Each tile is `tile` pixels square and the words run in rows of `columns`, so the figure
    grows with the caption and a label never shrinks. Render it with `render`."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    shown = list(words[:max_words])
    n = max(1, len(shown))
    cols = min(n, columns)
    rows = -(-n // cols)
    note = f"first {len(shown)} of {len(words)} words shown" if len(words) > len(shown) else ""
    top = _TITLE + (_NOTE if note else 0)
    width = _MARGIN + cols * tile + (cols - 1) * _GAP + _GAP + _COLOUR_BAR
    height = top + rows * (_LABEL + tile) + (rows - 1) * _GAP + _MARGIN
    fig = Figure(figsize=(width / DPI, height / DPI), dpi=DPI)
    FigureCanvasAgg(fig)

    def box(left: float, top_px: float, w: float, h: float) -> list[float]:  # pixels from the top left
        return [left / width, 1 - (top_px + h) / height, w / width, h / height]

    maps = np.asarray(weights[: len(shown)], dtype=float).reshape(len(shown), *grid)
    vmax = float(maps.max()) if maps.size and maps.max() > 0 else 1.0
    extent = (0, image.shape[1], image.shape[0], 0)
    heat = None
    for i, word in enumerate(shown):
        r, c = divmod(i, cols)
        ax = fig.add_axes(box(_MARGIN + c * (tile + _GAP), top + r * (_LABEL + tile + _GAP) + _LABEL, tile, tile))
        ax.imshow(image, extent=extent)
        heat = ax.imshow(maps[i], cmap="inferno", alpha=0.5, vmin=0.0, vmax=vmax, extent=extent, interpolation="bilinear")
        ax.set_axis_off()
        ax.set_title(_label(word, tile), fontsize=_FONT_PT, pad=5)
    if heat is not None:
        grid_height = rows * (_LABEL + tile) + (rows - 1) * _GAP - _LABEL
        bar = fig.add_axes(box(_MARGIN + cols * (tile + _GAP), top + _LABEL, 16, grid_height))
        fig.colorbar(heat, cax=bar).set_label("attention weight", fontsize=_NOTE_PT)
        bar.tick_params(labelsize=_NOTE_PT - 1)
    fig.text(_MARGIN / width, 1 - 8 / height, title, fontsize=_TITLE_PT, va="top", ha="left", weight="bold")
    if note:
        fig.text(_MARGIN / width, 1 - (8 + _TITLE - 6) / height, note, fontsize=_NOTE_PT, va="top", ha="left", color="dimgray")
    return fig


def render(fig) -> np.ndarray:
    """A Figure's pixels: uint8 [H, W, 3]."""
    fig.canvas.draw()
    return np.asarray(fig.canvas.buffer_rgba())[..., :3].copy()


class AttentionMaps(pl.Callback):
    """At each validation end, draw per-word attention heatmaps for the first `num_images`
    images of the first validation batch (`val/attention` in the loggers and run_dir/samples):
    one figure per image (see `attention_figure`), `tile` pixels a word, at most `max_words`
    words in rows of `columns`."""

    def __init__(self, num_images: int = 4, max_len: int = 30, tile: int = 160, max_words: int = 20, columns: int = 2):
        self.num_images, self.max_len, self.tile = num_images, max_len, tile
        self.max_words, self.columns = max_words, columns
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
            path = batch.meta["path"][i]
            fig = attention_figure(adapter.thumbnail(path), adapter.pieces(ids), weights[i, : len(ids)].cpu().numpy(), grid,
                                   f"#{i + 1}  {Path(path).name}", self.tile, self.max_words, self.columns)
            rows.append([ImageCell(render(fig)), adapter.decode(tokens[i : i + 1])[0], Path(path).name])
        return SampleTable(["attention", "output", "file"], rows)
