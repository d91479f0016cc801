"""What the console shows: progress towards the end of the run, and a summary at its end.

`RunProgress` counts optimizer steps against the whole run (max_steps, or max_epochs times
the steps per epoch), so its ETA is the run's, not the epoch's, and no later than the end
of trainer.max_time when that is set; it shows target tokens/s, examples/s and the learning
rate. In a terminal it is a live bar. Anywhere else (a log file, nohup, a cluster job, CI)
it prints one plain, flushed line every `every_seconds` from a background thread, so the
log shows life while a long step, a validation or the data loading runs. `EvalProgress`
does the same for `encdec-eval`: segments scored of the split's total, segments/s.

`print_run_summary` says where the run is and what to run next.
"""

from __future__ import annotations

import json
import math
import shlex
import sys
import threading
import time
from collections import deque
from pathlib import Path
from typing import Any, Mapping, TextIO

import pytorch_lightning as pl
from pytorch_lightning.callbacks import Timer
from pytorch_lightning.callbacks.progress import ProgressBar


def format_duration(seconds: float) -> str:
    """1:02:03 or 2:03 (h:mm:ss or m:ss); '?' when unknown."""
    if seconds is None or not math.isfinite(seconds) or seconds < 0:
        return "?"
    seconds = int(round(seconds))
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


def spoken_duration(seconds: float) -> str:
    """45 min, 2 h 30 min, 90 s: a time limit as a person says it."""
    seconds = int(round(seconds))
    if seconds < 120:
        return f"{seconds} s"
    minutes = round(seconds / 60)
    h, m = divmod(minutes, 60)
    return f"{minutes} min" if not h else f"{h} h {m} min" if m else f"{h} h"


def time_limit(trainer: pl.Trainer) -> tuple[float, float] | None:
    """(trainer.max_time in seconds, seconds of it already used: a resumed run's earlier
    training), read from the Timer callback that max_time installs; None without a limit."""
    for callback in getattr(trainer, "callbacks", None) or []:
        if isinstance(callback, Timer):
            left = callback.time_remaining()
            if left is not None:
                used = callback.time_elapsed()
                return left + used, used
    return None


def _number(value: float) -> str:
    return f"{value:,.0f}" if abs(value) >= 100 else f"{value:.3g}"


def _metric(value: Any) -> str:
    try:
        value = float(value)
    except (TypeError, ValueError):
        return str(value)
    return f"{value:.4g}"


class Ticker:
    """Calls `emit()` every `every_seconds` from a daemon thread until `stop()`: a log file
    shows life while the main thread is busy in a long step, a validation or data loading."""

    def __init__(self, every_seconds: float, emit):
        self.every_seconds, self.emit = float(every_seconds), emit
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        if self._thread is None:
            self._stop.clear()
            self._thread = threading.Thread(target=self._run, name="encdec-progress", daemon=True)
            self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self.every_seconds):
            self.emit()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None


class Throughput:
    """Target tokens and examples per second over the last `window` training batches.
    Each batch's time runs from the end of the previous one, so data loading counts;
    `pause()` (validation, epoch ends) starts the clock afresh."""

    def __init__(self, window: int = 50):
        self.samples: deque[tuple[float, float, int]] = deque(maxlen=window)
        self._last: float | None = None

    def pause(self) -> None:
        self._last = None

    def start_batch(self, now: float) -> None:
        if self._last is None:
            self._last = now

    def end_batch(self, now: float, tokens: float, examples: int) -> None:
        start = self._last if self._last is not None else now
        self.samples.append((now - start, tokens, examples))
        self._last = now

    def rates(self) -> tuple[float | None, float | None]:
        seconds = sum(s[0] for s in self.samples)
        if seconds <= 0:
            return None, None
        tokens = sum(s[1] for s in self.samples)
        return (tokens / seconds if tokens else None), sum(s[2] for s in self.samples) / seconds


def batch_counts(batch: Any, pl_module: pl.LightningModule, logged: Mapping[str, Any]) -> tuple[float, int]:
    """(target tokens, examples) of a training batch: the objective's own `train/ntokens`
    when it logs one, else the non-padding target ids of an `encdec.types.Batch`."""
    examples = len(batch) if hasattr(batch, "__len__") else 0
    if "train/ntokens" in logged:
        return float(logged["train/ntokens"]), examples
    tgt = getattr(batch, "tgt_out", None)
    pad = getattr(getattr(pl_module, "model", None), "pad_id", None)
    if tgt is None:
        return 0.0, examples
    return float((tgt != pad).sum()) if pad is not None else float(tgt.numel()), examples


