"""Reading a user's text, CSV and JSON files: every failure is one `DataError` naming the
file (and the line, where there is one) and what to do, never a traceback.

Lines end at '\\n' (a '\\r' before it is dropped), so line numbers are what an editor or
`wc -l` shows; a leading UTF-8 byte-order mark is dropped; a NUL byte means a binary file.
"""

from __future__ import annotations

import codecs
import gzip
import json
import zlib
from pathlib import Path
from typing import Any, Sized

from encdec.errors import DataError

SPLIT_NAMES = {"train": "training", "val": "validation", "test": "test"}


def read_bytes(path: str | Path) -> bytes:
    """The bytes of a file, decompressed when its name ends in `.gz`."""
    path = Path(path)
    try:
        if path.suffix == ".gz":
            with gzip.open(path, "rb") as f:
                return f.read()
        return path.read_bytes()
    except FileNotFoundError:
        raise DataError(f"{path}: file not found") from None
    except IsADirectoryError:
        raise DataError(f"{path}: is a folder, not a file") from None
    except PermissionError:
        raise DataError(f"{path}: permission denied; make the file readable") from None
    except (OSError, EOFError, zlib.error) as exc:
        if path.suffix == ".gz":
            raise DataError(
                f"{path}: corrupt or truncated gzip file ({exc}); download or compress it again"
            ) from None
        raise DataError(f"{path}: cannot read ({exc})") from None


def _line_of(raw: bytes, offset: int) -> int:
    return raw.count(b"\n", 0, offset) + 1


def decode_text(raw: bytes, where: str, encoding: str = "utf-8") -> str:
    """The text of `raw` (from the file named by `where`); errors name the line."""
    if raw.startswith(codecs.BOM_UTF8):
        raw = raw[len(codecs.BOM_UTF8):]
    elif raw.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        raise DataError(f"{where}: UTF-16 text (byte-order mark); save it as UTF-8")
    nul = raw.find(b"\x00")
    if nul >= 0:
        raise DataError(f"{where}, line {_line_of(raw, nul)}: NUL byte: a binary file, not text")
    try:
        return raw.decode(encoding)
    except UnicodeDecodeError as exc:
        name = "UTF-8" if codecs.lookup(encoding).name == "utf-8" else encoding
        raise DataError(
            f"{where}, line {_line_of(raw, exc.start)}: not valid {name} ({exc.reason}); "
            f"is it a text file? convert it to {name}"
        ) from None


def split_lines(text: str) -> list[str]:
    """Lines of `text` without their '\\n' / '\\r\\n' ends (no final empty line)."""
    lines = text.split("\n")
    if lines[-1] == "":
        lines.pop()
    return [line[:-1] if line.endswith("\r") else line for line in lines]


def read_text_lines(path: str | Path, encoding: str = "utf-8") -> list[str]:
    path = Path(path)
    return split_lines(decode_text(read_bytes(path), str(path), encoding))


def read_json(path: str | Path) -> Any:
    """The parsed JSON document of a UTF-8 file."""
    path = Path(path)
    text = decode_text(read_bytes(path), str(path))
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise DataError(f"{path}, line {exc.lineno}: not valid JSON ({exc.msg})") from None
    except RecursionError:
        raise DataError(f"{path}: JSON nested too deeply to read") from None


def require_examples(items: Sized, where: str | Path, split: str, hint: str = "") -> None:
    """An empty split stops here, naming its file, not later inside a tokenizer or sampler."""
    if len(items) == 0:
        name = SPLIT_NAMES.get(split, split)
        raise DataError(f"{where}: no {name} examples{'; ' + hint if hint else ''}")
