"""Preemption under a scheduler: the job's signal saves `last.ckpt`, the scheduler requeues the
job, and the requeued job resumes its own run directory.

Driven through submitit's local executor (the SLURM launcher's local rehearsal): real job
processes, real signals, real requeues.
"""

from __future__ import annotations

import csv
import json
import os
import pickle
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import cloudpickle
import submitit
import torch

from conftest import tiny_train_args
from encdec.run_guard import JOB_RECORD, record_job, requeued_job

# 240 training pairs, 60 per batch: 4 steps an epoch; last.ckpt every 4 steps, so the first
# one shows that training is under way.
TRAIN_ARGS = [
    "loader.max_sentences=60", "loader.max_tokens=4096", "trainer.max_epochs=100", "trainer.max_steps=16",
    "test_after_training=false", "checkpoint_every_minutes=null", "checkpoint_every_n_steps=4",
    "trainer.log_every_n_steps=1", "trainer.max_time=00:00:30:00",  # escaped in a sweep job's overrides
]


def test_a_preempted_sweep_job_is_requeued_and_resumes_its_run_directory(tiny_corpus, tmp_path):
    # submitit's local executor sends SIGUSR2 to a job 30 s before its time limit (a fixed
    # delay: the launcher takes no signal_delay_s for it, and whole minutes as timeout_min).
    # The test sends that signal itself once training is under way, to the job's training
    # process (its PID is in the run directory's lock), so the test neither waits for it nor
    # depends on how fast this machine is; the path from the signal on is the same.
    args = [a for a in tiny_train_args(tiny_corpus, tmp_path / "unused") if not a.startswith("hydra.run.dir")]
    proc = subprocess.Popen(
        [sys.executable, "-m", "encdec.cli.train", "--multirun", *args, *TRAIN_ARGS, f"paths.runs_dir={tmp_path}",
         "hydra/launcher=slurm_local", "hydra.launcher.timeout_min=10"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        deadline = time.monotonic() + 300
        while not (found := list((tmp_path / "multirun").glob("*/*/0/checkpoints/last.ckpt"))):
            assert proc.poll() is None, f"the sweep ended before training got under way: {proc.communicate()[1][-3000:]}"
            assert time.monotonic() < deadline, "no last.ckpt after 300 s"
            time.sleep(0.05)
        run_dir = found[0].parents[1]  # the default sweep folder: the requeued job must find the same one
        os.kill(int((run_dir / ".train.lock").read_text()), signal.SIGUSR2)
        stdout, stderr = proc.communicate(timeout=300)
    finally:
        proc.kill()
    assert proc.returncode == 0, stderr[-3000:]
    [result] = (run_dir.parent / ".submitit").glob("*/*_0_result.pkl")  # in .submitit/<job id>/
    job_dir = result.parent
    job_id = job_dir.name
    log = "".join(p.read_text() for p in sorted(job_dir.glob("*_log.*")))

    [saved] = [int(s) for s in re.findall(r"stopped by SIGUSR2: saved last\.ckpt at step (\d+)", log)]
    assert 4 <= saved < 16, f"the first attempt saved mid-training:\n{log[-3000:]}"
    assert f"Requeued job {job_id}" in log, "submitit requeued the job (its local executor: exit status 144)"
    assert log.count("Starting with JobEnvironment") == 2, "a second attempt of the same job ran"
    assert f"requeued job {job_id}: resuming {run_dir} from checkpoints/last.ckpt at step {saved}" in log

    status, _ = pickle.loads(result.read_bytes())
    assert status == "success", "the job finished"
    assert torch.load(run_dir / "checkpoints" / "last.ckpt", weights_only=True)["global_step"] == 16
    with open(run_dir / "csv" / "metrics.csv") as f:
        steps = [int(row["step"]) for row in csv.DictReader(f) if row.get("train/loss")]
    assert steps == list(range(16)), "the CSV log keeps the rows before the resume, continues, and lacks none"


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


def test_only_the_same_job_running_the_same_command_again_is_a_requeue(tmp_path, monkeypatch):
    for var in ("SUBMITIT_EXECUTOR", "SUBMITIT_LOCAL_JOB_ID", "SLURM_JOB_ID", "SLURM_RESTART_COUNT"):
        monkeypatch.delenv(var, raising=False)
    command = ["data=parallel", "optim.optimizer.lr=0.001"]
    monkeypatch.setenv("SLURM_JOB_ID", "41")
    record_job(tmp_path, command)
    assert requeued_job(tmp_path, command) is None, "no last.ckpt: nothing to resume"
    (tmp_path / "checkpoints").mkdir()
    (tmp_path / "checkpoints" / "last.ckpt").write_bytes(b"")
    assert requeued_job(tmp_path, command) == "41"
    assert requeued_job(tmp_path, ["data=parallel", "optim.optimizer.lr=0.003"]) is None, "another run in the same job"
    monkeypatch.setenv("SLURM_JOB_ID", "42")
    assert requeued_job(tmp_path, command) is None, "another job"
    monkeypatch.setenv("SLURM_RESTART_COUNT", "1")
    assert requeued_job(tmp_path, command) == "42", "SLURM says the job was requeued"
    monkeypatch.delenv("SLURM_RESTART_COUNT")
    monkeypatch.setenv("SUBMITIT_EXECUTOR", "local")
    monkeypatch.setenv("SUBMITIT_LOCAL_JOB_ID", "7")
    record_job(tmp_path, command)
    assert json.loads((tmp_path / JOB_RECORD).read_text())["job_id"] == "7", "submitit's job id"
    assert requeued_job(tmp_path, command) == "7"
    for var in ("SUBMITIT_EXECUTOR", "SUBMITIT_LOCAL_JOB_ID", "SLURM_JOB_ID"):
        monkeypatch.delenv(var)
    assert requeued_job(tmp_path, command) is None, "outside a scheduler nothing is a requeue"
    record_job(tmp_path, command)
    assert not (tmp_path / JOB_RECORD).exists()
