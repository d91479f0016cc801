"""Every yaml under conf/ opens with a comment saying what the file is for and the command
that uses it: `--help` shows its first line, and a person opening the file sees how to use it."""

import re
from pathlib import Path

import pytest

from conftest import CONF_DIR

COMMAND = re.compile(r"\bencdec-(?:train|eval|predict|average|runs|new-task)\b|-m encdec\.cli\.\w+")


def leading_comment(text: str) -> list[str]:
    """The comment lines that open a yaml text, after a `# @package` line, without their `#`."""
    lines = text.splitlines()
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
    return header_problems_of_text(path.relative_to(conf_dir), path.read_text(encoding="utf-8"))


def header_problems_of_text(rel: Path, text: str) -> list[str]:
    """As header_problems, for the text of conf/<rel>."""
    comment = leading_comment(text)
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
    if rel.stem != "default" and f"{group}={rel.stem}" not in text:
        problems.append(f"conf/{rel}: the header's command does not select it ({group}={rel.stem})")
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


@pytest.mark.parametrize("vocab", ["shared", "closed"])
def test_a_task_scaffolded_into_conf_by_encdec_new_task_has_headers_too(vocab):
    from encdec.cli import new_task

    files = new_task.plan("word_swap", new_task.REPO_TASKS, vocab)
    yamls = {path: text for path, text in files.items() if path.suffix == ".yaml"}
    assert {p.relative_to(CONF_DIR).as_posix() for p in yamls} == {"task/word_swap.yaml", "data/word_swap.yaml"}
    for path, text in yamls.items():
        assert header_problems_of_text(path.relative_to(CONF_DIR), text) == [], text
