"""Whole-file writes: a reader sees the old content or the new, never a part, and nothing is
left behind by a write that failed."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import textwrap

import pytest

from encdec.atomic_file import atomic_open, temporary_glob, write_atomic


def test_a_failed_write_keeps_the_old_file_and_leaves_no_temporary(tmp_path):
    path = tmp_path / "results.json"
    write_atomic(path, "old\n")
    with pytest.raises(RuntimeError):
        with atomic_open(path) as f:
            f.write("half of the new")
            raise RuntimeError("killed mid-write")
    assert path.read_text() == "old\n"
    assert list(tmp_path.iterdir()) == [path]


def test_text_and_bytes_replace_the_whole_file_with_normal_permissions(tmp_path):
    path = tmp_path / "out" / "a.txt"  # the folder is created
    write_atomic(path, "a long first content\n")
    write_atomic(path, "short\n")
    assert path.read_text() == "short\n"
    write_atomic(path, b"\x00\x01")
    assert path.read_bytes() == b"\x00\x01"
    mask = os.umask(0)
    os.umask(mask)
    assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~mask
    with pytest.raises(ValueError, match="mode 'w' or 'wb'"):
        with atomic_open(path, "a"):
            pass


def test_a_process_killed_mid_write_leaves_the_previous_file(tmp_path):
    """SIGKILL between writing and renaming: the target keeps its old content; only a
    temporary that `temporary_glob` finds is left."""
    path = tmp_path / "vocabulary.json"
    write_atomic(path, "old\n")
    script = textwrap.dedent(
        f"""
        import os, signal
        from encdec.atomic_file import atomic_open
        with atomic_open({str(path)!r}) as f:
            f.write("new content that never lands")
            f.flush()
            os.kill(os.getpid(), signal.SIGKILL)
        """
    )
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True)
    assert proc.returncode == -9, proc.stderr
    assert path.read_text() == "old\n"
    left = list(tmp_path.glob(temporary_glob(path.name)))
    assert len(left) == 1 and left[0].read_text() == "new content that never lands"
