"""Hydra apps: `encdec-train`, `encdec-eval`, `encdec-predict` (also `python -m encdec.cli.X`)."""

import importlib.util
import os
from importlib.metadata import entry_points
from pathlib import Path

from hydra.core.config_search_path import ConfigSearchPath
from hydra.core.plugins import Plugins
from hydra.plugins.search_path_plugin import SearchPathPlugin
from omegaconf import OmegaConf

#: entry-point group under which a user's package names its config package, e.g. in its
#: pyproject.toml `[project.entry-points."encdec.conf"] my_tasks = "my_tasks.conf"`
CONF_ENTRY_POINTS = "encdec.conf"


def _conf_dir() -> str:
    """The config tree: ENCDEC_CONF_DIR, else the installed package `encdec_conf` (`conf/`,
    located without importing it), else `conf/` beside the source root (an editable install
    made before `encdec_conf` was declared)."""
    if os.environ.get("ENCDEC_CONF_DIR"):
        return os.environ["ENCDEC_CONF_DIR"]
    spec = importlib.util.find_spec("encdec_conf")
    if spec is not None and spec.submodule_search_locations:
        return str(next(iter(spec.submodule_search_locations)))
    return str(Path(__file__).resolve().parents[3] / "conf")


CONF_DIR = _conf_dir()


class EntryPointConfigs(SearchPathPlugin):
    """Puts every config package named in the `encdec.conf` entry-point group on Hydra's
    search path (after this package's own `conf/`), so an installed user package's
    `conf/task/*.yaml` and `conf/data/*.yaml` are options of `task=` and `data=`. Without an
    entry point, `hydra.searchpath=[pkg://my_tasks.conf]` on the command line does the same."""

    def manipulate_search_path(self, search_path: ConfigSearchPath) -> None:
        for ep in entry_points(group=CONF_ENTRY_POINTS):
            search_path.append(provider=f"{CONF_ENTRY_POINTS}:{ep.name}", path=f"pkg://{ep.value}")


Plugins.instance().register(EntryPointConfigs)


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
