"""`--help` text generated from the config tree itself, so it never drifts from it.

Each option of a config group is described by its yaml's own header comment (the comment
lines at the top of the file, after a `# @package` line); a file without one is described
by what it composes or instantiates. Top-level keys are described by their comments in the
app's primary config. Hydra's help templates (conf/hydra/help/*.yaml) call these through
the `encdec_config_groups` and `encdec_keys` resolvers.
"""

from __future__ import annotations

import re
from pathlib import Path

import yaml
from omegaconf import OmegaConf

_PACKAGE_LINE = re.compile(r"^#\s*@package\b")
_TOP_KEY = re.compile(r"^([A-Za-z_][\w]*):\s*(.*?)\s*(?:#\s*(.*))?$")


def header_comment(path: Path) -> str:
    """The first line of the comment block that opens a yaml file ('' if none)."""
    for line in path.read_text(encoding="utf-8").splitlines():
        stripped = line.strip()
        if not stripped.startswith("#"):
            return ""
        if _PACKAGE_LINE.match(stripped):
            continue
        text = stripped.lstrip("#").strip()
        if text:
            return text
    return ""


def _targets(node, found: list[str]) -> list[str]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "_target_":
                found.append(str(value))
            else:
                _targets(value, found)
    elif isinstance(node, list):
        for value in node:
            _targets(value, found)
    return found


def option_description(path: Path) -> str:
    """The header comment, else 'composes ...' / the classes and functions it instantiates."""
    text = header_comment(path)
    if text:
        return text
    content = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    defaults = content.get("defaults") if isinstance(content, dict) else None
    if defaults:
        names = [d if isinstance(d, str) else ", ".join(f"{k}={v}" for k, v in d.items()) for d in defaults]
        names = [n for n in names if n != "_self_"]
        return "composes " + ", ".join(names)
    targets = _targets(content, [])
    return "instantiates " + ", ".join(targets) if targets else ""


def config_groups_help(conf_dir: str | Path, groups: list[str] | None = None) -> str:
    """Every option of each config group (all groups but hydra/ when none are named), one
    line each: `  name  description`."""
    conf_dir = Path(conf_dir)
    names = groups or sorted(p.name for p in conf_dir.iterdir() if p.is_dir() and p.name != "hydra")
    lines: list[str] = []
    for group in names:
        options = sorted((conf_dir / group).glob("*.yaml"))
        if not options:
            continue
        lines.append(f"{group}=")
        width = max(len(p.stem) for p in options)
        lines += [f"  {p.stem.ljust(width)}  {option_description(p)}".rstrip() for p in options]
    return "\n".join(lines)


def top_level_keys_help(config_file: str | Path) -> str:
    """The primary config's own keys (not its defaults list or nested blocks) with the
    comment on their line, or on the comment line just above them."""
    lines, above = [], ""
    for line in Path(config_file).read_text(encoding="utf-8").splitlines():
        if line.startswith("#"):
            above = line.lstrip("#").strip()
            continue
        match = _TOP_KEY.match(line)
        if match and match.group(1) not in ("defaults", "hydra") and match.group(2) not in ("",):
            key, value, comment = match.groups()
            lines.append((f"{key}={value}", "; ".join(c for c in (above, comment) if c)))
        above = "" if not line.startswith(" ") else above
    width = max((len(k) for k, _ in lines), default=0)
    return "\n".join(f"  {k.ljust(width)}  {c}".rstrip() for k, c in lines)


def _for_template(text: str) -> str:
    # Hydra fills the help template with string.Template: a literal `$` must be doubled
    return text.replace("$", "$$")


def register_help_resolvers(conf_dir: str | Path) -> None:
    """`${encdec_config_groups:task,data}` (no argument: every group) and `${encdec_keys:train}`."""
    if not OmegaConf.has_resolver("encdec_config_groups"):
        OmegaConf.register_new_resolver(
            "encdec_config_groups", lambda *groups: _for_template(config_groups_help(conf_dir, list(groups) or None))
        )
    if not OmegaConf.has_resolver("encdec_keys"):
        OmegaConf.register_new_resolver(
            "encdec_keys", lambda app: _for_template(top_level_keys_help(Path(conf_dir) / f"{app}.yaml"))
        )
