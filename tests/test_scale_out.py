"""Beyond one process: trainer presets, DDP with the CSV logger, two "nodes" under torchrun on
loopback, submitit and Optuna sweeps with their summary table."""

import csv
import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra

import encdec.cli  # noqa: F401  (registers the first_set resolver)
from conftest import CONF_DIR, run_cli, tiny_train_args
from encdec.errors import ConfigError
from encdec.sweep import optimized_value, summarize_sweep

pytest.importorskip("hydra_plugins.hydra_optuna_sweeper", reason="needs the cluster extra")

# every rank sees several evaluation batches (Lightning refuses a rank without one)
SMALL_BATCHES = ["loader.max_tokens=512", "loader.eval_max_tokens=64"]


def _csv_rows(run_dir: Path) -> list[dict[str, str]]:
    with open(run_dir / "csv/metrics.csv") as f:
        return list(csv.DictReader(f))


def _curve(rows: list[dict[str, str]], key: str) -> list[float]:
    return [float(r[key]) for r in rows if r.get(key)]


def test_trainer_arguments_are_plain_keys_in_every_preset():
    """`trainer.strategy=...`, `trainer.max_time=...` need no `+`, and every preset is a valid
    set of Trainer keyword arguments."""
    import inspect

    import pytorch_lightning as pl

    accepted = set(inspect.signature(pl.Trainer.__init__).parameters)
    for preset in ["default", "ddp_cpu", "ddp", "fsdp", "gpu_bf16", "gpu_fp16", "multinode"]:
        GlobalHydra.instance().clear()
        with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
            cfg = compose("train", [f"trainer={preset}", "trainer.max_time=00:01:00:00", "trainer.profiler=simple",
                                    "trainer.limit_val_batches=0.5", "trainer.val_check_interval=100"])
        assert set(cfg.trainer) <= accepted, set(cfg.trainer) - accepted
        assert cfg.trainer.max_time == "00:01:00:00" and cfg.trainer.use_distributed_sampler is False
    assert cfg.trainer.num_nodes == 2 and cfg.trainer.strategy == "ddp"


def test_gpu_precision_presets_are_bf16_autocast_or_fp16_with_a_gradient_scaler():
    """What Lightning builds from each preset on a GPU: its mixed-precision plugin for CUDA,
    with a gradient scaler for fp16 only; float32 matmuls on TF32 (model.float32_matmul_precision)."""
    from pytorch_lightning.plugins.precision import MixedPrecision

    for preset, precision, scaled in [("gpu_bf16", "bf16-mixed", False), ("gpu_fp16", "16-mixed", True)]:
        GlobalHydra.instance().clear()
        with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
            cfg = compose("train", [f"trainer={preset}"])
        assert cfg.trainer.accelerator == "gpu" and cfg.trainer.devices == 1 and cfg.trainer.precision == precision
        plugin = MixedPrecision(cfg.trainer.precision, device="cuda")
        assert (plugin.scaler is not None) == scaled, preset
        assert cfg.model.float32_matmul_precision == "high"


def test_the_progress_callback_survives_a_ddp_spawn_launch():
    """trainer=ddp_cpu with the default callbacks: ddp_spawn pickles them into its workers, and
    the progress callback's lock and ticker thread cannot be pickled; each worker makes its own."""
    import io
    import pickle

    from encdec.progress import RunProgress

    shipped = pickle.loads(pickle.dumps(RunProgress(every_seconds=3, plain=True)))
    assert shipped.every_seconds == 3 and shipped.plain is True
    shipped.stream = io.StringIO()
    shipped._write("step 1")
    assert shipped.stream.getvalue() == "step 1\n"


def test_slurm_launcher_preset_runs_one_task_per_gpu():
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = compose("train", ["hydra/launcher=slurm", "hydra.launcher.partition=gpu", "hydra.launcher.gpus_per_node=4"],
                      return_hydra_config=True)
    launcher = cfg.hydra.launcher
    assert launcher._target_.endswith("SlurmLauncher") and launcher.partition == "gpu"
    assert launcher.tasks_per_node == 4 and launcher.max_num_timeout > 0 and launcher.signal_delay_s > 0


