"""A training run that can be trusted: resume that resumes, signals that save, a guard
against NaN/inf, one process per run directory, no silent overwrite, a config checked
before any work, and checkpoints that are atomic and read safely.

Each test drives the real `encdec-train` CLI in subprocesses, as a scheduler would.
"""

from __future__ import annotations

import csv
import os
import pickle
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from conftest import run_cli, tiny_train_args

# 240 training pairs, 60 per batch: 4 steps per epoch, so step 6 is in the middle of epoch 1.
COMMON = ["loader.max_sentences=60", "loader.max_tokens=4096", "trainer.max_epochs=100", "test_after_training=false",
          "checkpoint_every_minutes=null"]


def _ckpt(run_dir: Path, name: str = "last") -> dict:
    return torch.load(run_dir / "checkpoints" / f"{name}.ckpt", weights_only=True)


def assert_same_training_state(a: dict, b: dict) -> None:
    assert a["global_step"] == b["global_step"]
    for name, tensor in a["state_dict"].items():
        assert torch.equal(b["state_dict"][name], tensor), f"weights differ at {name}"
    opt_a, opt_b = a["optimizer_states"][0]["state"], b["optimizer_states"][0]["state"]
    for key in opt_a:
        assert torch.equal(opt_b[key]["exp_avg"], opt_a[key]["exp_avg"]), "optimiser moments differ"
    assert a["lr_schedulers"][0]["last_epoch"] == b["lr_schedulers"][0]["last_epoch"]


@pytest.fixture(scope="module")
def straight_run(tiny_corpus, tmp_path_factory):
    """An uninterrupted run of 10 steps, the reference every interrupted run must equal."""
    run_dir = tmp_path_factory.mktemp("straight") / "run"
    run_cli("train", *tiny_train_args(tiny_corpus, run_dir, *COMMON, "trainer.max_steps=10"))
    return run_dir


def test_resume_mid_epoch_with_another_seed_ends_bit_identical(tiny_corpus, tmp_path, straight_run):
    # The resumed process gets another seed: a run restarted from scratch (or from the wrong
    # batch) cannot match the uninterrupted run, only a real resume can.
    split = tmp_path / "split"
    run_cli("train", *tiny_train_args(tiny_corpus, split, *COMMON, "trainer.max_steps=6"))
    assert _ckpt(split)["global_step"] == 6
    resumed = run_cli("train", f"resume={split}", "trainer.max_steps=10", "seed=999")
    log = resumed.stdout + resumed.stderr
    assert f"resuming {split} from checkpoints/last.ckpt at step 6" in log
    assert "continuing epoch 1 after its first 2 batches" in log
    assert_same_training_state(_ckpt(straight_run), _ckpt(split))
    with open(split / "csv/metrics.csv") as f:
        steps = sorted({int(row["step"]) for row in csv.DictReader(f)})
    assert steps[0] < 6 <= steps[-1], "the CSV log keeps the rows before the resume and continues"


def _start(args: list[str]) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "encdec.cli.train", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def _wait_for(path: Path, proc: subprocess.Popen, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert proc.poll() is None, f"training ended before {path.name} appeared: {proc.communicate()[1][-2000:]}"
        assert time.monotonic() < deadline, f"no {path.name} after {timeout} s"
        time.sleep(0.02)


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT, signal.SIGUSR1, signal.SIGUSR2], ids=lambda s: s.name)
def test_a_signal_saves_exits_nonzero_and_the_resumed_run_equals_an_uninterrupted_one(
    signum, tiny_corpus, tmp_path, straight_run
):
    run_dir = tmp_path / "run"
    proc = _start(tiny_train_args(tiny_corpus, run_dir, *COMMON, "trainer.max_steps=10", "checkpoint_every_n_steps=1"))
    _wait_for(run_dir / "checkpoints" / "last.ckpt", proc)  # training is under way
    proc.send_signal(signum)
    stdout, stderr = proc.communicate(timeout=120)
    step = _ckpt(run_dir)["global_step"]
    if step == 10:
        pytest.skip("the run finished before the signal arrived")
    assert proc.returncode == 128 + signum, stderr[-2000:]
    assert f"stopped by {signum.name}: saved last.ckpt at step {step}" in stdout + stderr
    assert "Traceback" not in stderr
    if signum in (signal.SIGINT, signal.SIGUSR1):
        return  # the same save as SIGTERM's; the resume after it is checked for SIGTERM and SIGUSR2
    resumed = run_cli("train", f"resume={run_dir}", "checkpoint_every_n_steps=1")
    assert f"from checkpoints/last.ckpt at step {step}" in resumed.stdout + resumed.stderr
    assert_same_training_state(_ckpt(straight_run), _ckpt(run_dir))


