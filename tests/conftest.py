import os
import subprocess
import sys
from pathlib import Path

import pytest

# No hub downloads, no wandb network or prompts, in this process and in CLI subprocesses.
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["WANDB_MODE"] = "offline"
os.environ["WANDB_SILENT"] = "true"
os.environ.setdefault("ENCDEC_CACHE_DIR", str(Path(__file__).parent / ".cache"))
if os.environ.get("PYTEST_XDIST_WORKER"):
    # `make test` runs one pytest worker per core: one thread each (and in the CLI processes
    # they start) keeps the cores busy without oversubscribing them; the tiny test models
    # gain nothing from a second thread
    os.environ["OMP_NUM_THREADS"] = "1"

import encdec.testing  # noqa: E402  (after the environment above)
import torch  # noqa: E402

if os.environ.get("PYTEST_XDIST_WORKER"):
    torch.set_num_threads(1)

ROOT = Path(__file__).resolve().parents[1]
CONF_DIR = ROOT / "conf"
SHARED_DATA = ROOT.parent / "shared" / "datasets"

# a tiny model: every CLI test trains in seconds (the one the adapter contract checks use)
TINY_MODEL = [*encdec.testing.TINY_MODEL, "task.adapter.tokenizer.vocab_size=120"]


def run_cli(app: str, *args: str, cwd: Path | None = None, input: str | None = None, check: bool = True):
    """Runs `python -m encdec.cli.<app> args...` as a user would; returns the CompletedProcess."""
    proc = subprocess.run(
        [sys.executable, "-m", f"encdec.cli.{app}", *args],
        cwd=cwd, input=input, capture_output=True, text=True, timeout=600,
    )
    if check and proc.returncode != 0:
        raise AssertionError(f"encdec {app} failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-5000:]}")
    return proc


@pytest.fixture(scope="session")
def tiny_corpus(tmp_path_factory) -> Path:
    from encdec_tasks.translation.fixtures import write_parallel_corpus

    return write_parallel_corpus(tmp_path_factory.mktemp("corpus"))


def tiny_train_args(corpus: Path, run_dir: Path, *extra: str) -> list[str]:
    return [
        "data=parallel", f"data.root={corpus}", "data.src_lang=de", "data.tgt_lang=en",
        *TINY_MODEL, f"hydra.run.dir={run_dir}", *extra,
    ]
