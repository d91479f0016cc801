"""The task adapter contract, as checks any package can run on its own adapters.

An adapter package ships `fixtures.py` beside its adapter (or in a parent package) with
`tiny_data_config(root) -> dict` (its `data` config on a tiny corpus it writes into `root`
in the task's real format) and `TINY_TASK_OVERRIDES` (a list of overrides that shrink the
task, e.g. a vocabulary size). A package outside this repository runs the same checks as
this repository's own tests:

    from encdec.testing import check_adapter_contract

    def test_contract(tmp_path):
        check_adapter_contract("my_task", tmp_path, searchpath=["pkg://my_tasks.conf"])
"""

from __future__ import annotations

import importlib
import math
from pathlib import Path
from types import ModuleType
from typing import Sequence

import torch
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.utils import get_method
from omegaconf import DictConfig, OmegaConf

from encdec.cli import CONF_DIR
from encdec.task import MetricReport, TaskAdapter

#: a model small enough that a contract check or a training smoke run takes seconds
TINY_MODEL = [
    "model.d_model=32",
    "encoder.layers=1", "encoder.heads=2", "encoder.ffn=64",
    "decoder.layers=1", "decoder.heads=2", "decoder.ffn=64",
    "optim.schedule.warmup_steps=2",
    "logger=csv", "callbacks=none",
    "decoding.max_len=24",
]


def searchpath_override(searchpath: Sequence[str]) -> list[str]:
    """`hydra.searchpath=[...]` for extra config packages (`pkg://my_tasks.conf`, `file:///dir`)."""
    return [f"hydra.searchpath=[{','.join(searchpath)}]"] if searchpath else []


def compose_train(overrides: Sequence[str] = (), searchpath: Sequence[str] = ()) -> DictConfig:
    """The `encdec-train` config for these overrides, as the command line would compose it."""
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        return compose("train", overrides=[*searchpath_override(searchpath), *overrides])


def task_fixtures(adapter_target: str) -> ModuleType:
    """`fixtures` of the adapter's package, or of the nearest parent package that has one."""
    package = adapter_target.rsplit(".", 1)[0]
    while package:
        try:
            return importlib.import_module(f"{package}.fixtures")
        except ModuleNotFoundError as exc:
            if exc.name != f"{package}.fixtures":
                raise  # the fixtures module exists but imports something missing
            package = package.rpartition(".")[0]
    raise AssertionError(f"{adapter_target}: its package ships no fixtures.py with tiny_data_config(root)")


def tiny_task_config(task: str, root: Path, searchpath: Sequence[str] = (), overrides: Sequence[str] = ()) -> DictConfig:
    """The config of `task=<task>` with the tiny model, the task's tiny overrides and its
    fixture data written under `root`."""
    target = compose_train([f"task={task}"], searchpath).task.adapter._target_
    fixtures = task_fixtures(target)
    cfg = compose_train([f"task={task}", *TINY_MODEL, *fixtures.TINY_TASK_OVERRIDES, *overrides], searchpath)
    cfg.data = OmegaConf.create(fixtures.tiny_data_config(Path(root)))
    return cfg


