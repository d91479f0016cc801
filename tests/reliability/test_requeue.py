"""Preemption under a scheduler: the job's signal saves `last.ckpt`, the scheduler requeues the
job, and the requeued job resumes its own run directory.

Driven through submitit's local executor (the SLURM launcher's local rehearsal): real job
processes, real signals from its controller or from the test, real requeues.
"""

from __future__ import annotations

import csv
import os
import pickle
import re
import signal
import sys
import time
from pathlib import Path

import cloudpickle
import submitit
import torch

from conftest import run_cli, tiny_train_args

# 240 training pairs, 60 per batch: 4 steps an epoch. Training runs until `max_time`, longer
# than the time left in an attempt when its signal comes, so an attempt is stopped mid-training.
TIMEOUT_MIN = 1  # the controller sends SIGUSR2 SIGNAL_DELAY_S before the end of each attempt
SIGNAL_DELAY_S = 42  # so at about 18 s into every attempt, training having started by then
TRAIN_ARGS = [
    "loader.max_sentences=60", "loader.max_tokens=4096", "test_after_training=false",
    "checkpoint_every_minutes=null", "trainer.max_epochs=100000", "trainer.max_time=00:00:00:14",
    "trainer.log_every_n_steps=2",
]


def test_a_preempted_sweep_job_is_requeued_and_resumes_its_run_directory(tiny_corpus, tmp_path):
    args = [a for a in tiny_train_args(tiny_corpus, tmp_path / "unused") if not a.startswith("hydra.run.dir")]
    run_cli("train", "--multirun", *args, *TRAIN_ARGS, f"paths.runs_dir={tmp_path}", "hydra/launcher=slurm_local",
            f"hydra.launcher.timeout_min={TIMEOUT_MIN}", f"hydra.launcher.signal_delay_s={SIGNAL_DELAY_S}")
    [sweep] = (tmp_path / "multirun").glob("*/*")  # the default sweep folder: the requeue found the same
    [job_dir] = (sweep / ".submitit").iterdir()
    job_id, run_dir = job_dir.name, sweep / "0"
    log = "".join(p.read_text() for p in sorted(job_dir.glob("*_log.*")))

    saved = [int(s) for s in re.findall(r"stopped by SIGUSR2: saved last\.ckpt at step (\d+)", log)]
    assert saved and saved[0] > 0, f"the first attempt saved mid-training:\n{log[-3000:]}"
    assert f"Requeued job {job_id}" in log, "submitit requeued the job (its local executor: exit status 144)"
    resumed = [int(s) for s in re.findall(
        rf"requeued job {job_id}: resuming {re.escape(str(run_dir))} from checkpoints/last\.ckpt at step (\d+)", log)]
    assert resumed == saved, "every requeued attempt resumed from the step the one before it saved"

    status, _ = pickle.loads((job_dir / f"{job_id}_0_result.pkl").read_bytes())
    assert status == "success", "the job finished"
    final = torch.load(run_dir / "checkpoints" / "last.ckpt", weights_only=True)["global_step"]
    assert final > saved[-1]
    with open(run_dir / "csv" / "metrics.csv") as f:
        steps = [int(row["step"]) for row in csv.DictReader(f) if row.get("train/loss")]
    assert steps[0] < saved[0] < steps[-1], "the CSV log keeps the rows before the resume and continues"
    assert len(steps) == len(set(steps)), "no step logged twice"


class _WaitsForASignal(submitit.helpers.Checkpointable):
    """A job that sets up encdec-train's signal handling first, then is busy before training
    (as a training job is while it imports, reads data or trains its tokenizer). Requeued, the
    job returns at once."""

    def __call__(self, folder: str) -> str:
        from encdec.fault_tolerance import Preemption

        attempts = Path(folder) / "attempts"
        attempt = len(attempts.read_text()) + 1 if attempts.exists() else 1
        attempts.write_text("x" * attempt)
        if attempt > 1:
            return f"attempt {attempt}"
        Preemption(Path(folder) / "checkpoints" / "last.ckpt").install()
        (Path(folder) / "pid").write_text(str(os.getpid()))
        time.sleep(120)
        return "no signal came"


def test_a_signal_before_training_still_lets_submitit_requeue_the_job(tmp_path):
    cloudpickle.register_pickle_by_value(sys.modules[__name__])  # the job class lives in this test
    try:
        executor = submitit.LocalExecutor(folder=tmp_path / "submitit")
        executor.update_parameters(timeout_min=5)  # no signal from the controller: the test sends it
        job = executor.submit(_WaitsForASignal(), str(tmp_path))
    finally:
        cloudpickle.unregister_pickle_by_value(sys.modules[__name__])
    deadline = time.monotonic() + 120
    while not (tmp_path / "pid").exists():
        assert not job.done(), job.stderr()
        assert time.monotonic() < deadline
        time.sleep(0.05)
    time.sleep(0.1)  # the pid is written after the handlers are installed
    os.kill(int((tmp_path / "pid").read_text()), signal.SIGUSR2)
    assert job.result() == "attempt 2", "the job came back after the signal"
    log = (job.stdout() or "") + (job.stderr() or "")
    assert "SIGUSR2 before training started: exiting now" in log
    assert f"Requeued job {job.job_id}" in log