def test_ddp_cpu_with_the_csv_logger_logs_train_val_and_test(tiny_corpus, tmp_path):
    run_dir = tmp_path / "ddp"
    run_cli("train", *tiny_train_args(tiny_corpus, run_dir, "trainer=ddp_cpu", "trainer.max_epochs=1",
                                      "trainer.log_every_n_steps=1", *SMALL_BATCHES))
    rows = _csv_rows(run_dir)
    assert _curve(rows, "train/loss") and _curve(rows, "val/loss") and _curve(rows, "val/sacrebleu")
    assert len(_curve(rows, "test/loss")) == 1 and len(_curve(rows, "test/sacrebleu")) == 1


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_nodes_under_torchrun_equal_one_process_with_the_same_global_batch(tiny_corpus, tmp_path, monkeypatch):
    """Two torchrun "nodes" (one process each, gloo, loopback) train exactly as one process that
    accumulates two batches per step: the token-budget sampler gives rank r every 2nd batch from
    r, one process takes the same pairs in order. Dropout off: its masks differ per process."""
    monkeypatch.setenv("OMP_NUM_THREADS", "1")  # the same float reductions in every process
    # validation after every optimiser step (a third of the epoch), over the whole split
    same = ["trainer.max_epochs=1", "trainer.log_every_n_steps=1", "model.dropout=0", "trainer.val_check_interval=0.34",
            *SMALL_BATCHES]
    single = tmp_path / "single"
    # 7 batches of 512 tokens: two ranks use 3 each (equal counts), so one process uses 6
    run_cli("train", *tiny_train_args(tiny_corpus, single, *same, "trainer.accumulate_grad_batches=2",
                                      "trainer.limit_train_batches=6"))

    multi = tmp_path / "multi"
    args = tiny_train_args(tiny_corpus, multi, *same, "trainer=multinode", "trainer.accelerator=cpu",
                           "trainer.devices=1", "trainer.precision=32-true")
    # rank 0's worker starts 2 s late, so without the barrier rank 1 would write the tokenizer
    slow = tmp_path / "slow_rank0"
    slow.mkdir()
    (slow / "sitecustomize.py").write_text(
        "import os, time\nif os.environ.get('RANK') == '0' and 'TORCHELASTIC_RUN_ID' in os.environ:\n    time.sleep(2)\n")
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(slow), os.environ.get("PYTHONPATH")])))
    port = _free_port()
    nodes = [
        subprocess.Popen(
            [sys.executable, "-m", "torch.distributed.run", "--nnodes=2", "--nproc-per-node=1",
             f"--node-rank={rank}", "--master-addr=127.0.0.1", f"--master-port={port}",
             "-m", "encdec.cli.train", *args],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        )
        for rank in (0, 1)
    ]
    logs = [node.communicate(timeout=300)[0] for node in nodes]
    assert [n.returncode for n in nodes] == [0, 0], logs[0][-3000:] + logs[1][-3000:]
    # rank 0 trains the tokenizer, rank 1 reads it (without the barrier whichever process comes
    # first trains it, and a reader can catch the file half written)
    assert [log.count("built tokenizer.json") for log in logs] == [1, 0]

    # one run directory, one set of checkpoints; the weights equal the single process's
    assert sorted(p.name for p in tmp_path.iterdir()) == ["multi", "single", "slow_rank0"]
    assert sorted(p.name for p in (multi / "checkpoints").iterdir()) == ["best.ckpt", "last.ckpt"]
    a = torch.load(single / "checkpoints/last.ckpt", weights_only=True)
    b = torch.load(multi / "checkpoints/last.ckpt", weights_only=True)
    assert a["global_step"] == b["global_step"] == 3
    weight_diff = max((a["state_dict"][k] - b["state_dict"][k]).abs().max().item() for k in a["state_dict"])
    # the loss curve: validation loss after every optimiser step, over the whole split
    one, two = _csv_rows(single), _csv_rows(multi)
    val_one, val_two = _curve(one, "val/loss"), _curve(two, "val/loss")
    assert len(val_one) == len(val_two) == 3
    loss_diff = max(abs(x - y) for x, y in zip(val_one, val_two))
    print(f"two nodes vs one process: max val/loss difference {loss_diff:.2e}, max weight difference {weight_diff:.2e}")
    assert loss_diff < 1e-4 and weight_diff < 1e-5
    assert _curve(one, "test/loss") == pytest.approx(_curve(two, "test/loss"), abs=1e-4)
    # metrics scored once, over the whole split (both ranks' halves gathered)
    for split, n in [("val", 24), ("test", 24)]:
        protocol = json.loads((multi / f"metrics/{split}.json").read_text())["sacrebleu"]["protocol"]
        assert f"{split} split, {n} segments" in protocol


def test_two_job_sweep_on_the_local_submitit_executor(tiny_corpus, tmp_path):
    sweep = tmp_path / "sweep"
    args = [a for a in tiny_train_args(tiny_corpus, tmp_path / "unused") if not a.startswith("hydra.run.dir")]
    run_cli("train", "--multirun", *args, f"hydra.sweep.dir={sweep}", "hydra/launcher=slurm_local",
            "trainer.max_epochs=1", "test_after_training=false", "optim.optimizer.lr=1e-3,3e-3")
    assert len(list((sweep / ".submitit").glob("*/*_result.pkl"))) == 2, "each job ran as a submitit job"
    rows = list(csv.DictReader(open(sweep / "sweep_summary.csv")))
    assert [r["params"] for r in rows] == ["optim.optimizer.lr=0.001", "optim.optimizer.lr=0.003"]
    assert all(r["metric"] == "val/sacrebleu" and r["value"] for r in rows), "the task's monitor by default"


