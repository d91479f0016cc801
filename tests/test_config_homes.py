"""Where settings live: a task selects its own data (and a reader of another shape is refused);
every `task.` key a message or docstring names exists in the config of that task; no comment
or config speaks of one particular machine."""

import ast
import re
from pathlib import Path

import pytest
from hydra.utils import get_method
from omegaconf import OmegaConf

from conftest import CONF_DIR, ROOT
from encdec.build import build_adapter
from encdec.errors import ConfigError
from encdec.testing import compose_train

TASKS = sorted(p.stem for p in (CONF_DIR / "task").glob("*.yaml"))


@pytest.fixture(scope="module")
def task_configs():
    return {task: compose_train([f"task={task}"]) for task in TASKS}


def test_each_task_runs_on_data_of_its_own_kind(task_configs):
    for task, cfg in task_configs.items():
        wanted = get_method(cfg.task.adapter._target_).data_kind
        assert wanted is not None, f"task={task}: its adapter declares no data_kind"
        assert getattr(get_method(cfg.data._target_), "kind", None) == wanted, f"task={task} selects {cfg.data._target_}"
    assert task_configs["qa"].data._target_ != task_configs["translation"].data._target_


def test_data_on_the_command_line_or_in_an_experiment_wins():
    assert compose_train(["task=translation", "data=tsv"]).data._target_.endswith("TSVText")
    assert compose_train(["data=tsv", "task=translation"]).data._target_.endswith("TSVText")
    cfg = compose_train(["experiment=captioning_coco"])
    assert cfg.data.json_path.endswith("dataset_coco.json")


def test_a_reader_of_another_shape_is_refused(tmp_path):
    cfg = compose_train(["task=qa"])
    cfg.data = OmegaConf.create({"_target_": "encdec_tasks.translation.data.TSVText", "root": str(tmp_path), "splits": {}})
    with pytest.raises(ConfigError, match=r"TSVText gives 'pairs' data but task QATask reads 'qa_items'"):
        build_adapter(cfg)


# a `task.` key inside a string: not part of a longer name, a path or a format field
TASK_KEY = re.compile(r"(?<![\w/.<{-])task\.[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*")


def _named_keys(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            found.update(TASK_KEY.findall(node.value))
    return found


def _tasks_of(path: Path, task_configs) -> list[str]:
    """The tasks whose adapter lives in the package of a file under tasks/ (all tasks for the core)."""
    if path.parts[0] != "tasks":
        return TASKS
    package = ".".join(("encdec_tasks", *path.parent.parts[1:]))
    return [t for t, cfg in task_configs.items() if cfg.task.adapter._target_.startswith(package + ".")]


def test_every_task_key_named_in_a_message_exists(task_configs):
    from encdec.init_from import REMOVED_KEYS

    retired = set(REMOVED_KEYS)  # named on purpose: the message says what replaced them
    wrong = []
    for root in ["platform", "tasks"]:
        for path in sorted((ROOT / root).rglob("*.py")):
            rel = path.relative_to(ROOT)
            tasks = _tasks_of(rel, task_configs)
            for key in _named_keys(path) - retired:
                if not any(OmegaConf.select(task_configs[t], key, default="<absent>", throw_on_missing=False) != "<absent>" for t in tasks):
                    wrong.append(f"{rel}: {key} (not in task={'|'.join(tasks)})")
    assert not wrong, "messages name keys that do not exist:\n" + "\n".join(wrong)


MACHINE_WORDS = re.compile(r"this (?:\d+-core )?machine|(?:reachable|available) from here|\(none here|this box", re.I)


def test_no_comment_speaks_of_a_particular_machine():
    found = [
        f"{path.relative_to(ROOT)}:{number}: {line.strip()}"
        for root in ["platform", "tasks", "conf"]
        for path in sorted((ROOT / root).rglob("*"))
        if path.suffix in {".py", ".yaml"}
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
        if MACHINE_WORDS.search(line)
    ]
    assert not found, "\n".join(found)
