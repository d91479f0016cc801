"""Whole-file writes that readers see complete or not at all.

A file is written under a private temporary name in its own folder (`.<name>.<random>.tmp`),
flushed to disk, then renamed over the target: a process killed mid-write leaves the previous
file (or none) and a temporary that nothing reads, never a truncated file. Concurrent writers
of one path do not collide; the last rename wins.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path
from typing import IO, Iterator


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def temporary_glob(name: str) -> str:
    """The glob matching the temporaries left by a killed writer of files named `name`."""
    return f".{name}.*.tmp"


def _temporary(path: Path) -> tuple[int, str]:
    return tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")


def check_writable(path: str | Path) -> None:
    """Creates and removes the temporary a write of `path` would start with: raises the
    OSError that write would meet (no folder, no permission), before any work is done."""
    fd, tmp = _temporary(Path(path))
    os.close(fd)
    os.unlink(tmp)


@contextlib.contextmanager
def atomic_open(path: str | Path, mode: str = "w", encoding: str | None = "utf-8") -> Iterator[IO]:
    """`open(path, mode)` whose content replaces `path` only when the block ends normally."""
    if mode not in ("w", "wb"):
        raise ValueError(f"atomic_open writes whole files: mode 'w' or 'wb', got {mode!r}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = _temporary(path)
    try:
        os.fchmod(fd, 0o666 & ~_umask())  # mkstemp makes it private; the result is a normal file
        with os.fdopen(fd, mode, encoding=None if "b" in mode else encoding, newline=None) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_atomic(path: str | Path, data: str | bytes | memoryview, encoding: str = "utf-8") -> None:
    """Writes `data` (text or bytes) as the whole content of `path`, atomically."""
    with atomic_open(path, "w" if isinstance(data, str) else "wb", encoding) as f:
        f.write(data)
