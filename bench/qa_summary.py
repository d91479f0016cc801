"""Markdown table of EM/F1 (overall, per question type, unseen names, HasAns/NoAns) and
training steps of QA runs: python bench/qa_summary.py <run_dir>..."""

import json
import sys
from pathlib import Path

import torch

KEYS = ["em", "f1", "f1_has_ans", "f1_no_ans", "f1_unseen", "f1_one_fact", "f1_who", "f1_two_facts",
        "f1_counting", "f1_yes_no", "f1_lists", "f1_no_answer"]


def main(runs: list[str]) -> None:
    print("| run | steps | " + " | ".join(KEYS) + " |")
    print("|---" * (len(KEYS) + 2) + "|")
    for run in map(Path, runs):
        metrics = json.loads((run / "metrics" / "test.json").read_text())
        steps = torch.load(run / "checkpoints" / "last.ckpt", weights_only=True, map_location="cpu")["global_step"]
        cells = [f"{metrics[k]['value']:.1f}" if k in metrics else "-" for k in KEYS]
        print(f"| {run.name} | {steps} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main(sys.argv[1:])