def _is_terminal(out: TextIO) -> bool:
    return hasattr(out, "isatty") and out.isatty()


class _LineProgressBar(ProgressBar):
    """Lightning's progress-bar switches over a subclass's `_write(line)`."""

    _enabled = True
    clock = staticmethod(time.monotonic)  # a test sets its own

    def disable(self) -> None:
        self._enabled = False

    def enable(self) -> None:
        self._enabled = True

    def print(self, *args: Any, **kwargs: Any) -> None:
        self._write(" ".join(str(a) for a in args))

    def _write(self, line: str) -> None:
        raise NotImplementedError


class RunProgress(_LineProgressBar):
    """Progress of the whole run: a live bar in a terminal, a plain line every
    `every_seconds` elsewhere (`plain=null` picks by whether stdout is a terminal).
    `verbose=false` silences third-party noise (see encdec.cli.quiet). A run time-boxed by
    trainer.max_time ends at whichever comes first, the time limit or the last step: the
    ETA is the sooner of the two."""

    def __init__(self, every_seconds: float = 30.0, plain: bool | None = None, verbose: bool = False,
                 refresh_per_second: float = 2.0, stream: TextIO | None = None):
        super().__init__()
        if not verbose:
            # here, not at fit start: the Trainer prints its accelerator lines while it is
            # built, right after its callbacks
            from encdec.cli.quiet import silence_third_party_noise

            silence_third_party_noise()
        self.every_seconds = float(every_seconds)
        self.refresh_per_second = refresh_per_second
        self.stream = stream
        self.plain = plain
        self._throughput = Throughput()
        self._stage: str | None = None  # "train", "validate", "test"
        self._eval_batch = 0
        self._validated = False
        self._fit_started: float | None = None
        self._first_step = 0
        self._total_steps: float = float("inf")
        self._time_limit: float | None = None  # trainer.max_time, seconds
        self._time_used = 0.0  # of it, before this process started training (a resumed run)
        self._progress = None  # rich.progress.Progress in a terminal
        self._bar_task = None
        self._eval_task = None
        self._ticker: Ticker | None = None
        self._lock = threading.Lock()

    # a ddp_spawn launch pickles the callbacks into its workers: each gets its own lock and ticker
    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        for name in ("_ticker", "_lock", "_progress", "_bar_task", "_eval_task"):
            state.pop(name)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state, _ticker=None, _lock=threading.Lock(), _progress=None, _bar_task=None, _eval_task=None)

    # -- output ---------------------------------------------------------------------------
    @property
    def out(self) -> TextIO:
        return self.stream or sys.stdout

    @property
    def is_plain(self) -> bool:
        if self.plain is not None:
            return bool(self.plain)
        return not _is_terminal(self.out)

    def _write(self, line: str) -> None:
        if not self._enabled:
            return
        with self._lock:
            if self._progress is not None:
                self._progress.console.print(line, highlight=False, markup=False)
            else:
                print(line, file=self.out, flush=True)

    # -- what a line says -----------------------------------------------------------------
    def total_steps(self, trainer: pl.Trainer) -> float:
        try:
            return float(trainer.estimated_stepping_batches)
        except Exception:  # e.g. a sampler without a length: progress without a total
            return float("inf")

    def eta_seconds(self, step: int, now: float) -> float | None:
        """Remaining steps at this run's average pace since fit started (validation included),
        or the time left of trainer.max_time when that ends the run sooner."""
        by_steps = None
        done = step - self._first_step
        if self._fit_started is not None and done > 0 and math.isfinite(self._total_steps):
            by_steps = (self._total_steps - step) * (now - self._fit_started) / done
        left = self.time_left(now)
        if left is None:
            return by_steps
        return left if by_steps is None else min(by_steps, left)

    def time_left(self, now: float) -> float | None:
        """Seconds of trainer.max_time left (None without a time limit)."""
        if self._time_limit is None or self._fit_started is None:
            return None
        return max(0.0, self._time_limit - self._time_used - (now - self._fit_started))

    def start_line(self, trainer: pl.Trainer) -> str:
        """What the run will do: `training: 11,100 steps`, or with trainer.max_time
        `training: at most 45 min (max_time) or 11,100 steps`, whichever ends it first."""
        steps = f"{int(self._total_steps):,} steps" if math.isfinite(self._total_steps) else None
        if self._time_limit is None:
            total = steps or "no step limit"
        else:
            used = f", {spoken_duration(self._time_used)} of it used before" if self._time_used >= 1 else ""
            total = f"at most {spoken_duration(self._time_limit)} (max_time{used})" + (f" or {steps}" if steps else "")
        resumed = f", resuming at step {trainer.global_step:,}" if trainer.global_step else ""
        plain = f"; a progress line every {self.every_seconds:g} s" if self.is_plain else ""
        return f"training: {total}{resumed}{plain}"

    def status(self, trainer: pl.Trainer, now: float | None = None) -> str:
        """One line: step / total (%), epoch, elapsed, ETA of the run, tokens/s, examples/s,
        learning rate, and the progress-bar metrics (losses)."""
        now = self.clock() if now is None else now
        step = trainer.global_step
        parts = []
        if math.isfinite(self._total_steps):
            pct = 100 * step / max(1, self._total_steps)
            parts.append(f"step {step:,}/{int(self._total_steps):,} ({pct:.0f}%)")
        else:
            parts.append(f"step {step:,}")
        parts.append(f"epoch {trainer.current_epoch}")
        if self._fit_started is not None:
            parts.append(f"elapsed {format_duration(now - self._fit_started)}")
        parts.append(f"ETA {format_duration(self.eta_seconds(step, now))}")
        tokens, examples = self._throughput.rates()
        if tokens is not None:
            parts.append(f"{_number(tokens)} tgt tok/s")
        if examples is not None:
            parts.append(f"{_number(examples)} ex/s")
        lr = self.learning_rate(trainer)
        if lr is not None:
            parts.append(f"lr {lr:.3g}")
        metrics = self.get_metrics(trainer, trainer.lightning_module) if trainer.lightning_module else {}
        parts += [f"{k} {_metric(v)}" for k, v in metrics.items() if k != "v_num" and k.startswith("train/")]
        if self._stage in ("validate", "test"):
            total = self._eval_total(trainer)
            parts.append(f"{'validating' if self._stage == 'validate' else 'testing'} batch {self._eval_batch}/{total}")
        return " | ".join(parts)

    @staticmethod
    def learning_rate(trainer: pl.Trainer) -> float | None:
        optimizers = getattr(trainer, "optimizers", None) or []
        return float(optimizers[0].param_groups[0]["lr"]) if optimizers else None

    def _eval_total(self, trainer: pl.Trainer) -> str:
        counts = trainer.num_val_batches if self._stage == "validate" else trainer.num_test_batches
        total = sum(counts) if counts else float("inf")
        return str(int(total)) if math.isfinite(total) else "?"

    # -- the live bar (a terminal) and the ticker (anything else) -------------------------
    def _start_display(self, trainer: pl.Trainer) -> None:
        if not self._enabled or self._progress is not None or self._ticker is not None:
            return
        if self.is_plain:
            self._ticker = Ticker(self.every_seconds, lambda: self._tick(trainer))
            self._ticker.start()
            return
        from rich.console import Console
        from rich.progress import BarColumn, Progress, TextColumn

        self._progress = Progress(
            TextColumn("[bold]{task.description}"), BarColumn(), TextColumn("{task.fields[status]}"),
            console=Console(file=self.out), refresh_per_second=self.refresh_per_second, transient=False,
        )
        self._progress.start()
        total = self._total_steps if math.isfinite(self._total_steps) else None
        self._bar_task = self._progress.add_task("train", total=total, completed=trainer.global_step, status="")

    def _tick(self, trainer: pl.Trainer) -> None:
        if self._stage is None:
            return
        try:
            line = self.status(trainer)
        except Exception as exc:  # a half-updated trainer must not end the ticker
            line = f"step {trainer.global_step:,} (progress line failed: {exc!r})"
        self._write(line)

    def _refresh(self, trainer: pl.Trainer) -> None:
        if self._progress is not None and self._bar_task is not None:
            self._progress.update(self._bar_task, completed=trainer.global_step, status=self.status(trainer))

    def _stop_display(self) -> None:
        if self._ticker is not None:
            self._ticker.stop()
            self._ticker = None
        if self._progress is not None:
            self._progress.stop()
            self._progress = None
            self._bar_task = self._eval_task = None

    # -- hooks ----------------------------------------------------------------------------
    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._fit_started = self.clock()
        self._first_step = trainer.global_step
        self._total_steps = self.total_steps(trainer)
        self._time_limit, self._time_used = time_limit(trainer) or (None, 0.0)
        self._stage = "train"
        self._write(self.start_line(trainer))
        self._start_display(trainer)

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        self._report_validation(trainer)
        self._throughput.start_batch(self.clock())

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        tokens, examples = batch_counts(batch, pl_module, trainer.callback_metrics)
        self._throughput.end_batch(self.clock(), tokens, examples)
        self._refresh(trainer)
        if self.is_plain and trainer.global_step == self._first_step + 1:
            self._write(self.status(trainer))  # a sign of life at the first step, then every_seconds

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        self._throughput.pause()

    def on_validation_start(self, trainer, pl_module) -> None:
        if trainer.sanity_checking:
            return
        self._stage, self._eval_batch = "validate", 0
        self._throughput.pause()
        if self._progress is not None:
            self._eval_task = self._progress.add_task("validate", total=None, status="")

    def on_validation_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0) -> None:
        if trainer.sanity_checking:
            return
        self._eval_batch = batch_idx + 1
        if self._progress is not None and self._eval_task is not None:
            total = sum(trainer.num_val_batches) if trainer.num_val_batches else float("inf")
            self._progress.update(self._eval_task, completed=self._eval_batch,
                                  total=total if math.isfinite(total) else None)

    def on_validation_end(self, trainer, pl_module) -> None:
        if trainer.sanity_checking:
            return
        if self._progress is not None and self._eval_task is not None:
            self._progress.remove_task(self._eval_task)
            self._eval_task = None
        self._stage = "train" if trainer.state.fn == "fit" else None
        self._validated = True

    def _report_validation(self, trainer: pl.Trainer) -> None:
        """The last validation's metrics and the best score so far: called once the
        checkpoint callback (which runs after this one) has seen them."""
        if not self._validated:
            return
        self._validated = False
        values = {k: v for k, v in trainer.callback_metrics.items() if k.startswith("val/")}
        best = trainer.checkpoint_callback
        best_text = ""
        if best is not None and getattr(best, "best_model_score", None) is not None and best.monitor:
            best_text = f" | best {best.monitor} {_metric(best.best_model_score)}"
        shown = " | ".join(f"{k} {_metric(v)}" for k, v in values.items())
        self._write(f"validation at step {trainer.global_step:,}: {shown}{best_text}")

    def on_train_end(self, trainer, pl_module) -> None:
        self._report_validation(trainer)
        self._stage = None
        self._refresh(trainer)
        self._stop_display()
        if self._fit_started is not None:
            took = format_duration(self.clock() - self._fit_started)
            self._write(f"training done: {trainer.global_step:,} steps in {took}")

    def on_test_start(self, trainer, pl_module) -> None:
        self._stage, self._eval_batch = "test", 0
        if self.is_plain:
            self._start_display(trainer)

    def on_test_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0) -> None:
        self._eval_batch = batch_idx + 1

    def on_test_end(self, trainer, pl_module) -> None:
        self._stage = None
        self._stop_display()

    def on_exception(self, trainer, pl_module, exception) -> None:
        self._stage = None
        self._stop_display()

    def teardown(self, trainer, pl_module, stage: str) -> None:
        self._stop_display()


