"""Each adapter that cuts a predict input to the model's limit marks it (`"truncated"`), so
encdec-predict can warn with the line numbers or refuse; inputs within the limit are not marked."""

from __future__ import annotations

import importlib

import pytest
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from omegaconf import OmegaConf

import encdec.cli  # noqa: F401  (registers the config resolvers)
from conftest import CONF_DIR, TINY_MODEL
from encdec.build import build_adapter


def _adapter(task: str, tmp_path):
    target = OmegaConf.load(CONF_DIR / "task" / f"{task}.yaml").adapter._target_
    fixtures = importlib.import_module(f"{target.rsplit('.', 1)[0]}.fixtures")
    task_cfg = OmegaConf.create({"task": OmegaConf.load(CONF_DIR / "task" / f"{task}.yaml")})
    tiny = [o for o in TINY_MODEL if not o.startswith("task.") or OmegaConf.select(task_cfg, o.split("=")[0]) is not None]
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = compose("train", overrides=[f"task={task}", *tiny, *fixtures.TINY_TASK_OVERRIDES])
    cfg.data = OmegaConf.create(fixtures.tiny_data_config(tmp_path / "data"))
    (tmp_path / "run").mkdir()
    adapter = build_adapter(cfg)
    adapter.setup(tmp_path / "run", stage="fit")
    return adapter


def test_translation_marks_a_source_longer_than_max_src_len(tmp_path):
    adapter = _adapter("translation", tmp_path)
    adapter.max_src_len = 6
    short, long = adapter.parse_inputs(["Der hund.", "der kleine hund läuft im park mit der ball und der katze"])
    assert "truncated" not in short
    assert long["truncated"] == "task.adapter.max_src_len=6 pieces" and len(long["src"]) == 6


def test_qa_marks_a_context_cut_to_max_src_len(tmp_path):
    from encdec_tasks.qa.adapter import INPUT_SEPARATOR

    adapter = _adapter("qa", tmp_path)
    adapter.max_src_len = 12
    short, long = adapter.parse_inputs([f"Who? {INPUT_SEPARATOR} Ann.", f"Who? {INPUT_SEPARATOR} " + "Ann met Bob in the park. " * 10])
    assert "truncated" not in short
    assert long["truncated"] == "task.adapter.max_src_len=12 pieces" and len(long["src"]) <= 12


def test_recommendation_marks_a_given_history_longer_than_max_history(tmp_path):
    adapter = _adapter("recommendation", tmp_path)
    adapter.max_history = 3
    items = list(adapter.index)[:5]
    short, long = adapter.parse_inputs([" ".join(items[:3]), " ".join(items)])
    assert "truncated" not in short
    assert long["truncated"] == "task.adapter.max_history=3 items" and len(long["src"]) == 3


@pytest.mark.parametrize("task", ["textgen"])
def test_tasks_that_never_cut_mark_nothing(task, tmp_path):
    adapter = _adapter(task, tmp_path)
    assert not any("truncated" in e for e in adapter.parse_inputs(["a b c " * 50]))
