"""Every task adapter wired in conf/task/ passes the same contract checks on its own fixture.

An adapter package ships `fixtures.py` with `tiny_data_config(root)` (its data config on a
tiny corpus it writes in the task's real format) and `TINY_TASK_OVERRIDES`. A new adapter
is covered here the day its yaml lands.
"""

import importlib
import math

import pytest
import torch
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from omegaconf import OmegaConf

import encdec.cli  # noqa: F401
from conftest import CONF_DIR, TINY_MODEL
from encdec.build import build_adapter, build_model
from encdec.decoding import Greedy
from encdec.objectives import MLE
from encdec.task import MetricReport, TaskAdapter
from encdec.types import Batch, EncoderOutput

TASKS = sorted(p.stem for p in (CONF_DIR / "task").glob("*.yaml"))


def _fixtures(task: str):
    target = OmegaConf.load(CONF_DIR / "task" / f"{task}.yaml").adapter._target_
    package = target.rsplit(".", 1)[0]
    while package:
        try:
            return importlib.import_module(f"{package}.fixtures")
        except ModuleNotFoundError:
            package = package.rpartition(".")[0]
    pytest.fail(f"task {task}: its adapter package ships no fixtures.py with tiny_data_config(root)")


@pytest.fixture(params=TASKS)
def task_setup(request, tmp_path):
    task = request.param
    fixtures = _fixtures(task)
    data_cfg = fixtures.tiny_data_config(tmp_path / "data")
    # TINY_MODEL's task.* overrides (a tokenizer size) apply only to tasks that have the key
    task_cfg = OmegaConf.create({"task": OmegaConf.load(CONF_DIR / "task" / f"{task}.yaml")})
    tiny = [o for o in TINY_MODEL if not o.startswith("task.") or OmegaConf.select(task_cfg, o.split("=")[0]) is not None]
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = compose("train", overrides=[f"task={task}", *tiny, *fixtures.TINY_TASK_OVERRIDES])
    cfg.data = OmegaConf.create(data_cfg)
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    adapter = build_adapter(cfg)
    adapter.setup(run_dir, stage="fit")
    return cfg, adapter, run_dir


def test_adapter_contract(task_setup):
    cfg, adapter, run_dir = task_setup
    assert isinstance(adapter, TaskAdapter)
    assert adapter.monitor_mode in {"min", "max"} and "/" in adapter.monitor
    ids = adapter.special_ids()
    assert set(ids) == {"bos_id", "eos_id", "pad_id"} and len(set(ids.values())) == 3

    for split in ["train", "val", "test"]:
        examples = adapter.examples(split)
        assert len(examples) > 0, split
        assert all(adapter.length(e) > 0 for e in examples)

    examples = list(adapter.examples("val"))[:5]
    batch = adapter.collate(examples)
    assert isinstance(batch, Batch) and len(batch) == len(examples)
    assert batch.tgt_in.shape == batch.tgt_out.shape and batch.tgt_in.size(0) == len(examples)
    assert (batch.tgt_in[:, 0] == ids["bos_id"]).all(), "targets start with BOS"
    assert ((batch.tgt_out == ids["eos_id"]).sum(1) == 1).all(), "one EOS per target"
    refs = adapter.references(batch)
    assert len(refs) == len(examples)

    model = build_model(cfg, adapter)
    enc = model.encode(batch.src, batch.src_mask)
    assert isinstance(enc, EncoderOutput) and enc.memory.shape[:2] == enc.memory_mask.shape
    loss, logs = MLE(0.1).loss(model, batch)
    assert math.isfinite(float(loss.detach())) and "nll" in logs
    loss.backward()

    hyps = Greedy(max_len=8)(model.eval(), batch.src, batch.src_mask)
    outputs = adapter.decode(hyps.best())
    assert len(outputs) == len(examples)
    report = adapter.metrics(outputs, refs, "val")
    assert isinstance(report, MetricReport) and report.values
    assert set(report.protocol) == set(report.values), "every metric is reported with its protocol"
    perfect = adapter.metrics(refs, refs, "val")
    higher_better = adapter.monitor_mode == "max"
    key = adapter.monitor.split("/", 1)[1]
    if key in perfect.values:
        assert (perfect.values[key] >= report.values[key]) == higher_better or perfect.values[key] == report.values[key]

    rewards = adapter.reward(batch.meta.get("source", [None] * len(refs)), refs, refs)
    assert len(rewards) == len(refs) and all(isinstance(r, float) for r in rewards)

    table = adapter.samples(batch, outputs, limit=3)
    assert len(table.rows) == 3 and all(len(r) == len(table.columns) for r in table.rows)

    # vocabularies saved with the run reload identically for eval and predict
    fresh = build_adapter(cfg)
    fresh.setup(run_dir, stage="eval")
    again = fresh.collate(list(fresh.examples("val"))[:5])
    assert torch.equal(again.src, batch.src) and torch.equal(again.tgt_out, batch.tgt_out)