def _kill_9_during_training(run_dir: Path, fresh_args: list[str], rng: random.Random) -> bool:
    """Starts (or resumes) the run, waits until it writes a checkpoint, kills it with SIGKILL
    a random moment later (often mid-write: it saves every step). False once it finished."""
    last = run_dir / "checkpoints" / "last.ckpt"
    since = last.stat().st_mtime_ns if last.exists() else 0
    proc = _start([f"resume={run_dir}", "checkpoint_every_n_steps=1"] if since else fresh_args)
    deadline = time.monotonic() + 120
    while not (last.exists() and last.stat().st_mtime_ns != since):
        if proc.poll() is not None:
            return False
        assert time.monotonic() < deadline
        time.sleep(0.01)
    time.sleep(rng.uniform(0.0, 0.3))
    proc.kill()
    proc.communicate()
    return proc.returncode == -signal.SIGKILL


def test_kill_9_at_random_moments_always_leaves_a_resumable_run(tiny_corpus, tmp_path, straight_run):
    """SIGKILL cannot be caught: what protects the run is the atomic write (a kill mid-write
    leaves the previous last.ckpt) and the lock (released by the kernel). bench/kill9_resume.py
    runs the same with 20 kills."""
    run_dir, rng = tmp_path / "run", random.Random(0)
    fresh = tiny_train_args(tiny_corpus, run_dir, *COMMON, "trainer.max_steps=10", "checkpoint_every_n_steps=1")
    for _ in range(3):
        if not _kill_9_during_training(run_dir, fresh, rng):
            break
        step = _ckpt(run_dir)["global_step"]  # always loadable, whatever moment the kill hit
        assert 1 <= step <= 10
    finish = run_cli("train", f"resume={run_dir}", "checkpoint_every_n_steps=1")
    assert "Traceback" not in finish.stderr
    assert not list((run_dir / "checkpoints").glob("*.tmp")), "temporary files of killed writes are cleaned up"
    assert_same_training_state(_ckpt(straight_run), _ckpt(run_dir))


