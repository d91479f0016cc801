"""Every yaml under conf/ opens with a comment saying what the file is for and the command
that uses it: `--help` shows its first line, and a person opening the file sees how to use it."""

import re
from pathlib import Path

from conftest import CONF_DIR

COMMAND = re.compile(r"\bencdec-(?:train|eval|predict|average|runs|new-task)\b|-m encdec\.cli\.\w+")


def leading_comment(path: Path) -> list[str]:
    """The comment lines that open the file, after a `# @package` line, without their `#`."""
    lines = path.read_text(encoding="utf-8").splitlines()
    if lines and re.match(r"#\s*@package\b", lines[0]):
        lines = lines[1:]
    block = []
    for line in lines:
        if not line.startswith("#"):
            break
        block.append(line.lstrip("#").strip())
    return block


def header_problems(path: Path, conf_dir: Path = CONF_DIR) -> list[str]:
    """What the file's header lacks ([] when it says what the file is for and how to use it)."""
    rel = path.relative_to(conf_dir)
    comment = leading_comment(path)
    if not any(comment):
        return [f"conf/{rel}: no header comment (the first lines, after any `# @package` line)"]
    problems = []
    text = "\n".join(comment)
    if not COMMAND.search(text):
        problems.append(f"conf/{rel}: the header names no command that uses the file (e.g. `#   encdec-train ...`)")
    group = rel.parent.as_posix()
    if group in (".", "hydra/help"):
        return problems
    if COMMAND.match(comment[0]) or len(comment[0].split()) < 3:
        problems.append(f"conf/{rel}: the header's first line is what --help shows: say what the option is for")
    if path.stem != "default" and f"{group}={path.stem}" not in text:
        problems.append(f"conf/{rel}: the header's command does not select it ({group}={path.stem})")
    return problems


def test_every_yaml_under_conf_says_what_it_is_for_and_the_command_that_uses_it():
    problems = [p for path in sorted(CONF_DIR.rglob("*.yaml")) for p in header_problems(path)]
    assert not problems, "\n".join(problems)


def test_a_yaml_without_a_header_or_command_is_named(tmp_path):
    (tmp_path / "encoder").mkdir()
    bare = tmp_path / "encoder" / "bare.yaml"
    bare.write_text("# @package _global_\n_target_: x.Y\n# a comment further down does not count\n")
    assert header_problems(bare, tmp_path) == ["conf/encoder/bare.yaml: no header comment (the first lines, after any `# @package` line)"]
    prose_only = tmp_path / "encoder" / "prose.yaml"
    prose_only.write_text("# A fine encoder for many things.\n_target_: x.Y\n")
    assert [p.split(": ", 1)[1][:30] for p in header_problems(prose_only, tmp_path)] == [
        "the header names no command th", "the header's command does not "]
    good = tmp_path / "encoder" / "good.yaml"
    good.write_text("# A fine encoder for many things.\n#   encdec-train encoder=good\n_target_: x.Y\n")
    assert header_problems(good, tmp_path) == []
