"""Hydra apps: `encdec-train`, `encdec-eval`, `encdec-predict` (also `python -m encdec.cli.X`)."""

import os
from pathlib import Path

from omegaconf import OmegaConf

# The config tree ships next to the source root; ENCDEC_CONF_DIR points elsewhere.
CONF_DIR = os.environ.get("ENCDEC_CONF_DIR") or str(Path(__file__).resolve().parents[3] / "conf")


def _first_set(*values):
    return next((v for v in values if v not in (None, "", "null")), None)


if not OmegaConf.has_resolver("first_set"):
    OmegaConf.register_new_resolver("first_set", _first_set)
