"""encdec vs RecBole 1.2.1 on MovieLens-100K next-item recommendation, in one run.

For each model (SASRec, GRU4Rec) it runs RecBole's implementation (bench/.venv-recbole, its
own venv) and then encdec's experiment config (this venv) back to back, so both see the
same machine load; same data files (the ml-100k folder of the recbole==1.2.1 wheel), same
leave-one-out split by time, history 50, embedding size 64, layers, epochs, full ranking.
Writes bench/logs/recsys_vs_recbole.json and prints a table.

  OMP_NUM_THREADS=1 .venv/bin/python bench/recsys_vs_recbole.py --epochs 3
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT / "bench"
EXPERIMENTS = {"SASRec": "ml100k_sasrec", "GRU4Rec": "ml100k_gru4rec"}


def run(cmd: list[str], env: dict, log, cwd: Path = ROOT) -> float:
    print("$", " ".join(cmd), file=log, flush=True)
    start = time.perf_counter()
    proc = subprocess.run(cmd, env=env, stdout=log, stderr=subprocess.STDOUT, cwd=cwd)
    if proc.returncode != 0:
        raise SystemExit(f"failed ({proc.returncode}): {' '.join(cmd)}; see the log")
    return time.perf_counter() - start


def our_split_targets(data_dir: Path) -> tuple[dict, dict]:
    from encdec_tasks.recommendation.data import MovieLens
    from encdec_tasks.recommendation.protocol import chronological_sequences, leave_one_out

    splits = leave_one_out(chronological_sequences(MovieLens(str(data_dir.parent), str(data_dir.parent)).read()), 50)
    return ({c.user: c.targets[0] for c in splits["val"]}, {c.user: c.targets[0] for c in splits["test"]})


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--layers", type=int, default=2)
    p.add_argument("--models", nargs="+", default=["SASRec", "GRU4Rec"])
    p.add_argument("--data-dir", default=str(ROOT / ".cache" / "data" / "ml-100k"),
                   help="folder with ml-100k.inter/.item (encdec-train data=ml100k extracts it there)")
    p.add_argument("--ours", nargs="*", default=[], help="extra overrides for the encdec runs")
    args = p.parse_args()
    data_dir = Path(args.data_dir)
    out_dir = BENCH / "runs" / "recsys_vs_recbole"
    out_dir.mkdir(parents=True, exist_ok=True)
    log = open(BENCH / "logs" / "recsys_vs_recbole.log", "a")
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    summary = BENCH / "logs" / "recsys_vs_recbole.json"
    # runs of single models (--models GRU4Rec) add to the summary instead of replacing it
    results = json.loads(summary.read_text()) if summary.exists() else {"models": {}}
    val_ours, test_ours = our_split_targets(data_dir)
    for model in args.models:
        rb_out = out_dir / f"recbole_{model}.json"
        run([str(BENCH / ".venv-recbole" / "bin" / "python"), str(BENCH / "recbole_side.py"), "--model", model,
             "--data-path", str(data_dir.parent), "--epochs", str(args.epochs), "--layers", str(args.layers),
             "--out", str(rb_out), "--checkpoint-dir", str(out_dir / "recbole_saved")],
            {**env, "TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD": "1"}, log, cwd=out_dir)  # its log_tensorboard/ lands there
        rb = json.loads(rb_out.read_text())
        run_dir = out_dir / f"encdec_{model}"
        layer_key = "encoder.layers"
        run([sys.executable, "-m", "encdec.cli.train", f"experiment={EXPERIMENTS[model]}",
             f"data.root={data_dir.parent}", f"data.cache_dir={data_dir.parent}", "data.download=false",
             f"trainer.max_epochs={args.epochs}", f"{layer_key}={args.layers}",
             f"trainer.check_val_every_n_epoch={args.epochs}",  # score the final model, as RecBole's side
             "logger=csv", "callbacks=none", "+callbacks.epoch_timer._target_=epoch_timer.EpochTimer",
             f"hydra.run.dir={run_dir}", *args.ours],
            {**env, "PYTHONPATH": str(BENCH), "WANDB_MODE": "offline"}, log)
        ours_test = {k: v["value"] for k, v in json.loads((run_dir / "metrics" / "test.json").read_text()).items()}
        ours_val = {k: v["value"] for k, v in json.loads((run_dir / "metrics" / "val.json").read_text()).items()}
        protocol = json.loads((run_dir / "metrics" / "test.json").read_text())["ndcg@10"]["protocol"]
        epoch_times = json.loads((run_dir / "epoch_times.json").read_text())
        same_val = sum(val_ours.get(u) == i for u, i in rb["valid_targets"].items()) / len(rb["valid_targets"])
        same_test = sum(test_ours.get(u) == i for u, i in rb["test_targets"].items()) / len(rb["test_targets"])
        results["models"][model] = {
            "epochs": args.epochs, "layers": args.layers, "ours_overrides": args.ours,
            "recbole": {"test": rb["test"], "valid": rb["valid"], "epoch_seconds": rb["epoch_seconds"],
                        "train_examples": rb["num_train_examples"], "params": rb["params"], "config": rb["config"]},
            "encdec": {"test": ours_test, "valid": ours_val, "epoch_seconds": epoch_times, "protocol": protocol},
            "split_agreement": {"valid_targets": same_val, "test_targets": same_test,
                                "users": [len(rb["test_targets"]), len(test_ours)]},
        }
        summary.write_text(json.dumps(results, indent=1) + "\n")
    print(f"{'model':8} {'side':8} {'NDCG@10':>8} {'HR@10':>8} {'MRR@10':>8} {'s/epoch':>8}")
    for model, r in results["models"].items():
        rb, ours = r["recbole"], r["encdec"]
        rb_s = sum(rb["epoch_seconds"]) / len(rb["epoch_seconds"])
        our_s = sum(ours["epoch_seconds"]) / len(ours["epoch_seconds"])
        print(f"{model:8} {'recbole':8} {rb['test']['ndcg@10']:8.4f} {rb['test']['hit@10']:8.4f} {rb['test']['mrr@10']:8.4f} {rb_s:8.1f}")
        print(f"{model:8} {'encdec':8} {ours['test']['ndcg@10']:8.4f} {ours['test']['hr@10']:8.4f} {ours['test']['mrr@10']:8.4f} {our_s:8.1f}")
        print(f"  split agreement with RecBole: valid {r['split_agreement']['valid_targets']:.4f}, test {r['split_agreement']['test_targets']:.4f}")


if __name__ == "__main__":
    main()