def check_adapter_contract(task: str, tmp_path: Path, searchpath: Sequence[str] = ()) -> None:
    """Every check the core relies on, run on the task's fixture; fails with an AssertionError
    saying what the adapter got wrong."""
    from encdec.build import build_adapter, build_model
    from encdec.data.vocabulary import Vocabulary, spec_difference, vocabulary_spec
    from encdec.decoding import Greedy
    from encdec.objectives import MLE
    from encdec.types import Batch, EncoderOutput

    tmp_path = Path(tmp_path)
    own_data = compose_train([f"task={task}"], searchpath).data
    cfg = tiny_task_config(task, tmp_path / "data", searchpath)
    run_dir = tmp_path / "run"
    run_dir.mkdir(parents=True, exist_ok=True)
    adapter = build_adapter(cfg)  # also checks that the fixture's reader gives the adapter's data_kind
    assert isinstance(adapter, TaskAdapter)
    if adapter.data_kind is not None:
        own_kind = getattr(get_method(own_data._target_), "kind", None)
        assert own_kind == adapter.data_kind, (
            f"task={task} selects data {own_data._target_} of kind {own_kind!r}, but the adapter reads {adapter.data_kind!r}"
        )
    adapter.setup(run_dir, stage="fit")
    assert adapter.monitor_mode in {"min", "max"} and "/" in adapter.monitor, "monitor: 'val/<metric>', monitor_mode: min|max"
    ids = adapter.special_ids()
    assert set(ids) == {"bos_id", "eos_id", "pad_id"} and len(set(ids.values())) == 3, f"special_ids: {ids}"

    for split in ["train", "val", "test"]:
        examples = adapter.examples(split)
        assert len(examples) > 0, f"no {split} examples"
        assert all(adapter.length(e) > 0 for e in examples), f"length() <= 0 for a {split} example"

    examples = list(adapter.examples("val"))[:5]
    batch = adapter.collate(examples)
    assert isinstance(batch, Batch) and len(batch) == len(examples), "collate: one Batch row per example"
    assert batch.tgt_in.shape == batch.tgt_out.shape and batch.tgt_in.size(0) == len(examples)
    assert (batch.tgt_in[:, 0] == ids["bos_id"]).all(), "targets start with BOS"
    assert ((batch.tgt_out == ids["eos_id"]).sum(1) == 1).all(), "one EOS per target"
    refs = adapter.references(batch)
    assert len(refs) == len(examples), "references: one per example"

    model = build_model(cfg, adapter)
    enc = model.encode(batch.src, batch.src_mask)
    assert isinstance(enc, EncoderOutput) and enc.memory.shape[:2] == enc.memory_mask.shape
    loss, logs = MLE(0.1).loss(model, batch)
    assert math.isfinite(float(loss.detach())) and "nll" in logs
    loss.backward()

    hyps = Greedy(max_len=8)(model.eval(), batch.src, batch.src_mask)
    outputs = adapter.decode(hyps.best())
    assert len(outputs) == len(examples), "decode: one output per row"
    report = adapter.metrics(outputs, refs, "val")
    assert isinstance(report, MetricReport) and report.values
    assert set(report.protocol) == set(report.values), "every metric is reported with its protocol"
    perfect = adapter.metrics(refs, refs, "val")
    higher_better = adapter.monitor_mode == "max"
    key = adapter.monitor.split("/", 1)[1]
    if key in perfect.values:
        assert (perfect.values[key] >= report.values[key]) == higher_better or perfect.values[key] == report.values[key], (
            f"{adapter.monitor} of perfect outputs is not better ({adapter.monitor_mode}) than of the model's"
        )

    rewards = adapter.reward(batch.meta.get("source", [None] * len(refs)), refs, refs)
    assert len(rewards) == len(refs) and all(isinstance(r, float) for r in rewards), "reward: one float per output"

    table = adapter.samples(batch, outputs, limit=3)
    assert len(table.rows) == 3 and all(len(r) == len(table.columns) for r in table.rows)

    # vocabularies saved with the run reload identically for eval and predict
    fresh = build_adapter(cfg)
    fresh.setup(run_dir, stage="eval")
    again = fresh.collate(list(fresh.examples("val"))[:5])
    assert torch.equal(again.src, batch.src) and torch.equal(again.tgt_out, batch.tgt_out), "vocabulary reloads differently"
    assert all(isinstance(v, Vocabulary) for v in adapter.vocabularies().values()), "vocabularies(): role -> Vocabulary"
    changed = spec_difference(vocabulary_spec(adapter.vocabularies()), vocabulary_spec(fresh.vocabularies()))
    assert changed is None, f"the reloaded vocabulary differs: {changed}"
