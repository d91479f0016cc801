#!/usr/bin/env python
"""DDP on CPU processes, and what the GPU switches cost on a CPU, measured through encdec-train.

Every configuration trains the same small Transformer (experiment=quickstart: 2+2 layers,
d_model 256, joint BPE 6000, bf16-mixed, loader.max_tokens 6144) on Multi30k de->en from
$ENCDEC_DATA_DIR (default /work/shared/datasets), seed 1234, for --steps optimizer steps, with
no validation and no test:

    default        trainer=default: 1 process, 2 threads (OMP_NUM_THREADS=2)
    ddp_cpu        trainer=ddp_cpu: 2 processes (gloo), 1 thread each (OMP_NUM_THREADS=1)
    sdpa           default + model.attention_backend=sdpa
    checkpointing  default + model.activation_checkpointing=true

Rounds are interleaved: round r runs every configuration once, the first one rotating. A run's
rate is target (non-pad) tokens/s as its last progress line reports it: the platform's own
window over the last 50 training batches (data loading included, epoch ends excluded), so with
--steps well above 50 it leaves out the start-up steps. The progress line is rank 0's: under
ddp_cpu the global rate is that times the 2 processes (the token-budget sampler gives each
rank whole batches of the same budget; one optimizer step trains 2 batches). The switches see
the data in the same order as `default` (same seed, one process) and their last lines fall
within a few steps of each other, so their step-time ratio is the inverse ratio of the rates.
The table gives the median over rounds and the range.

    ENCDEC_DATA_DIR=/work/shared/datasets python bench/ddp_cpu_throughput.py              # 3 rounds x 120 steps
    python bench/ddp_cpu_throughput.py --repeats 1 --steps 3                               # smoke test
    python bench/ddp_cpu_throughput.py --override trainer.precision=32-true                # any extra override
"""

from __future__ import annotations

import argparse
import os
import re
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CONFIGS: dict[str, tuple[list[str], int, int]] = {
    # name: (overrides, processes, threads per process)
    "default": (["trainer=default"], 1, 2),
    "ddp_cpu": (["trainer=ddp_cpu"], 2, 1),  # devices: 2
    "sdpa": (["trainer=default", "model.attention_backend=sdpa"], 1, 2),
    "checkpointing": (["trainer=default", "model.activation_checkpointing=true"], 1, 2),
}
# a progress line: "step 120/120 (100%) | epoch 0 | ... | 5,432 tgt tok/s | ..."
PROGRESS = re.compile(r"^step ([\d,]+)(?:/[\d,]+)? .*?\| ([\d,.]+) tgt tok/s")
WINDOW = 50  # batches in the progress line's throughput window (encdec.progress.Throughput)


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--repeats", type=int, default=3, help="rounds; each runs every configuration once")
    p.add_argument("--steps", type=int, default=120, help="optimizer steps per run (> 50 leaves out the start-up)")
    p.add_argument("--configs", default=",".join(CONFIGS), help=f"a subset of {','.join(CONFIGS)}")
    p.add_argument("--override", action="append", default=[], help="an extra encdec-train override for every run")
    p.add_argument("--out", default=None, help="keep the run directories here (default: a temporary folder)")
    p.add_argument("--timeout", type=int, default=3600, help="seconds one run may take")
    return p.parse_args()


