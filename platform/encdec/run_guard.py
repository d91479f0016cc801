"""One training process per run directory, no new run over a trained model, and the scheduler
job that trains into it (so that a requeued job continues its own run)."""

from __future__ import annotations

import fcntl
import json
import os
import shutil
from pathlib import Path
from typing import Sequence

from encdec.atomic_file import write_atomic
from encdec.errors import ConfigError

LOCK_NAME = ".train.lock"
JOB_RECORD = "scheduler_job.json"  # the scheduler job training into the run directory, and its command


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


def scheduler_job_id() -> str | None:
    """The id of the scheduler job this process belongs to, None outside one. Every attempt of a
    requeued job has the same id (SLURM keeps a requeued job's id; submitit's local executor
    restarts the task under the same controller, whose process id is its job id, unique among
    running jobs). submitit's id is the one naming the job's log folder (`.submitit/<id>/`;
    `<array id>_<task>` in an array)."""
    if os.environ.get("SUBMITIT_EXECUTOR"):
        try:
            import submitit

            return str(submitit.JobEnvironment().job_id)
        except (ImportError, RuntimeError, KeyError):
            pass  # not a submitit job after all: the scheduler's own variable below
    return os.environ.get("SLURM_JOB_ID") or None


def requeued_job(run_dir: Path, command: Sequence[str]) -> str | None:
    """The job id when this start is a requeue of the job that wrote the run directory's
    `last.ckpt`: a scheduler restarting a preempted or timed-out job runs the same command (the
    same overrides) under the same job id into the same directory, and must continue its run,
    not be refused as an overwrite. Another command in the same job (a second encdec-train in an
    interactive allocation) is not a requeue. SLURM's restart count says so too (a requeued
    sbatch script started without submitit)."""
    run_dir = Path(run_dir)
    if not (run_dir / "checkpoints" / "last.ckpt").exists():
        return None
    job = scheduler_job_id()
    if int(os.environ.get("SLURM_RESTART_COUNT", "0") or 0) > 0:
        return job or "unknown"
    try:
        recorded = json.loads((run_dir / JOB_RECORD).read_text())
    except (OSError, ValueError):
        return None
    return job if job is not None and recorded == {"job_id": job, "command": list(command)} else None


def record_job(run_dir: Path, command: Sequence[str]) -> None:
    """Notes the scheduler job now training into `run_dir` and its command (removes the note
    outside a scheduler): only a later start of this very job resumes by itself."""
    record, job = Path(run_dir) / JOB_RECORD, scheduler_job_id()
    if job is None:
        record.unlink(missing_ok=True)
        return
    write_atomic(record, json.dumps({"job_id": job, "command": list(command)}, indent=1) + "\n")


# What encdec-train writes into a run directory; `overwrite=true` removes exactly these (never
# anything else a user keeps there) so that the new run shares nothing with the old one.
RUN_ARTIFACTS = ("checkpoints", "csv", "tensorboard", "wandb", "metrics", "samples", "eval", "run_id", JOB_RECORD, "config.yaml")


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
