"""encdec from Python: the configs, checks and steps of the command-line apps, in-process.

    import encdec.api as encdec

    result = encdec.train(["experiment=quickstart", "hydra.run.dir=runs/demo"])
    print(result.metrics["test/sacrebleu"])
    run = encdec.load_run("runs/demo", decoding=["decoding=beam", "decoding.beam_size=5"])
    run.predict(["Ein Hund rennt."])                 # -> ["A dog is running."]
    encdec.evaluate(["run_dir=runs/demo", "split=test", "decoding=beam"])

Each function takes the overrides a user would type after the command; a mistake raises the
same `encdec.errors.UserError` whose message the CLI prints as its one line.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

from hydra import compose as _hydra_compose
from hydra import initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf, open_dict

from encdec.cli import CONF_DIR


def compose(app: str, overrides: Sequence[str] = ()) -> DictConfig:
    """The config `encdec-<app>` would run with (app: train, eval or predict), Hydra's own
    node removed; Hydra's runtime values (`${hydra:...}`, the run directory) are set as in a
    command-line run, and the run directory exists."""
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        cfg = _hydra_compose(config_name=app, overrides=list(overrides), return_hydra_config=True)
    with open_dict(cfg):
        cfg.hydra.runtime.cwd = os.getcwd()
        cfg.hydra.runtime.output_dir = str(Path(cfg.hydra.run.dir).resolve())
        cfg.hydra.job.name = app
    HydraConfig.instance().set_config(cfg)
    Path(cfg.hydra.runtime.output_dir).mkdir(parents=True, exist_ok=True)
    job = OmegaConf.masked_copy(cfg, [k for k in cfg if k != "hydra"])
    OmegaConf.set_struct(job, True)
    return job


def train(overrides: Sequence[str] = ()):
    """Train (and test) as `encdec-train overrides...`; returns TrainResult(metrics, monitor,
    monitor_mode). The run directory is `hydra.run.dir` (default runs/<date>/<time>)."""
    from encdec.cli.train import train as _train

    return _train(compose("train", overrides))


def evaluate(overrides: Sequence[str]) -> dict[str, float]:
    """Score a run as `encdec-eval overrides...` (give `run_dir=`); returns the metrics."""
    from encdec.cli.evaluate import evaluate as _evaluate

    return _evaluate(compose("eval", overrides))


@dataclass
class Run:
    """A trained run loaded for inference: its config, task adapter, model and search."""

    cfg: DictConfig
    adapter: Any
    model: Any
    decoding: Any

    def predict(self, inputs: Sequence[str], n_best: bool = False, batch_size: int = 64) -> list:
        """One output per input (as `encdec-predict` would print it), or with n_best=True a
        list of (output, score) pairs per input, best first."""
        import torch

        from encdec.cli.predict import predict_examples

        with torch.no_grad():
            results = predict_examples(self.adapter.parse_inputs(list(inputs)), self.adapter, self.model,
                                       self.decoding, batch_size)
        return results if n_best else [pairs[0][0] for pairs in results]


def load_run(run_dir: str | Path, checkpoint: str = "best", decoding: Sequence[str] = ()) -> Run:
    """A run directory of `encdec-train`, ready to predict; `decoding` takes the same
    overrides as `encdec-predict` (e.g. ["decoding=beam", "decoding.beam_size=5"])."""
    from encdec.build import build_component, run_decoding
    from encdec.run_dir import load_run as _load

    cfg = compose("predict", [f"run_dir={Path(run_dir).resolve()}", f"checkpoint={checkpoint}", *decoding])
    saved, adapter, model = _load(cfg.run_dir, cfg.checkpoint, stage="predict")
    return Run(saved, adapter, model, build_component(run_decoding(cfg.decoding, saved), "decoding"))