def train_command(name: str, run_dir: Path, steps: int, extra: list[str]) -> tuple[list[str], dict[str, str]]:
    overrides, _, threads = CONFIGS[name]
    cmd = [
        sys.executable, "-m", "encdec.cli.train", "experiment=quickstart", *overrides,
        f"trainer.max_steps={steps}", "trainer.max_time=null", "trainer.limit_val_batches=0",
        "test_after_training=false", "checkpoint_every_minutes=null", "logger=csv",
        "callbacks.progress.plain=true", "callbacks.progress.every_seconds=2",
        f"hydra.run.dir={run_dir}", *extra,
    ]
    env = {"OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads), "TOKENIZERS_PARALLELISM": "false"}
    return cmd, env


def last_rate(output: str) -> tuple[int, float] | None:
    """(step, rank 0's target tokens/s) of the last progress line."""
    found = None
    for line in output.splitlines():
        m = PROGRESS.match(line.strip())
        if m:
            found = int(m.group(1).replace(",", "")), float(m.group(2).replace(",", ""))
    return found


def run(name: str, run_dir: Path, args: argparse.Namespace) -> float:
    cmd, env_extra = train_command(name, run_dir, args.steps, args.override)
    shown = " ".join(f"{k}={v}" for k, v in env_extra.items()) + " " + shlex.join(cmd)
    print(f"$ {shown}", flush=True)
    started = time.perf_counter()
    proc = subprocess.run(cmd, env={**os.environ, **env_extra}, capture_output=True, text=True, timeout=args.timeout)
    wall = time.perf_counter() - started
    if proc.returncode != 0:
        print(proc.stdout[-3000:], proc.stderr[-5000:], sep="\n", file=sys.stderr)
        raise SystemExit(f"{name}: encdec-train failed with exit status {proc.returncode}")
    found = last_rate(proc.stdout)
    if found is None:
        print(proc.stdout[-3000:], file=sys.stderr)
        raise SystemExit(f"{name}: no progress line with tgt tok/s in the output")
    step, rate = found
    processes = CONFIGS[name][1]
    total = rate * processes
    note = "" if step > WINDOW else f" (window includes start-up: last line at step {step})"
    print(f"  {name:13s} {total:10,.0f} tgt tok/s  (rank 0: {rate:,.0f} x {processes} process(es), "
          f"last progress line at step {step}, run {wall:.0f} s){note}", flush=True)
    return total


def main() -> None:
    args = parse_args()
    names = [n.strip() for n in args.configs.split(",") if n.strip()]
    unknown = [n for n in names if n not in CONFIGS]
    if unknown:
        raise SystemExit(f"--configs: unknown {', '.join(unknown)}; choose from {', '.join(CONFIGS)}")
    os.environ.setdefault("ENCDEC_DATA_DIR", "/work/shared/datasets")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("WANDB_MODE", "offline")
    print("command: " + shlex.join(["python", *sys.argv]), flush=True)
    print(f"ENCDEC_DATA_DIR={os.environ['ENCDEC_DATA_DIR']}  cpus={os.cpu_count()}  python={sys.executable}", flush=True)

    rates: dict[str, list[float]] = {n: [] for n in names}
    with tempfile.TemporaryDirectory(prefix="ddp_cpu_bench-") as tmp:
        root = Path(args.out) if args.out else Path(tmp)
        for r in range(args.repeats):
            order = names[r % len(names):] + names[: r % len(names)]
            print(f"round {r + 1}/{args.repeats}: {', '.join(order)}", flush=True)
            for name in order:
                rates[name].append(run(name, root / f"{name}-{r}", args))

    def med(name: str) -> float:
        return statistics.median(rates[name])

    print("\n| configuration | target tokens/s (median) | range | runs |")
    print("|---|---|---|---|")
    for name in names:
        print(f"| {name} | {med(name):,.0f} | {min(rates[name]):,.0f}-{max(rates[name]):,.0f} | {len(rates[name])} |")
    if "default" in rates:
        print()
        if "ddp_cpu" in rates:
            print(f"ddp_cpu (2 processes x 1 thread) vs default (1 process x 2 threads): "
                  f"{med('ddp_cpu') / med('default'):.2f}x the target tokens/s")
        for switch in ("sdpa", "checkpointing"):
            if switch in rates:
                print(f"{switch}: step time {med('default') / med(switch):.2f}x the default's (same data order)")
    if args.steps <= WINDOW:
        print(f"\n(--steps {args.steps} <= {WINDOW}: the rates include the start-up steps; a smoke test, not a measurement)")


if __name__ == "__main__":
    main()
