"""Console progress: a time-boxed run's ETA and start line (trainer.max_time), and
`encdec-eval`'s plain progress lines off a terminal."""

import io
import re
from types import SimpleNamespace

import pytest

from conftest import run_cli, tiny_train_args

# -- training time-boxed by trainer.max_time ------------------------------------------------


def _time_boxed(max_time: str | None, total_steps: int, used_before: float = 0.0):
    """A RunProgress on a fake trainer and clock, started at t=1000 s; returns (bar, trainer,
    clock, output)."""
    from pytorch_lightning.callbacks import Timer

    from encdec.progress import RunProgress

    clock = [1000.0]
    out = io.StringIO()
    bar = RunProgress(every_seconds=30, plain=True, verbose=True, stream=out)
    bar.clock = lambda: clock[0]
    callbacks = []
    if max_time is not None:
        timer = Timer(duration=max_time)
        timer.load_state_dict({"time_elapsed": {"train": used_before}})  # as a resumed run's
        callbacks.append(timer)
    trainer = SimpleNamespace(global_step=0, current_epoch=0, optimizers=[], lightning_module=None,
                              callbacks=callbacks, estimated_stepping_batches=total_steps)
    bar.on_train_start(trainer, None)
    bar._stop_display()  # no ticker thread: the test asks for lines itself
    return bar, trainer, clock, out


def test_a_time_boxed_run_says_so_and_its_eta_is_the_time_left():
    bar, trainer, clock, out = _time_boxed("00:00:45:00", 11_100)
    assert out.getvalue() == "training: at most 45 min (max_time) or 11,100 steps; a progress line every 30 s\n"
    trainer.global_step, clock[0] = 100, 1060.0  # 100 steps a minute: the steps would need 1 h 50 min
    assert bar.eta_seconds(100, now=1060.0) == pytest.approx(45 * 60 - 60)
    assert " | ETA 44:00" in bar.status(trainer)


def test_a_time_boxed_run_that_reaches_its_steps_first_shows_their_eta():
    bar, trainer, clock, _ = _time_boxed("00:00:45:00", 200)
    trainer.global_step, clock[0] = 100, 1060.0
    assert bar.eta_seconds(100, now=1060.0) == pytest.approx(60.0)
    assert bar.time_left(1060.0) == pytest.approx(45 * 60 - 60)


def test_a_resumed_time_boxed_run_counts_the_time_it_used_before():
    bar, trainer, clock, out = _time_boxed("00:00:45:00", 11_100, used_before=600.0)
    assert out.getvalue().startswith("training: at most 45 min (max_time, 10 min of it used before) or 11,100 steps")
    assert bar.eta_seconds(0, now=1060.0) == pytest.approx(45 * 60 - 600 - 60)  # before any step, too


def test_a_lightning_trainer_with_max_time_starts_with_the_time_box(tmp_path):
    """The limit is read from the Timer that Trainer(max_time=...) installs."""
    import pytorch_lightning as pl
    from pytorch_lightning.demos.boring_classes import BoringModel

    from encdec.progress import RunProgress

    out = io.StringIO()
    trainer = pl.Trainer(max_time="00:02:30:00", max_steps=3, limit_val_batches=0, logger=False, enable_checkpointing=False,
                         enable_model_summary=False, default_root_dir=tmp_path, accelerator="cpu",
                         callbacks=[RunProgress(every_seconds=3600, plain=True, verbose=True, stream=out)])
    trainer.fit(BoringModel())
    assert out.getvalue().startswith("training: at most 2 h 30 min (max_time) or 3 steps; a progress line every 3600 s\n")


def test_without_max_time_the_eta_counts_steps():
    bar, trainer, clock, out = _time_boxed(None, 11_100)
    assert out.getvalue().startswith("training: 11,100 steps;")
    assert bar.eta_seconds(100, now=1060.0) == pytest.approx(11_000 * 0.6)
    trainer.global_step, clock[0] = 100, 1060.0
    assert " | ETA 1:50:00" in bar.status(trainer)


# -- encdec-eval ----------------------------------------------------------------------------


def test_eval_progress_lines_count_segments_against_the_split():
    from encdec.progress import EvalProgress

    clock = [50.0]
    out = io.StringIO()
    progress = EvalProgress("val", every_seconds=3600, stream=out)
    progress.clock = lambda: clock[0]
    trainer = SimpleNamespace(test_dataloaders=SimpleNamespace(dataset=list(range(1000))))
    progress.on_test_start(trainer, None)
    for _ in range(3):
        progress.on_test_batch_end(trainer, None, None, [0] * 40, 0)
    clock[0] = 54.0
    assert progress.line() == "val: 120/1,000 segments (12%) | 30 segments/s | elapsed 0:04 | ETA 0:29"
    progress.on_test_batch_end(trainer, None, None, [0] * 880, 3)
    clock[0] = 60.0
    progress.on_test_end(trainer, None)
    assert out.getvalue().splitlines() == [
        "evaluating val: 1,000 segments; a progress line every 3600 s",
        "val: 1,000/1,000 segments (100%) | 100 segments/s | elapsed 0:10 | done",
    ]


def test_eval_progress_setting_picks_the_display():
    import pytorch_lightning as pl

    from encdec.errors import ConfigError
    from encdec.progress import EvalProgress, eval_progress

    class Terminal(io.StringIO):
        def isatty(self):
            return True

    assert isinstance(eval_progress(True, "test", stream=io.StringIO()), EvalProgress)  # a pipe, a file
    assert isinstance(eval_progress(True, "test", stream=Terminal()), pl.callbacks.RichProgressBar)
    assert isinstance(eval_progress("plain", "test", stream=Terminal()), EvalProgress)
    assert isinstance(eval_progress("bar", "test"), pl.callbacks.RichProgressBar)
    assert eval_progress(False, "test") is None
    with pytest.raises(ConfigError, match=r"progress=loud: use true .* plain, bar or false"):
        eval_progress("loud", "test")


def test_encdec_eval_prints_plain_progress_lines_off_a_terminal(tiny_corpus, tmp_path):
    run_dir = tmp_path / "run"
    run_cli("train", *tiny_train_args(tiny_corpus, run_dir, "trainer.max_steps=2", "test_after_training=false"))
    # stdout is a pipe here, as under nohup or in a cluster job's log: plain lines, no bar
    proc = run_cli("evaluate", f"run_dir={run_dir}", "split=val", "+progress_every_seconds=0.05")
    out = proc.stdout
    assert "\x1b[" not in out, "no terminal escape codes"
    start = re.search(r"^evaluating val: (\d+) segments; a progress line every 0.05 s$", out, re.M)
    assert start, out
    total = start.group(1)
    # how many periodic lines a 24-segment split gets depends on the machine's speed (the
    # ticker is the one training uses, tests/test_console.py); each one has the line format
    tick = re.compile(rf"^val: \d+/{total} segments \(\d+%\) \| [\d.,?]+ segments/s \| elapsed \d+:\d\d \| ETA \S+$")
    lines = [line for line in out.splitlines() if line.startswith("val: ") and not line.endswith("| done")]
    assert all(tick.match(line) for line in lines), out
    assert re.search(rf"^val: {total}/{total} segments \(100%\) \| [\d.,]+ segments/s \| elapsed \d+:\d\d \| done$", out, re.M)
    assert "val/sacrebleu:" in out
