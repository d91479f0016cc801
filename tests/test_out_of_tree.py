"""A user's own package holds an adapter, its reader, fixtures and yamls, and uses them with
`encdec-train` without touching this repository: through `hydra.searchpath` or an
`encdec.conf` entry point. The installed wheel carries the config tree."""

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from conftest import ROOT, TINY_MODEL
from encdec.testing import check_adapter_contract, compose_train

PACKAGE = {
    "__init__.py": "",
    "shout/__init__.py": "from shout_pkg.shout.adapter import ShoutTask  # noqa: F401\n",
    "shout/adapter.py": '''
        from encdec_tasks.translation import TranslationTask


        class ShoutTask(TranslationTask):
            """Translation's machinery on an upper-casing task; the reward is exact match."""

            def reward(self, sources, outputs, references):
                return [float(o == r) for o, r in zip(outputs, references)]
    ''',
    "shout/data.py": '''
        from pathlib import Path


        class ShoutData:
            """<root>/<split>.txt: each line is the source, its upper case the target."""

            kind = "pairs"

            def __init__(self, root: str):
                self.root = Path(root)

            def read(self, split: str) -> list[tuple[str, str]]:
                lines = (self.root / f"{split}.txt").read_text(encoding="utf-8").splitlines()
                return [(line, line.upper()) for line in lines]
    ''',
    "shout/fixtures.py": '''
        from pathlib import Path

        WORDS = "a dog runs in the park with a red ball".split()


        def tiny_data_config(root):
            root = Path(root)
            root.mkdir(parents=True, exist_ok=True)
            for split, n in {"train": 60, "val": 8, "test": 8}.items():
                lines = [" ".join(WORDS[i % 5: i % 5 + 3 + i % 4]) for i in range(n)]
                (root / f"{split}.txt").write_text("\\n".join(lines) + "\\n", encoding="utf-8")
            return {"_target_": "shout_pkg.shout.data.ShoutData", "root": str(root)}


        TINY_TASK_OVERRIDES = ["task.adapter.tokenizer.vocab_size=80"]
    ''',
    "conf/__init__.py": "",
    "conf/task/shout.yaml": '''
        # upper-case the input; runs on data=shout unless data=... is given
        defaults:
          - /data@_global_.data: shout
          - _self_
        adapter:
          _target_: shout_pkg.shout.ShoutTask
          tokenizer: {model: bpe, vocab_size: 200}
    ''',
    "conf/data/shout.yaml": '''
        _target_: shout_pkg.shout.data.ShoutData
        root: ???
    ''',
}
SEARCHPATH = ["pkg://shout_pkg.conf"]


@pytest.fixture
def user_package(tmp_path, monkeypatch) -> Path:
    """`<tmp>/site/shout_pkg/`, importable in this process; returns `<tmp>/site`."""
    site = tmp_path / "site"
    for name, text in PACKAGE.items():
        path = site / "shout_pkg" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text).lstrip(), encoding="utf-8")
    monkeypatch.syspath_prepend(str(site))
    yield site
    for name in [m for m in sys.modules if m == "shout_pkg" or m.startswith("shout_pkg.")]:
        del sys.modules[name]


def test_user_package_passes_the_contract_and_trains(user_package, tmp_path):
    check_adapter_contract("shout", tmp_path / "contract", searchpath=SEARCHPATH)

    from shout_pkg.shout.fixtures import tiny_data_config

    data_root = tiny_data_config(tmp_path / "data")["root"]
    run_dir = tmp_path / "run"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(user_package), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.run(
        [sys.executable, "-m", "encdec.cli.train", "task=shout", f"hydra.searchpath=[{SEARCHPATH[0]}]",
         f"data.root={data_root}", *TINY_MODEL, "task.adapter.tokenizer.vocab_size=80", "trainer=debug",
         "trainer.max_steps=2", "trainer.max_epochs=2", "loader.max_tokens=256", f"hydra.run.dir={run_dir}"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert json.loads((run_dir / "metrics" / "test.json").read_text())  # trained, then tested
    assert "shout_pkg.shout.ShoutTask" in (run_dir / "config.yaml").read_text()


def test_entry_point_puts_the_package_configs_on_the_search_path(user_package):
    with pytest.raises(Exception, match="shout"):
        compose_train(["task=shout"])  # not on the search path yet
    dist = user_package / "shout_pkg-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: shout-pkg\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text("[encdec.conf]\nshout = shout_pkg.conf\n")
    cfg = compose_train(["task=shout"])
    assert cfg.task.adapter._target_ == "shout_pkg.shout.ShoutTask"
    assert cfg.data._target_ == "shout_pkg.shout.data.ShoutData"  # the task's own data
    assert compose_train(["task=translation", "data=shout"]).data._target_ == "shout_pkg.shout.data.ShoutData"


def test_file_search_path(user_package):
    cfg = compose_train(["task=shout"], searchpath=[f"file://{user_package / 'shout_pkg' / 'conf'}"])
    assert cfg.task.adapter._target_ == "shout_pkg.shout.ShoutTask"


def test_installed_wheel_carries_the_config_tree(tmp_path):
    """A non-editable install works from any directory: conf/ ships as `encdec_conf`."""
    src = tmp_path / "src"
    src.mkdir()
    for name in ["pyproject.toml", "README.md"]:
        shutil.copy(ROOT / name, src / name)
    for name in ["conf", "platform", "tasks"]:
        shutil.copytree(ROOT / name, src / name, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    build = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(tmp_path / "dist"), str(src)],
        capture_output=True, text=True, timeout=180,
    )
    if build.returncode != 0 and "No matching distribution found for setuptools" in build.stderr:
        pytest.skip("pip cannot fetch setuptools to build the wheel")
    assert build.returncode == 0, build.stderr[-3000:]
    wheel = next((tmp_path / "dist").glob("encdec-*.whl"))
    target = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(target), str(wheel)],
                   check=True, capture_output=True, timeout=180)
    probe = (
        "import encdec.cli, encdec.cli.new_task as nt; from encdec.testing import compose_train; "
        "print(encdec.cli.CONF_DIR); print(compose_train(['task=qa']).data._target_); print(nt.TEMPLATES.is_dir())"
    )
    env = {**os.environ, "PYTHONPATH": str(target)}
    out = subprocess.run([sys.executable, "-c", probe], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-3000:]
    conf_dir, data_target, templates = out.stdout.split()
    assert Path(conf_dir) == target / "encdec_conf"
    assert data_target == "encdec_tasks.qa.generated.GeneratedQA"
    assert templates == "True"