@pytest.mark.parametrize("damage", ["truncated", "random_bytes", "pickle_payload"])
def test_a_damaged_last_ckpt_stops_resume_with_one_line_and_is_left_alone(damage, straight_run, tmp_path):
    import shutil

    run_dir = tmp_path / "run"
    shutil.copytree(straight_run, run_dir)
    last = run_dir / "checkpoints" / "last.ckpt"
    if damage == "truncated":
        last.write_bytes(last.read_bytes()[: last.stat().st_size // 2])
    elif damage == "random_bytes":
        last.write_bytes(random.Random(0).randbytes(4096))
    else:
        last.write_bytes(pickle.dumps({"state_dict": {}, "payload": subprocess.Popen}))
    before = last.read_bytes()
    proc = run_cli("train", f"resume={run_dir}", "trainer.max_steps=12", check=False)
    assert proc.returncode == 1
    lines = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert lines and f"not a valid encdec checkpoint: {last}" in lines[0], proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr and "weights_only=False" not in proc.stderr
    assert last.read_bytes() == before, "resume never writes over the checkpoint it could not read"
    if damage != "pickle_payload":
        return
    for app, extra in [("evaluate", ["checkpoint=last", "progress=false"]), ("predict", ["checkpoint=last", "input=-"])]:
        other = run_cli(app, f"run_dir={run_dir}", *extra, input="hallo\n", check=False)
        assert other.returncode == 1 and "not a valid encdec checkpoint" in other.stderr, other.stderr[-2000:]
        assert "Traceback" not in other.stderr and "weights_only=False" not in other.stderr


def test_a_diverging_run_stops_nonzero_and_never_writes_nonfinite_weights(tiny_corpus, tmp_path):
    run_dir = tmp_path / "run"
    proc = run_cli("train", *tiny_train_args(tiny_corpus, run_dir, *COMMON, "trainer.max_steps=40",
                                             "optim.optimizer.lr=1e6", "nonfinite.max_skipped=3"), check=False)
    assert proc.returncode == 1
    assert "error: training diverged: non-finite loss at step" in proc.stderr
    assert "lower optim.optimizer.lr (now 1e+06)" in proc.stderr and "Traceback" not in proc.stderr
    assert "step skipped (1 in a row, at most 3)" in proc.stdout + proc.stderr
    for ckpt in (run_dir / "checkpoints").glob("*.ckpt"):
        state = torch.load(ckpt, weights_only=True)["state_dict"]
        assert all(torch.isfinite(t).all() for t in state.values()), f"{ckpt.name} holds NaN/inf"


def test_nonfinite_stop_policy_ends_at_the_first_bad_step(tiny_corpus, tmp_path):
    proc = run_cli("train", *tiny_train_args(tiny_corpus, tmp_path / "run", *COMMON, "trainer.max_steps=40",
                                             "optim.optimizer.lr=1e6", "nonfinite.action=stop"), check=False)
    assert proc.returncode == 1 and "step skipped" not in proc.stdout + proc.stderr
    assert "error: training diverged: non-finite" in proc.stderr


def test_a_second_process_cannot_train_into_a_run_directory_in_use(tiny_corpus, tmp_path):
    run_dir = tmp_path / "run"
    first = _start(tiny_train_args(tiny_corpus, run_dir, *COMMON, "trainer.max_steps=100000"))
    try:
        _wait_for(run_dir / ".train.lock", first)
        time.sleep(0.5)
        second = run_cli("train", *tiny_train_args(tiny_corpus, run_dir, *COMMON, "trainer.max_steps=2"), check=False)
        assert second.returncode == 1
        assert f"is in use by another training process (PID {first.pid})" in second.stderr
    finally:
        first.send_signal(signal.SIGTERM)
        first.communicate(timeout=120)


def test_a_new_run_never_replaces_a_trained_model_unless_asked(tiny_corpus, tmp_path, straight_run):
    import shutil

    run_dir = tmp_path / "run"
    shutil.copytree(straight_run, run_dir)
    before = (run_dir / "checkpoints/last.ckpt").read_bytes()
    again = run_cli("train", *tiny_train_args(tiny_corpus, run_dir, *COMMON, "trainer.max_steps=2"), check=False)
    assert again.returncode == 1 and "already holds a trained model" in again.stderr
    assert f"resume={run_dir}" in again.stderr and "overwrite=true" in again.stderr
    assert (run_dir / "checkpoints/last.ckpt").read_bytes() == before
    run_cli("train", *tiny_train_args(tiny_corpus, run_dir, *COMMON, "trainer.max_steps=2", "overwrite=true"))
    assert _ckpt(run_dir)["global_step"] == 2


CONFIG_MISTAKES = [
    ("+foo=1", "unknown key foo"),
    ("+model.foo=1", "unknown key model.foo"),
    ("+trainer.foo=1", "unknown key trainer.foo"),
    ("+loader.foo=1", "unknown key loader.foo"),
    ("trainer.max_steps=abc", "trainer.max_steps='abc' is not a valid int"),
    ("trainer.max_steps=0", "trainer.max_steps=0 is out of range"),
    ("encoder.layers=two", "encoder.layers='two' is not a valid int"),
    ("loader.max_tokens=0", "loader.max_tokens=0 is out of range"),
    ("loader.max_sentences=0", "loader.max_sentences=0 is out of range"),
    ("optim.optimizer.lr=-1", "optim.optimizer: Invalid learning rate: -1"),
    ("optim.optimizer.lr=0", "optim.optimizer.lr=0 must be a number > 0"),
    ("encoder=vit", "encoder=vit reads pixels but task=translation gives tokens"),
    ("encoder=sasrec", "encoder=sasrec reads items but task=translation gives tokens"),
    ("model.dropout=1.5", "model.dropout=1.5 is out of range"),
    ("nonfinite.max_skipped=-1", "nonfinite.max_skipped=-1 is out of range"),
    ("data.root=???", "data.root"),
]


def _compose_train(overrides: list[str]):
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from hydra.core.hydra_config import HydraConfig

    import encdec.cli  # noqa: F401  (registers the resolvers)
    from conftest import CONF_DIR

    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = compose(config_name="train", overrides=overrides, return_hydra_config=True)
    HydraConfig.instance().set_config(cfg)
    choices = dict(cfg.hydra.runtime.choices)
    with __import__("omegaconf").open_dict(cfg):
        del cfg["hydra"]
    return cfg, choices


@pytest.mark.parametrize("override,message", CONFIG_MISTAKES, ids=[o for o, _ in CONFIG_MISTAKES])
def test_config_mistakes_are_one_config_error_naming_the_key(override, message, tiny_corpus):
    from conftest import CONF_DIR
    from encdec.errors import ConfigError
    from encdec.validation import validate_train_config

    cfg, choices = _compose_train([a for a in tiny_train_args(tiny_corpus, Path("unused")) if not a.startswith("hydra.")] + [override])
    with pytest.raises(ConfigError) as info:
        validate_train_config(cfg, CONF_DIR, choices)
    assert message in str(info.value) and "\n" not in str(info.value)


@pytest.mark.parametrize("override", ["+foo=1", "trainer.max_steps=abc", "encoder=vit"])
def test_config_mistakes_stop_the_cli_before_any_work(override, tiny_corpus, tmp_path):
    run_dir = tmp_path / "run"
    proc = run_cli("train", *tiny_train_args(tiny_corpus, run_dir, override), check=False)
    assert proc.returncode == 1, proc.stderr[-2000:]
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and override.split("=")[0].lstrip("+") in errors[0], proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr
    assert not (run_dir / "tokenizer.json").exists(), "the config was checked before the tokenizer was trained"


def test_every_experiment_preset_passes_validation():
    from conftest import CONF_DIR
    from encdec.validation import validate_train_config

    for preset in sorted(p.stem for p in (CONF_DIR / "experiment").glob("*.yaml")):
        cfg, choices = _compose_train([f"experiment={preset}", "data.root=/unused"] if preset == "unused" else [f"experiment={preset}"])
        validate_train_config(cfg, CONF_DIR, choices)


@pytest.mark.parametrize("override", ["logger=[csv,tensorboard]", "callbacks=[default,ema]", "logger=none"])
def test_several_options_of_one_group_pass_validation(override):
    """A list of group options (as README shows for loggers) is not an unknown key."""
    from conftest import CONF_DIR
    from encdec.validation import validate_train_config

    cfg, choices = _compose_train([override])
    validate_train_config(cfg, CONF_DIR, choices)


def test_a_full_disk_names_enospc_and_keeps_the_previous_checkpoint(tmp_path, monkeypatch):
    """The temporary file is opened on /dev/full, where every write fails with ENOSPC, as on
    a full disk."""
    import tempfile

    from encdec.checkpointing import AtomicCheckpointIO, CheckpointError

    path = tmp_path / "last.ckpt"
    io = AtomicCheckpointIO()
    io.save_checkpoint({"state_dict": {"w": torch.ones(3)}}, path)
    before = path.read_bytes()

    def full_disk(dir, prefix, suffix):
        return os.open("/dev/full", os.O_WRONLY), str(Path(dir) / f"{prefix}x{suffix}")

    monkeypatch.setattr(tempfile, "mkstemp", full_disk)
    with pytest.raises(CheckpointError, match=r"no space left on device \(ENOSPC\) writing .*last\.ckpt"):
        io.save_checkpoint({"state_dict": {"w": torch.zeros(3)}}, path)
    assert path.read_bytes() == before, "the previous checkpoint is kept"


def test_checkpoints_with_nonfinite_weights_are_never_written(tmp_path):
    from encdec.checkpointing import AtomicCheckpointIO, NonFiniteWeightsError

    path = tmp_path / "last.ckpt"
    AtomicCheckpointIO().save_checkpoint({"state_dict": {"w": torch.ones(2)}}, path)
    with pytest.raises(NonFiniteWeightsError, match="hold NaN/inf"):
        AtomicCheckpointIO().save_checkpoint({"state_dict": {"w": torch.tensor([1.0, float("nan")])}}, path)
    assert torch.equal(torch.load(path, weights_only=True)["state_dict"]["w"], torch.ones(2))


def test_every_epoch_gets_its_own_batch_order(tiny_corpus, tmp_path):
    """Lightning calls set_epoch only on a sampler inside a batch sampler; the token-budget
    batch sampler is told its epoch by the DataPosition callback."""
    import pytorch_lightning as pl
    from torch.utils.data import DataLoader

    from encdec.data.bucketing import TokenBudgetBatchSampler
    from encdec.fault_tolerance import DataPosition

    seen: list[list[int]] = []

    class Record(pl.LightningModule):
        def __init__(self):
            super().__init__()
            self.w = torch.nn.Parameter(torch.zeros(1))

        def training_step(self, batch, batch_idx):
            seen.append(int(batch[0]))
            return (self.w * 0).sum()

        def configure_optimizers(self):
            return torch.optim.SGD(self.parameters(), lr=0.1)

    loader = DataLoader(list(range(40)), batch_sampler=TokenBudgetBatchSampler([1] * 40, max_tokens=5, seed=3))
    trainer = pl.Trainer(max_epochs=3, callbacks=[DataPosition()], logger=False, enable_checkpointing=False,
                         enable_progress_bar=False, enable_model_summary=False, default_root_dir=tmp_path)
    trainer.fit(Record(), loader)
    epochs = [seen[i * 8:(i + 1) * 8] for i in range(3)]
    assert len({tuple(e) for e in epochs}) == 3, f"every epoch repeated the same batch order: {epochs}"


def test_a_sigterm_that_reaches_lightnings_own_check_first_still_saves(tmp_path):
    """Lightning stops the loop with SIGTERMException (exit status 0) when the signal lands
    after our step-end check; Preemption then saves in on_exception and train() exits 143."""
    from types import SimpleNamespace

    from pytorch_lightning.utilities.exceptions import SIGTERMException

    from encdec.fault_tolerance import Preemption

    saved = []
    trainer = SimpleNamespace(global_step=7, save_checkpoint=saved.append)
    callback = Preemption(tmp_path / "checkpoints" / "last.ckpt")
    callback.on_fit_start(trainer, None)
    callback.received = signal.SIGTERM
    callback.on_exception(trainer, None, SIGTERMException())
    assert saved == [tmp_path / "checkpoints" / "last.ckpt"]
    assert callback.exit_status() == 128 + signal.SIGTERM
    callback.on_exception(trainer, None, SIGTERMException())
    assert len(saved) == 1, "saved once"
