"""Padding helpers every token-sequence adapter's `collate` shares."""

from __future__ import annotations

from typing import Sequence

import torch
from torch import Tensor
from torch.nn.utils.rnn import pad_sequence


def pad_source(sequences: Sequence[Tensor], pad_id: int) -> tuple[Tensor, Tensor]:
    """Token id sequences -> (ids [B,S] right-padded, mask [B,S] True on real tokens)."""
    ids = pad_sequence(list(sequences), batch_first=True, padding_value=pad_id)
    lengths = torch.tensor([len(s) for s in sequences])
    return ids, torch.arange(ids.size(1))[None, :] < lengths[:, None]


def teacher_forcing(targets: Sequence[Tensor], bos_id: int, eos_id: int, pad_id: int) -> tuple[Tensor, Tensor]:
    """Target sequences -> (decoder input `<bos> y`, expected output `y <eos>`), both padded."""
    bos, eos = torch.tensor([bos_id]), torch.tensor([eos_id])
    tgt_in = pad_sequence([torch.cat([bos, t]) for t in targets], batch_first=True, padding_value=pad_id)
    tgt_out = pad_sequence([torch.cat([t, eos]) for t in targets], batch_first=True, padding_value=pad_id)
    return tgt_in, tgt_out
