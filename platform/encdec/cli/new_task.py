"""`encdec-new-task NAME`: write a working task (adapter, reader, test fixtures, yamls) that
passes the adapter contract as generated, into this repository or into a package of your own.

    encdec-new-task digits --dest my_tasks           # my_tasks/digits/*.py, my_tasks/conf/{task,data}/digits.yaml
    encdec-train task=digits hydra.searchpath=[pkg://my_tasks.conf]
"""

from __future__ import annotations

import argparse
import keyword
from pathlib import Path
from string import Template

from encdec.cli import CONF_DIR
from encdec.errors import ConfigError

TEMPLATES = Path(__file__).with_name("new_task_templates")
REPO_TASKS = Path(CONF_DIR).parent / "tasks"  # this repository's adapters (import name encdec_tasks)
TINY_OVERRIDES = {"closed": "", "shared": '"task.adapter.tokenizer.vocab_size=120"'}


def plan(name: str, dest: Path, vocab: str, package: str | None = None) -> dict[Path, str]:
    """Files to write -> their text."""
    if not name.isidentifier() or keyword.iskeyword(name) or name != name.lower():
        raise ConfigError(f"task name {name!r}: use a lower-case Python identifier, e.g. word_sort")
    in_repo = REPO_TASKS.is_dir() and dest.resolve() == REPO_TASKS.resolve()
    package = package or ("encdec_tasks" if in_repo else dest.resolve().name)
    if not package.replace(".", "_").isidentifier():
        raise ConfigError(f"--dest {dest}: {package!r} is no Python package name; pass --package <import name>")
    conf = Path(CONF_DIR) if in_repo else dest / "conf"
    values = {"name": name, "Name": name.title().replace("_", ""), "package": package, "tiny_overrides": TINY_OVERRIDES[vocab]}
    render = lambda template: Template((TEMPLATES / template).read_text(encoding="utf-8")).substitute(values)  # noqa: E731
    files = {
        dest / name / "__init__.py": render("__init__.py.tmpl"),
        dest / name / "adapter.py": render("adapter.py.tmpl"),  # the task yaml picks the vocabulary
        dest / name / "data.py": render("data.py.tmpl"),
        dest / name / "fixtures.py": render("fixtures.py.tmpl"),
        conf / "task" / f"{name}.yaml": render(f"task_{vocab}.yaml.tmpl"),
        conf / "data" / f"{name}.yaml": render("data.yaml.tmpl"),
    }
    if not in_repo:  # the user's package and its config package (Hydra's pkg:// imports it)
        files.setdefault(dest / "__init__.py", "")
        files.setdefault(conf / "__init__.py", "")
    return files


def write(files: dict[Path, str]) -> list[Path]:
    """Write the files; existing ones are refused (package __init__ files are kept)."""
    clash = [p for p, text in files.items() if p.exists() and text]
    if clash:
        raise ConfigError(f"{clash[0]} exists: choose another task name or remove it")
    written = []
    for path, text in files.items():
        if path.exists():
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        written.append(path)
    return written


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="encdec-new-task", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("name", help="task name: the folder, `task=<name>` and `data=<name>`")
    vocab = parser.add_mutually_exclusive_group()
    vocab.add_argument("--shared-vocab", dest="vocab", action="store_const", const="shared",
                       help="one subword (BPE) vocabulary for source and target text")
    vocab.add_argument("--closed-vocab", dest="vocab", action="store_const", const="closed",
                       help="a closed word vocabulary (digits, labels, item ids): the default")
    parser.add_argument("--dest", type=Path, default=Path("."),
                        help="package folder to write into (default: the current directory; this repository's tasks/ for an in-tree task)")
    parser.add_argument("--package", help="import name of --dest (default: its folder name; encdec_tasks for tasks/)")
    args = parser.parse_args(argv)
    try:
        files = plan(args.name, args.dest, args.vocab or "closed", args.package)
        written = write(files)
    except ConfigError as exc:
        raise SystemExit(f"error: {exc}") from None
    for path in written:
        print(f"wrote {path}")
    conf_pkg = f"{args.package or args.dest.resolve().name}.conf"
    in_repo = Path(CONF_DIR) in {p.parents[1] for p in files}
    print(f"\ncontract:  python -c \"from encdec.testing import check_adapter_contract as c; c('{args.name}', '/tmp/{args.name}-contract'"
          + ("" if in_repo else f", searchpath=['pkg://{conf_pkg}']") + ")\"")
    print(f"train:     encdec-train task={args.name}" + ("" if in_repo else f" 'hydra.searchpath=[pkg://{conf_pkg}]'"))
    if in_repo:
        print(f"package:   add \"encdec_tasks.{args.name}\" to pyproject.toml's packages for non-editable installs")
    else:
        print(f"           ({args.dest.resolve().parent} on PYTHONPATH, or your package installed with an "
              f"entry point [project.entry-points.\"encdec.conf\"] {args.name} = \"{conf_pkg}\")")


if __name__ == "__main__":
    main()
