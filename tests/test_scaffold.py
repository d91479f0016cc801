"""`encdec-new-task` writes a task that passes the adapter contract and trains as generated,
in a user's package (here under tmp_path) or in this repository."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import CONF_DIR, TINY_MODEL
from encdec.cli import new_task
from encdec.testing import check_adapter_contract


@pytest.fixture
def importable(tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(tmp_path))
    yield tmp_path
    for name in [m for m in sys.modules if m.split(".")[0].startswith("gen_")]:
        del sys.modules[name]


@pytest.mark.parametrize("vocab", ["closed", "shared"])
def test_generated_task_passes_the_contract(vocab, importable, capsys):
    package = importable / f"gen_{vocab}"
    new_task.main(["word_swap", f"--{vocab}-vocab", "--dest", str(package)])
    assert f"task=word_swap 'hydra.searchpath=[pkg://gen_{vocab}.conf]'" in capsys.readouterr().out
    folder = package / "word_swap"
    lines = sum(len(p.read_text().splitlines()) for p in folder.glob("*.py"))
    assert lines <= 150, f"the generated task folder has {lines} lines"
    assert (package / "conf" / "task" / "word_swap.yaml").exists() and (package / "conf" / "data" / "word_swap.yaml").exists()
    check_adapter_contract("word_swap", importable / "contract", searchpath=[f"pkg://gen_{vocab}.conf"])


def test_generated_task_trains_on_its_own_data(importable):
    new_task.main(["digits", "--dest", str(importable / "gen_train")])
    run_dir = importable / "run"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(importable), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.run(
        [sys.executable, "-m", "encdec.cli.train", "task=digits", "hydra.searchpath=[pkg://gen_train.conf]",
         *[o for o in TINY_MODEL if not o.startswith("task.")], "data.sizes.train=64", "data.sizes.val=8",
         "data.sizes.test=8", "trainer=debug", "trainer.max_steps=2", "trainer.max_epochs=2",
         "loader.max_tokens=256", f"hydra.run.dir={run_dir}"],
        cwd=importable, env=env, capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "steps trained:   2" in proc.stdout
    assert (run_dir / "tokenizer.json").exists() and (run_dir / "metrics" / "test.json").exists()


def test_in_repo_task_goes_to_tasks_and_conf(tmp_path):
    files = new_task.plan("word_swap", new_task.REPO_TASKS, "shared")
    assert set(files) >= {
        new_task.REPO_TASKS / "word_swap" / "adapter.py",
        CONF_DIR / "task" / "word_swap.yaml",
        CONF_DIR / "data" / "word_swap.yaml",
    }
    assert "_target_: encdec_tasks.word_swap.WordSwapTask" in files[CONF_DIR / "task" / "word_swap.yaml"]


def test_mistakes_are_one_line_errors(tmp_path):
    with pytest.raises(SystemExit, match="error: task name 'Bad-Name'"):
        new_task.main(["Bad-Name", "--dest", str(tmp_path / "gen_x")])
    new_task.main(["ok", "--dest", str(tmp_path / "gen_x")])
    with pytest.raises(SystemExit, match=r"error: .*gen_x/ok/__init__.py exists"):
        new_task.main(["ok", "--dest", str(tmp_path / "gen_x")])
