"""Session-scoped CLI runs shared by test_denoise.py and test_policy_gradient.py (each CLI
run costs seconds): denoising pre-training on a monolingual file, then MLE fine-tuning on
translation from that checkpoint (which the SCST test starts from in turn)."""

from __future__ import annotations

from pathlib import Path

import pytest

from conftest import TINY_MODEL, run_cli, tiny_train_args


@pytest.fixture(scope="session")
def monolingual_corpus(tiny_corpus, tmp_path_factory) -> Path:
    """The English side of the tiny corpus, plus extra lines, as a monolingual text corpus."""
    root = tmp_path_factory.mktemp("mono")
    for split in ("train", "val", "test"):
        lines = (tiny_corpus / f"{split}.en").read_text(encoding="utf-8")
        extra = "The dog and the cat play in the snow.\n" if split == "train" else ""
        (root / f"{split}.txt").write_text(lines + extra, encoding="utf-8")
    return root


def _once(tmp_path_factory, name: str, train) -> tuple[Path, str]:
    """Runs `train(run_dir)` once per test session, even though each test module that
    imports these fixtures gets its own copy of them: the finished run is found on disk."""
    run_dir = tmp_path_factory.getbasetemp() / "denoise_runs" / name
    log = run_dir / "cli_output.txt"
    if not log.exists():
        proc = train(run_dir)
        log.write_text(proc.stdout + proc.stderr)
    return run_dir, log.read_text()


@pytest.fixture(scope="session")
def denoise_run(monolingual_corpus, tmp_path_factory):
    return _once(tmp_path_factory, "pretrain", lambda run_dir: run_cli(
        "train", "data=monolingual", f"data.root={monolingual_corpus}", "objective=denoise",
        *TINY_MODEL, "trainer=debug", "trainer.max_steps=6", "trainer.max_epochs=6", "loader.max_tokens=512",
        "test_after_training=false",
        f"hydra.run.dir={run_dir}",
    ))


@pytest.fixture(scope="session")
def finetuned_run(denoise_run, tiny_corpus, tmp_path_factory):
    pre_dir, _ = denoise_run
    return _once(tmp_path_factory, "finetune", lambda run_dir: run_cli(
        "train", *tiny_train_args(
            tiny_corpus, run_dir, "trainer=debug", "trainer.max_steps=8",
            f"init_from={pre_dir}/checkpoints/last.ckpt",
        ),
    ))
