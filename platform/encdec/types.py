"""The two data contracts every axis speaks: what an encoder returns and what a batch holds."""

from __future__ import annotations

from dataclasses import dataclass, field, fields, replace
from typing import Any

import torch
from torch import Tensor


@dataclass
class EncoderOutput:
    """What every encoder returns and every decoder consumes.

    memory:      [B, S, D] vectors the decoder attends over (tokens, image regions, items).
    memory_mask: [B, S] bool, True where memory is real (image encoders: all True).
    summary:     optional [B, D] vector to initialise recurrent decoders; when absent they
                 use the masked mean of memory.
    src_ids:     optional [B, S] source token ids, for copy attention over the source.
    group_size:  rows come in groups of this many copies of one source (beam search and
                 multi-sample decoding expand each source); a decoder may keep per-source
                 tensors once per group, since searches only reorder rows within a group.
    grid:        optional (H, W) when the memory is an image grid read row-major (S = H*W),
                 e.g. to draw attention weights over the image.
    """

    memory: Tensor
    memory_mask: Tensor
    summary: Tensor | None = None
    src_ids: Tensor | None = None
    group_size: int = 1
    grid: tuple[int, int] | None = None

    def index_select(self, index: Tensor) -> "EncoderOutput":
        """Rows `index` of every tensor (the result has group_size 1)."""
        rows = {
            f.name: v.index_select(0, index)
            for f in fields(self)
            for v in [getattr(self, f.name)]
            if isinstance(v, Tensor)
        }
        return replace(self, **rows, group_size=1)

    def repeat_interleave(self, n: int) -> "EncoderOutput":
        """Each source n times in a row: the rows beam search and sampling decode."""
        index = torch.arange(self.memory.size(0), device=self.memory.device).repeat_interleave(n)
        return replace(self.index_select(index), group_size=self.group_size * n)


def sources_of_rows(index: Tensor, group: int, sources: int) -> Tensor | None:
    """For a decoder that keeps per-source tensors once per group of `group` rows: which
    sources the new rows `index` come from (one id per new group), or None when that is every
    source in order (nothing to select). Searches move rows only within their source's group;
    any other move is a bug in the search, refused here."""
    if group == 1:
        return None if index.numel() == sources and torch.equal(index, torch.arange(sources, device=index.device)) else index
    groups = torch.div(index, group, rounding_mode="floor")
    if index.numel() % group or not bool((groups.view(-1, group) == groups[::group, None]).all()):
        raise ValueError("reorder moved a row to another source's group (group_size > 1)")
    picked = groups[::group]
    if picked.numel() == sources and torch.equal(picked, torch.arange(sources, device=picked.device)):
        return None
    return picked


@dataclass
class Batch:
    """A collated batch. `src` is whatever the encoder reads (token ids, pixels, item ids).

    tgt_in / tgt_out are the teacher-forcing input (BOS + y) and target (y + EOS), padded
    with the target pad id. `meta` carries per-example things the adapter needs to score
    outputs (raw references, ids, images for display); it never reaches the model.
    """

    src: Tensor
    src_mask: Tensor | None = None
    tgt_in: Tensor | None = None
    tgt_out: Tensor | None = None
    meta: dict[str, Any] = field(default_factory=dict)

    def __len__(self) -> int:
        return self.src.size(0)

    def to(self, device: torch.device | str) -> "Batch":
        move = lambda t: None if t is None else t.to(device, non_blocking=True)  # noqa: E731
        return replace(
            self,
            src=move(self.src),
            src_mask=move(self.src_mask),
            tgt_in=move(self.tgt_in),
            tgt_out=move(self.tgt_out),
        )
