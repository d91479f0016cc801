"""What the console shows: progress towards the end of the run, and a summary at its end.

`RunProgress` counts optimizer steps against the whole run (max_steps, or max_epochs times
the steps per epoch), so its ETA is the run's, not the epoch's; it shows target tokens/s,
examples/s and the learning rate. In a terminal it is a live bar. Anywhere else (a log
file, nohup, a cluster job, CI) it prints one plain, flushed line every `every_seconds`
from a background thread, so the log shows life while a long step, a validation or the
data loading runs.

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
from pytorch_lightning.callbacks.progress import ProgressBar


def format_duration(seconds: float) -> str:
    """1:02:03 or 2:03 (h:mm:ss or m:ss); '?' when unknown."""
    if seconds is None or not math.isfinite(seconds) or seconds < 0:
        return "?"
    seconds = int(round(seconds))
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


def _number(value: float) -> str:
    return f"{value:,.0f}" if abs(value) >= 100 else f"{value:.3g}"


def _metric(value: Any) -> str:
    try:
        value = float(value)
    except (TypeError, ValueError):
        return str(value)
    return f"{value:.4g}"


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


class RunProgress(ProgressBar):
    """Progress of the whole run: a live bar in a terminal, a plain line every
    `every_seconds` elsewhere (`plain=null` picks by whether stdout is a terminal).
    `verbose=false` silences third-party noise (see encdec.cli.quiet)."""

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
        self._enabled = True
        self._throughput = Throughput()
        self._stage: str | None = None  # "train", "validate", "test"
        self._eval_batch = 0
        self._validated = False
        self._fit_started: float | None = None
        self._first_step = 0
        self._total_steps: float = float("inf")
        self._progress = None  # rich.progress.Progress in a terminal
        self._bar_task = None
        self._eval_task = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    # a ddp_spawn launch pickles the callbacks into its workers: each gets its own lock and ticker
    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        for name in ("_stop", "_thread", "_lock", "_progress", "_bar_task", "_eval_task"):
            state.pop(name)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state, _stop=threading.Event(), _thread=None, _lock=threading.Lock(),
                             _progress=None, _bar_task=None, _eval_task=None)

    # -- Lightning's progress-bar protocol --------------------------------------------------
    def disable(self) -> None:
        self._enabled = False

    def enable(self) -> None:
        self._enabled = True

    def print(self, *args: Any, **kwargs: Any) -> None:
        self._write(" ".join(str(a) for a in args))

    # -- output ---------------------------------------------------------------------------
    @property
    def out(self) -> TextIO:
        return self.stream or sys.stdout

    @property
    def is_plain(self) -> bool:
        if self.plain is not None:
            return bool(self.plain)
        return not (hasattr(self.out, "isatty") and self.out.isatty())

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
        """Remaining steps at this run's average pace since fit started (validation included)."""
        done = step - self._first_step
        if self._fit_started is None or done <= 0 or not math.isfinite(self._total_steps):
            return None
        return (self._total_steps - step) * (now - self._fit_started) / done

    def status(self, trainer: pl.Trainer, now: float | None = None) -> str:
        """One line: step / total (%), epoch, elapsed, ETA of the run, tokens/s, examples/s,
        learning rate, and the progress-bar metrics (losses)."""
        now = time.monotonic() if now is None else now
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
        if not self._enabled or self._progress is not None or self._thread is not None:
            return
        if self.is_plain:
            self._stop.clear()
            self._thread = threading.Thread(target=self._tick, args=(trainer,), name="encdec-progress", daemon=True)
            self._thread.start()
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
        while not self._stop.wait(self.every_seconds):
            if self._stage is None:
                continue
            try:
                line = self.status(trainer)
            except Exception as exc:  # a half-updated trainer must not end the ticker
                line = f"step {trainer.global_step:,} (progress line failed: {exc!r})"
            self._write(line)

    def _refresh(self, trainer: pl.Trainer) -> None:
        if self._progress is not None and self._bar_task is not None:
            self._progress.update(self._bar_task, completed=trainer.global_step, status=self.status(trainer))

    def _stop_display(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
        if self._progress is not None:
            self._progress.stop()
            self._progress = None
            self._bar_task = self._eval_task = None

    # -- hooks ----------------------------------------------------------------------------
    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._fit_started = time.monotonic()
        self._first_step = trainer.global_step
        self._total_steps = self.total_steps(trainer)
        self._stage = "train"
        total = f"{int(self._total_steps):,} steps" if math.isfinite(self._total_steps) else "no step limit"
        resumed = f", resuming at step {trainer.global_step:,}" if trainer.global_step else ""
        plain = f"; a progress line every {self.every_seconds:g} s" if self.is_plain else ""
        self._write(f"training: {total}{resumed}{plain}")
        self._start_display(trainer)

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        self._report_validation(trainer)
        self._throughput.start_batch(time.monotonic())

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        tokens, examples = batch_counts(batch, pl_module, trainer.callback_metrics)
        self._throughput.end_batch(time.monotonic(), tokens, examples)
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
            took = format_duration(time.monotonic() - self._fit_started)
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