class EvalProgress(_LineProgressBar):
    """`encdec-eval`'s progress where no live bar belongs (a log file, a cluster job, CI, or
    progress=plain): a line when scoring starts, one every `every_seconds` and one at the
    end, each with the segments (examples) scored of the split's total and segments/s.
    Plain text, flushed: no terminal escape codes."""

    def __init__(self, split: str = "test", every_seconds: float = 30.0, stream: TextIO | None = None):
        super().__init__()
        self.split, self.every_seconds, self.stream = split, float(every_seconds), stream
        self.done = 0
        self.total: int | None = None
        self._started: float | None = None
        self._ticker: Ticker | None = None
        self._lock = threading.Lock()

    def _write(self, line: str) -> None:
        if self._enabled:
            with self._lock:
                print(line, file=self.stream or sys.stdout, flush=True)

    @staticmethod
    def segments_in(trainer: pl.Trainer) -> int | None:
        """Examples in the test loaders' datasets (None when one has no length)."""
        loaders = trainer.test_dataloaders
        loaders = loaders if isinstance(loaders, (list, tuple)) else [loaders]
        try:
            return sum(len(loader.dataset) for loader in loaders)
        except TypeError:
            return None

    def line(self, now: float | None = None, done: bool = False) -> str:
        """`test: 120/1,000 segments (12%) | 35.2 segments/s | elapsed 0:03 | ETA 0:25`."""
        now = self.clock() if now is None else now
        elapsed = now - self._started if self._started is not None else 0.0
        head = f"{self.split}: {self.done:,}"
        head += f"/{self.total:,} segments ({100 * self.done / self.total:.0f}%)" if self.total else " segments"
        rate = self.done / elapsed if elapsed > 0 else None
        parts = [head, f"{_number(rate)} segments/s" if rate is not None else "? segments/s",
                 f"elapsed {format_duration(elapsed)}"]
        if done:
            parts.append("done")
        else:
            eta = (self.total - self.done) / rate if rate and self.total else None
            parts.append(f"ETA {format_duration(eta)}")
        return " | ".join(parts)

    def on_test_start(self, trainer, pl_module) -> None:
        self.done, self.total, self._started = 0, self.segments_in(trainer), self.clock()
        total = f"{self.total:,} segments" if self.total is not None else "segments"
        self._write(f"evaluating {self.split}: {total}; a progress line every {self.every_seconds:g} s")
        if self._enabled:
            self._ticker = Ticker(self.every_seconds, lambda: self._write(self.line()))
            self._ticker.start()

    def on_test_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0) -> None:
        self.done += len(batch) if hasattr(batch, "__len__") else 1

    def _stop_ticker(self) -> None:
        if self._ticker is not None:
            self._ticker.stop()
            self._ticker = None

    def on_test_end(self, trainer, pl_module) -> None:
        self._stop_ticker()
        self._write(self.line(done=True))

    def on_exception(self, trainer, pl_module, exception) -> None:
        self._stop_ticker()

    def teardown(self, trainer, pl_module, stage: str) -> None:
        self._stop_ticker()