def test_optuna_sweep_of_two_trials_names_the_best(tiny_corpus, tmp_path):
    sweep = tmp_path / "sweep"
    args = [a for a in tiny_train_args(tiny_corpus, tmp_path / "unused") if not a.startswith("hydra.run.dir")]
    run_cli("train", "--multirun", *args, f"hydra.sweep.dir={sweep}", "hydra/sweeper=encdec_optuna",
            "hydra.sweeper.n_trials=2", "hydra.sweeper.direction=minimize", "optimized_metric=val/loss",
            "optim.optimizer.lr=tag(log, interval(1e-3, 3e-2))", "trainer.max_epochs=1", "test_after_training=false")
    rows = list(csv.DictReader(open(sweep / "sweep_summary.csv")))
    assert [r["trial"] for r in rows] == ["0", "1"]
    values = [float(r["value"]) for r in rows]
    for r in rows:  # each value is the job's own last val/loss
        assert float(r["value"]) == pytest.approx(_curve(_csv_rows(Path(r["run_dir"])), "val/loss")[-1])
        assert r["params"].startswith("optim.optimizer.lr=")
    best = rows[values.index(min(values))]
    assert [r["best"] for r in rows].count("True") == 1 and best["best"] == "True"
    summary = (sweep / "sweep_summary.md").read_text()
    assert f"Best: trial {best['trial']}, val/loss" in summary and best["run_dir"] in summary
    assert yaml.safe_load((sweep / "optimization_results.yaml").read_text())["best_value"] == pytest.approx(min(values))


def test_an_optimized_metric_never_logged_stops_the_first_trial(tiny_corpus, tmp_path):
    sweep = tmp_path / "sweep"
    args = [a for a in tiny_train_args(tiny_corpus, tmp_path / "unused") if not a.startswith("hydra.run.dir")]
    proc = run_cli("train", "--multirun", *args, f"hydra.sweep.dir={sweep}", "hydra/sweeper=encdec_optuna",
                   "hydra.sweeper.n_trials=2", "optimized_metric=val/blue", "optim.optimizer.lr=choice(1e-3, 2e-3)",
                   "trainer.max_steps=1", "test_after_training=false", check=False)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert "optimized_metric=val/blue was never logged" in proc.stderr and "train/loss" in proc.stderr
    assert not (sweep / "1").exists(), "stops at the first trial"


def test_optimized_value_defaults_to_the_monitor_and_checks_the_direction(tmp_path):
    metrics = {"val/sacrebleu": 12.5, "val/loss": 3.0}
    assert optimized_value(metrics, None, "val/sacrebleu", "max", tmp_path) == 12.5
    assert json.loads((tmp_path / "metrics/optimized.json").read_text()) == \
        {"metric": "val/sacrebleu", "value": 12.5, "mode": "max"}
    assert optimized_value(metrics, "val/loss", "val/sacrebleu", "max", tmp_path, "minimize") == 3.0
    with pytest.raises(ConfigError, match="set hydra.sweeper.direction=maximize"):
        optimized_value(metrics, None, "val/sacrebleu", "max", tmp_path, "minimize")
    with pytest.raises(ConfigError, match="one of: val/loss, val/sacrebleu"):
        optimized_value(metrics, "val/bleu", "val/sacrebleu", "max", tmp_path)
    # a plain run or a grid sweep does not need the value: a warning, no error
    assert optimized_value(metrics, "val/bleu", "val/sacrebleu", "max", tmp_path, required=False) is None


def test_sweep_summary_lists_failed_jobs_and_picks_the_best_by_the_metric_mode(tmp_path):
    for trial, lr, value in [("0", "1e-3", 0.25), ("1", "3e-3", 0.5), ("2", "1e-2", None)]:
        job = tmp_path / trial
        (job / ".hydra").mkdir(parents=True)
        (job / ".hydra/overrides.yaml").write_text(yaml.safe_dump(["seed=1", f"optim.optimizer.lr={lr}"]))
        if value is not None:
            (job / "metrics").mkdir()
            (job / "metrics/optimized.json").write_text(json.dumps({"metric": "val/ndcg@10", "value": value, "mode": "max"}))
    rows = summarize_sweep(tmp_path)
    assert [r["params"] for r in rows] == ["optim.optimizer.lr=1e-3", "optim.optimizer.lr=3e-3", "optim.optimizer.lr=1e-2"]
    assert [r["best"] for r in rows] == [False, True, False]
    text = (tmp_path / "sweep_summary.md").read_text()
    assert "Best: trial 1, val/ndcg@10 = 0.5 (maximize)" in text and "failed or unfinished" in text
    assert [r["best"] for r in summarize_sweep(tmp_path, "minimize")] == [True, False, False]


