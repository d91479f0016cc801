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

from encdec.cli.help import register_help_resolvers  # noqa: E402

register_help_resolvers(CONF_DIR)  # the --help templates list conf/ as it is


def run_reporting_user_errors(fn, *args):
    """Run an app; a user's mistake (bad config key, bad data line) ends with one clear
    line on stderr and exit status 1, not a traceback. Hydra wraps errors raised inside
    `instantiate`, so the cause is unwrapped."""
    from hydra.errors import InstantiationException

    from encdec.errors import UserError

    try:
        return fn(*args)
    except (UserError, InstantiationException) as exc:
        cause = exc if isinstance(exc, UserError) else exc.__cause__
        if not isinstance(cause, UserError):
            raise
        raise SystemExit(f"error: {cause}") from None
