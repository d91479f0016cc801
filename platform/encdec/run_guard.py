"""One training process per run directory, and no new run over a trained model."""

from __future__ import annotations

import fcntl
import os
import shutil
from pathlib import Path

from encdec.errors import ConfigError

LOCK_NAME = ".train.lock"


class RunDirectoryLock:
    """An exclusive `flock` on <run_dir>/.train.lock holding the owner's PID. The kernel drops
    it when the process dies (even by kill -9), so a stale lock never blocks a resume."""

    def __init__(self, run_dir: Path) -> None:
        self.path = Path(run_dir) / LOCK_NAME
        self._fd: int | None = None

    def acquire(self) -> "RunDirectoryLock":
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 64, 0).decode(errors="replace").strip() or "unknown"
            os.close(fd)
            raise ConfigError(
                f"{self.path.parent} is in use by another training process (PID {holder}); "
                "wait for it to finish, stop it, or train into another hydra.run.dir"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self._fd = fd
        return self

    def release(self) -> None:
        if self._fd is not None:
            os.ftruncate(self._fd, 0)
            os.close(self._fd)  # closing drops the flock
            self._fd = None

    def __enter__(self) -> "RunDirectoryLock":
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()


def refuse_overwrite(run_dir: Path, resuming: bool, overwrite: bool) -> None:
    """A new run into a directory that already holds checkpoints would replace a trained
    model: refused unless the run resumes it or `overwrite=true` says so."""
    checkpoints = sorted((Path(run_dir) / "checkpoints").glob("*.ckpt"))
    if resuming or not checkpoints:
        return
    if overwrite:
        clear_run_artifacts(run_dir)
        return
    raise ConfigError(
        f"{run_dir} already holds a trained model ({', '.join(p.name for p in checkpoints)}); "
        f"continue it with resume={run_dir}, train into another hydra.run.dir, "
        "or pass overwrite=true to replace it"
    )


# What encdec-train writes into a run directory; `overwrite=true` removes exactly these (never
# anything else a user keeps there) so that the new run shares nothing with the old one.
RUN_ARTIFACTS = ("checkpoints", "csv", "tensorboard", "wandb", "metrics", "samples", "eval", "run_id", "config.yaml")


def clear_run_artifacts(run_dir: Path) -> None:
    run_dir = Path(run_dir)
    for name in RUN_ARTIFACTS:
        target = run_dir / name
        if target.is_dir():
            shutil.rmtree(target)
        elif target.exists():
            target.unlink()
    for tokenizer in run_dir.glob("*tokenizer*.json"):
        tokenizer.unlink()