def eval_progress(mode: Any, split: str, every_seconds: float = 30.0, stream: TextIO | None = None) -> ProgressBar | None:
    """The display for `encdec-eval progress=...`: true (a live bar in a terminal, plain
    lines elsewhere), plain, bar, or false (none)."""
    from encdec.errors import ConfigError

    value = str(mode).lower()
    if value in ("false", "none", "off"):
        return None
    if value == "true":
        value = "bar" if _is_terminal(stream or sys.stdout) else "plain"
    if value == "plain":
        return EvalProgress(split, every_seconds, stream)
    if value == "bar":
        return pl.callbacks.RichProgressBar()
    raise ConfigError(f"progress={mode}: use true (a bar in a terminal, plain lines elsewhere), plain, bar or false")


# -- the end of a run ---------------------------------------------------------------------
def _shell(path: Path | str) -> str:
    return shlex.quote(str(path))


def run_summary(run_dir: str | Path, trainer: pl.Trainer | None = None, metrics: Mapping[str, float] | None = None) -> str:
    """The end-of-run text: run directory, best checkpoint and its score, the test metrics
    with their protocols (from metrics/test.json) and the commands that use the run next."""
    run_dir = Path(run_dir).resolve()
    lines = ["", "=" * 72, f"run directory:   {run_dir}"]
    if trainer is not None:
        lines.append(f"steps trained:   {trainer.global_step:,}")
    best = getattr(trainer, "checkpoint_callback", None) if trainer is not None else None
    best_path = getattr(best, "best_model_path", "") if best is not None else ""
    if best_path:
        score = getattr(best, "best_model_score", None)
        scored = f"  ({best.monitor} = {_metric(score)})" if score is not None and best.monitor else ""
        lines.append(f"best checkpoint: {best_path}{scored}")
    elif (run_dir / "checkpoints" / "best.ckpt").exists():
        lines.append(f"best checkpoint: {run_dir / 'checkpoints' / 'best.ckpt'}")
    test_file = run_dir / "metrics" / "test.json"
    if test_file.exists():
        record = json.loads(test_file.read_text())
        lines.append(f"test metrics ({test_file}):")
        width = max((len(k) for k in record), default=0) + 5
        for name, info in record.items():
            protocol = f"  [{info['protocol']}]" if info.get("protocol") else ""
            lines.append(f"  {('test/' + name).ljust(width)} {_metric(info['value']):>10}{protocol}")
    elif metrics:
        lines.append("metrics:")
        lines += [f"  {k}: {_metric(v)}" for k, v in metrics.items()]
    lines += [
        "next:",
        f"  encdec-eval run_dir={_shell(run_dir)} split=test decoding=beam",
        f"  encdec-predict run_dir={_shell(run_dir)} input=-        # one input per line on stdin",
    ]
    if (run_dir / "tensorboard").exists():
        lines.append(f"  tensorboard --logdir {_shell(run_dir / 'tensorboard')}")
    lines.append(f"  encdec-runs {_shell(run_dir.parent)}          # compare with the runs next to it")
    lines.append("=" * 72)
    return "\n".join(lines)


def print_run_summary(run_dir: str | Path, trainer: pl.Trainer | None = None, metrics: Mapping[str, float] | None = None,
                      file: TextIO | None = None) -> None:
    print(run_summary(run_dir, trainer, metrics), file=file or sys.stdout, flush=True)