def _save_sharded(rank: int, world: int, checkpoint_file: str, folder: str, port: int) -> None:
    """Writes a Lightning checkpoint the way a sharded strategy does (Lightning's FSDPStrategy
    with state_dict_type="sharded"): every weight split along dim 0 across the processes
    (FSDP's layout), saved with torch.distributed.checkpoint under `model`, the rest in meta.pt."""
    import torch.distributed as dist
    import torch.distributed.checkpoint as dcp
    from torch.distributed.tensor import Shard, distribute_tensor, init_device_mesh

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=world)
    mesh = init_device_mesh("cpu", (world,))
    checkpoint = torch.load(checkpoint_file, weights_only=True)
    sharded = {k: distribute_tensor(v, mesh, [Shard(0)]) for k, v in checkpoint.pop("state_dict").items()}
    assert all(v.to_local().shape[0] < v.shape[0] for v in sharded.values() if v.shape[0] > 1), "really sharded"
    checkpoint.pop("optimizer_states", None)
    dcp.save({"model": sharded}, checkpoint_id=folder)
    if rank == 0:
        torch.save(checkpoint, Path(folder) / "meta.pt")
    dist.destroy_process_group()


def test_a_sharded_checkpoint_folder_loads_on_one_process_in_eval(tiny_corpus, tmp_path):
    """Lightning's FSDPStrategy needs a GPU (none here), so the sharded checkpoint is written by
    two CPU processes with DTensor shards, in the layout that strategy saves; encdec-eval then
    reads it on one process."""
    from encdec.checkpointing import load_weights

    run_dir = tmp_path / "run"
    run_cli("train", *tiny_train_args(tiny_corpus, run_dir, "trainer.max_epochs=1"))
    best = run_dir / "checkpoints/best.ckpt"
    full = load_weights(best)
    folder = tmp_path / "sharded.ckpt"
    torch.multiprocessing.spawn(_save_sharded, args=(2, str(best), str(folder), _free_port()), nprocs=2)
    assert sorted(p.name for p in folder.glob("*.distcp")) == ["__0_0.distcp", "__1_0.distcp"]

    consolidated = load_weights(folder)
    assert consolidated.keys() == full.keys()
    assert all(torch.equal(consolidated[k], full[k]) for k in full)
    best.unlink()
    folder.rename(best)  # checkpoints/best.ckpt is now the sharded folder
    proc = run_cli("evaluate", f"run_dir={run_dir}", "split=test")
    assert "Traceback" not in proc.stderr
    scored = json.loads(next((run_dir / "eval").glob("*/results.json")).read_text())["metrics"]
    trained = json.loads((run_dir / "metrics/test.json").read_text())
    assert scored["test/sacrebleu"] == pytest.approx(trained["sacrebleu"]["value"])


def test_processes_of_one_torchrun_launch_without_a_shared_run_dir_stop_with_one_line(tiny_corpus, tmp_path):
    """Each process would name its own timestamped run directory: refused before any work."""
    args = [a for a in tiny_train_args(tiny_corpus, tmp_path / "unused") if not a.startswith("hydra.run.dir")]
    proc = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node=2",
         "-m", "encdec.cli.train", *args, f"paths.runs_dir={tmp_path / 'runs'}", "trainer=ddp",
         "trainer.accelerator=cpu", "trainer.devices=2", "trainer.precision=32-true"],
        capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode != 0
    output = proc.stdout + proc.stderr
    assert "error: the 2 processes of this launch got 2 different run directories" in output
    assert "give them one with hydra.run.dir=" in output
    assert not list((tmp_path / "runs").rglob("tokenizer.json")), "stopped before any work"


def test_a_worker_closes_its_gloo_group_before_the_interpreter_shuts_down(tmp_path):
    """A gloo group still open at interpreter shutdown can abort a finished ddp_spawn worker
    (SIGABRT, "terminate called without an active exception"): the module's setup registers
    the group's destruction at exit. The probe is registered first, so it runs last."""
    script = f"""
import atexit, torch, torch.distributed as dist
dist.init_process_group("gloo", init_method="file://{tmp_path}/store", rank=0, world_size=1)
atexit.register(lambda: print("open at exit:", dist.is_initialized()))
from encdec.lightning_module import EncDecModule
EncDecModule.setup(None, "fit")
"""
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "open at exit: False" in out.stdout
