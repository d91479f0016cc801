"""`encdec-eval run_dir=<run> [split=test] [decoding=beam] [checkpoint=best]`: score a trained run.

`progress=true` shows a live bar in a terminal and, anywhere else (a log file, a cluster
job), a plain line every `+progress_every_seconds=N` (30) and at the end; `progress=plain`
or `bar` forces one, `progress=false` shows neither.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import hydra
import pytorch_lightning as pl
from omegaconf import DictConfig

from encdec.atomic_file import write_atomic
from encdec.build import build_component, run_decoding
from encdec.checkpointing import AtomicCheckpointIO
from encdec.cli import CONF_DIR, run_reporting_user_errors
from encdec.cli.quiet import silence_third_party_noise
from encdec.data.datamodule import EncDecDataModule
from encdec.lightning_module import EncDecModule
from encdec.progress import eval_progress
from encdec.decoding.quantize import for_serving
from encdec.run_dir import load_run

log = logging.getLogger("encdec.eval")


def evaluate(cfg: DictConfig) -> dict[str, float]:
    if not cfg.get("verbose"):
        silence_third_party_noise()
    saved, adapter, model = load_run(cfg.run_dir, cfg.checkpoint, stage="eval", data_overrides=cfg.get("data"))
    cfg.decoding = run_decoding(cfg.decoding, saved)  # the decoding groups read the run's task rules
    int8, onednn = bool(cfg.get("int8")), bool(cfg.get("onednn"))
    fp32 = cfg.decoding.get("dtype", "fp32") == "fp32" and str(cfg.get("precision", "32-true")) in ("32", "32-true")
    model = for_serving(model, int8=int8, onednn=onednn, fp32=fp32)
    out_dir = Path(cfg.run_dir).resolve() / "eval" / cfg.name
    module = EncDecModule(
        model=model, objective=None, adapter=adapter, decoding=build_component(cfg.decoding, "decoding"),
        run_dir=out_dir, num_samples=cfg.num_samples, test_split=cfg.split,
    )
    loader_cfg = {**saved.loader, **cfg.get("loader", {})}
    datamodule = EncDecDataModule(adapter, seed=saved.seed, test_split=cfg.split, **loader_cfg)
    # progress=true: a live bar in a terminal, plain lines (every progress_every_seconds) elsewhere
    progress = eval_progress(cfg.progress, cfg.split, cfg.get("progress_every_seconds") or 30.0)
    trainer = pl.Trainer(
        accelerator="cpu" if int8 or onednn else "auto",  # int8 / oneDNN kernels exist on the CPU only devices=1, logger=False, precision=cfg.precision,
        default_root_dir=str(out_dir), plugins=[AtomicCheckpointIO()],
        callbacks=[progress] if progress is not None else [],
        enable_progress_bar=progress is not None,
    )
    results = trainer.test(module, datamodule=datamodule, verbose=False)[0]
    out_dir.mkdir(parents=True, exist_ok=True)
    metrics = {k: float(v) for k, v in results.items()}
    protocol_file = out_dir / "metrics" / f"{cfg.split}.json"
    protocol = json.loads(protocol_file.read_text()) if protocol_file.exists() else {}
    summary = {"split": cfg.split, "checkpoint": cfg.checkpoint, "decoding": dict(cfg.decoding), "metrics": metrics, "protocol": protocol}
    write_atomic(out_dir / "results.json", json.dumps(summary, indent=2) + "\n")
    for name, value in metrics.items():
        print(f"{name}: {value:.2f}")
    for name, info in protocol.items():
        print(f"  {name} protocol: {info['protocol']}")
    print(f"results: {out_dir / 'results.json'}")
    return metrics


@hydra.main(config_path=CONF_DIR, config_name="eval", version_base="1.3")
def main(cfg: DictConfig) -> None:
    run_reporting_user_errors(evaluate, cfg)


if __name__ == "__main__":
    main()
