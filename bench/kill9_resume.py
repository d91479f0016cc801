"""Kill a tiny training with SIGKILL at random moments, resume it each time, and check that
it ends bit-identical to an uninterrupted run (issue: runs you can trust).

    .venv/bin/python bench/kill9_resume.py --kills 20 [--seed 0] [--workdir /tmp/kill9]

Each round starts the run (or `resume=` once a last.ckpt exists), waits until it writes a
checkpoint (it saves every step, so many kills land mid-write), sleeps a random 0-300 ms and
kills it. A round counts as continued when the next process logs that it resumed from the
step of the last.ckpt the kill left behind. Prints one line per kill and a summary.
"""

from __future__ import annotations

import argparse
import random
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import torch

TINY = [
    "data=parallel", "data.src_lang=de", "data.tgt_lang=en", "model.d_model=32",
    "encoder.layers=1", "encoder.heads=2", "encoder.ffn=64", "decoder.layers=1", "decoder.heads=2", "decoder.ffn=64",
    "optim.schedule.warmup_steps=2", "task.adapter.tokenizer.vocab_size=120", "logger=csv", "callbacks=none",
    "decoding.max_len=24", "loader.max_sentences=60", "trainer.max_epochs=1000", "test_after_training=false",
    "checkpoint_every_minutes=null",
]


def train(args: list[str], **kw) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "encdec.cli.train", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, **kw)


def step_of(ckpt: Path) -> int:
    return int(torch.load(ckpt, weights_only=True)["global_step"])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--kills", type=int, default=20)
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/encdec-kill9"))
    opts = parser.parse_args()
    from encdec_tasks.translation.fixtures import write_parallel_corpus

    shutil.rmtree(opts.workdir, ignore_errors=True)
    corpus = write_parallel_corpus(opts.workdir / "corpus")
    common = [*TINY, f"data.root={corpus}", f"trainer.max_steps={opts.steps}"]
    straight, run = opts.workdir / "straight", opts.workdir / "run"
    assert train([*common, f"hydra.run.dir={straight}"]).wait() == 0
    rng, last = random.Random(opts.seed), run / "checkpoints" / "last.ckpt"
    kills, continued = 0, 0

    def say(line: str) -> None:
        print(line, flush=True)

    expected_step = None
    while kills < opts.kills:
        since = last.stat().st_mtime_ns if last.exists() else 0
        proc = train([f"resume={run}", "checkpoint_every_n_steps=1"] if since else
                     [*common, f"hydra.run.dir={run}", "checkpoint_every_n_steps=1"])
        while not (last.exists() and last.stat().st_mtime_ns != since) and proc.poll() is None:
            time.sleep(0.005)
        time.sleep(rng.uniform(0.0, 0.3))
        proc.kill()
        output = proc.communicate()[0]
        if expected_step is not None:
            resumed = re.search(r"from checkpoints/last\.ckpt at step (\d+)", output)
            ok = resumed is not None and int(resumed.group(1)) == expected_step
            continued += ok
            say(f"  resumed at step {resumed.group(1) if resumed else '?'} (last.ckpt said {expected_step}): {'ok' if ok else 'WRONG'}")
        if proc.returncode != -signal.SIGKILL:
            say("  the run finished before the kill; restart with more --steps")
            break
        kills += 1
        stray = list((run / "checkpoints").glob("*.tmp"))
        expected_step = step_of(last)  # raises if a kill left an unreadable last.ckpt
        say(f"kill {kills}: last.ckpt loadable at step {expected_step}, {len(stray)} temporary file(s) left")
    final = train([f"resume={run}", "checkpoint_every_n_steps=1"])
    output = final.communicate()[0]
    resumed = re.search(r"from checkpoints/last\.ckpt at step (\d+)", output)
    continued += resumed is not None and int(resumed.group(1)) == expected_step
    a = torch.load(straight / "checkpoints/last.ckpt", weights_only=True)
    b = torch.load(last, weights_only=True)
    same = a["global_step"] == b["global_step"] and all(torch.equal(a["state_dict"][k], b["state_dict"][k]) for k in a["state_dict"])
    print(f"{kills} kills; {continued} of {kills} resumes continued from the step of the last.ckpt left behind; "
          f"final weights {'bit-identical to' if same else 'DIFFERENT from'} the uninterrupted run "
          f"(step {b['global_step']} vs {a['global_step']}); stray temporaries now: "
          f"{len(list((run / 'checkpoints').glob('*.tmp')))}")


if __name__ == "__main__":
    main()
