"""Checkpoints saved by a sharded strategy, read on one process.

Lightning's FSDPStrategy with state_dict_type="sharded" (and its ModelParallelStrategy) saves a
checkpoint as a folder named like the file would be (`last.ckpt/`): the shards of the weights and
optimiser states in torch.distributed.checkpoint format (`*.distcp` + `.metadata`), under the keys
`model` and `optimizer_<i>`, and the rest of the checkpoint in `meta.pt`. Lightning's own
consolidation (`python -m pytorch_lightning.utilities.consolidate_checkpoint <folder>`) turns it
into a regular checkpoint; this module does the same in memory, so encdec-eval / encdec-predict /
init_from load such a folder like a file, without a process group.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from lightning_fabric.utilities.load import _load_distributed_checkpoint
from pytorch_lightning.utilities.consolidate_checkpoint import _format_checkpoint


def is_sharded_checkpoint(path: str | Path) -> bool:
    return Path(path).is_dir() and (Path(path) / ".metadata").is_file()


def read_sharded_checkpoint(folder: str | Path) -> dict[str, Any]:
    """The checkpoint dict (state_dict, optimizer_states, global_step...) of a sharded folder,
    consolidated on this process (all of it must fit in CPU memory)."""
    return _format_checkpoint(_load_distributed_checkpoint(Path(folder)))
