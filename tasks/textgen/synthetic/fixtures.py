"""A tiny random oracle in the published oracle's npz format (peaked, so its own samples
score far below random sequences), for tests and smoke runs."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from encdec_tasks.textgen.oracle import ORACLE_ARRAYS


def write_tiny_oracle(path: str | Path, vocab: int = 40, dim: int = 8, seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    shapes = {"embedding": (vocab, dim), "W_out": (dim, vocab), "b_out": (vocab,)}
    arrays = {}
    for name in ORACLE_ARRAYS:
        shape = shapes.get(name, (dim,) if name.startswith("b") else (dim, dim))
        scale = 4.0 if name in ("W_out", "embedding") else 1.0
        arrays[name] = (rng.standard_normal(shape) * scale).astype(np.float32)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(path, **arrays)
    return path


def tiny_data_config(root: str | Path) -> dict:
    path = write_tiny_oracle(Path(root) / "tiny_oracle.npz")
    return {
        "_target_": "encdec_tasks.textgen.data.OracleData",
        "root": str(root),
        "oracle_path": str(path),
        "check_hash": False,
        "sizes": {"train": 128, "val": 16, "test": 16},
        "seq_len": 8,
    }


TINY_TASK_OVERRIDES: list[str] = []
