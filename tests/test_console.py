"""What a person sees in a terminal or a log file: progress lines towards the end of the
run, no third-party noise, an end-of-run summary, and `--help` generated from conf/."""

import re
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

from conftest import CONF_DIR, run_cli, tiny_train_args

NOISE = ("GPU available", "TPU available", "litlogger", "FLOPs", "`Trainer.fit` stopped")


@pytest.fixture(scope="module")
def logged_run(tiny_corpus, tmp_path_factory):
    """A run whose stdout is a pipe (as under nohup or a cluster job), a line every 0.2 s."""
    run_dir = tmp_path_factory.mktemp("console") / "run"
    args = [a for a in tiny_train_args(tiny_corpus, run_dir) if not a.startswith("callbacks=")]
    proc = run_cli("train", *args, "callbacks=default", "callbacks.progress.every_seconds=0.2", "trainer.max_steps=6")
    return run_dir, proc


def test_plain_progress_lines_name_the_run_total_eta_throughput_and_lr(logged_run):
    _, proc = logged_run
    out = proc.stdout
    assert "training: 6 steps; a progress line every 0.2 s" in out
    lines = re.findall(r"^step \d+/6 \(\d+%\) \| epoch \d+ \| elapsed \d+:\d\d \| ETA (?:\d+:\d\d|\?) .*$", out, re.M)
    assert lines, out
    assert any(re.search(r"\| [\d,.]+ tgt tok/s \| [\d,.]+ ex/s \| lr [\d.e-]+", line) for line in lines)
    assert len(re.findall(r"^validation at step \d+: val/loss", out, re.M)) == 3


def test_third_party_noise_is_silenced(logged_run):
    _, proc = logged_run
    for noise in NOISE:
        assert noise not in proc.stdout + proc.stderr, noise


def test_end_of_run_summary_says_where_what_and_what_next(logged_run):
    run_dir, proc = logged_run
    summary = proc.stdout[proc.stdout.index("run directory:"):]
    assert str(run_dir.resolve()) in summary
    assert re.search(r"best checkpoint: .*checkpoints/best\.ckpt  \(val/sacrebleu = [\d.]+\)", summary)
    assert re.search(r"test/sacrebleu +[\d.]+  \[test split, .*nrefs:1", summary), "test metrics with protocols"
    assert f"encdec-eval run_dir={run_dir.resolve()} " in summary
    assert f"encdec-predict run_dir={run_dir.resolve()} input=-" in summary


def test_verbose_keeps_the_third_party_lines(tiny_corpus, tmp_path):
    args = [a for a in tiny_train_args(tiny_corpus, tmp_path / "run") if not a.startswith("callbacks=")]
    proc = run_cli("train", *args, "callbacks=default", "verbose=true",
                   "trainer.max_steps=1", "test_after_training=false")
    assert "GPU available" in proc.stdout + proc.stderr


def test_eval_is_quiet_unless_verbose(logged_run):
    run_dir, _ = logged_run
    quiet = run_cli("evaluate", f"run_dir={run_dir}", "split=val", "progress=false", "name=quiet")
    assert re.search(r"^val/sacrebleu: [\d.]+$", quiet.stdout, re.M), quiet.stdout
    for noise in NOISE[:3]:
        assert noise not in quiet.stdout + quiet.stderr, noise
    loud = run_cli("evaluate", f"run_dir={run_dir}", "split=val", "progress=false", "name=loud", "verbose=true")
    assert "GPU available" in loud.stdout + loud.stderr


def test_eta_counts_to_the_end_of_the_run_not_the_epoch():
    from encdec.progress import RunProgress

    bar = RunProgress(plain=True, verbose=True)
    trainer = SimpleNamespace(global_step=50, current_epoch=7, optimizers=[], lightning_module=None)
    bar._total_steps, bar._fit_started, bar._first_step = 200.0, 100.0, 0
    assert bar.eta_seconds(50, now=110.0) == pytest.approx(30.0)  # 150 steps left at 5 steps/s
    line = bar.status(trainer, now=110.0)
    assert line.startswith("step 50/200 (25%) | epoch 7 | elapsed 0:10 | ETA 0:30")


# -- --help -------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def train_help():
    return run_cli("train", "--help").stdout


def test_train_help_lists_every_option_with_its_description(train_help):
    from encdec.cli.help import option_description

    for path in sorted(Path(CONF_DIR).glob("*/*.yaml")):
        if path.parent.name == "hydra":
            continue
        description = option_description(path)
        assert description, f"{path} has no header comment and instantiates nothing"
        assert re.search(rf"^  {re.escape(path.stem)} +{re.escape(description)}$", train_help, re.M), path
    assert "checkpoint_every_n_steps=null  also write last.ckpt" in train_help
    assert len(re.findall(r"^  encdec-train ", train_help, re.M)) == 3


@pytest.mark.parametrize("app", ["evaluate", "predict"])
def test_eval_and_predict_help(app):
    out = run_cli(app, "--help").stdout
    name = {"evaluate": "encdec-eval", "predict": "encdec-predict"}[app]
    assert out.startswith(f"{name}: ")
    from encdec.cli.help import option_description

    beam = option_description(Path(CONF_DIR) / "decoding" / "beam.yaml")
    assert beam and re.search(rf"^  beam +{re.escape(beam)}$", out, re.M)
    assert "run_dir=???" in out and len(re.findall(rf"^  (?:echo .* \| )?{name} ", out, re.M)) == 3
