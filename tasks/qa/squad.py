"""SQuAD v1.1 / v2.0 JSON: the reader, and the public files fetched into the data dir.

Format (https://rajpurkar.github.io/SQuAD-explorer/): {"version", "data": [{"title",
"paragraphs": [{"context", "qas": [{"id", "question", "answers": [{"text", "answer_start"}],
"is_impossible" (v2.0)}]}]}]}. Generative QA reads only answer texts, so answer_start may
be -1 (the generated set's yes/no, counting and list answers are not spans). Optional
per-question fields "type" and "unseen" (written by the generated set) feed the
per-type breakdown; other readers of SQuAD JSON ignore them.
"""

from __future__ import annotations

import logging
import os
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from encdec.data.text_files import read_json, require_examples
from encdec.errors import DataError

log = logging.getLogger(__name__)

SQUAD_URL = "https://rajpurkar.github.io/SQuAD-explorer/dataset/{name}"


@dataclass(frozen=True)
class QAItem:
    qid: str
    question: str
    context: str
    answers: tuple[str, ...]  # empty: unanswerable
    answer_starts: tuple[int, ...] = ()
    qtype: str | None = None
    unseen: bool = False

    @property
    def impossible(self) -> bool:
        return not self.answers


def _get(obj, key: str, kind, where: str, path: Path):
    if not isinstance(obj, dict) or key not in obj or not isinstance(obj[key], kind):
        raise DataError(
            f"{path}: {where}.{key} is missing or not a {getattr(kind, '__name__', kind)}; "
            "expected SQuAD JSON (v1.1 or v2.0)"
        )
    return obj[key]


def _optional(obj: dict, key: str, kind, default, where: str, path: Path):
    """An optional field of `kind` (bool is not taken for a number)."""
    value = obj.get(key, default)
    if key not in obj or value is None and default is None:
        return default
    if not isinstance(value, kind) or (kind is not bool and isinstance(value, bool)):
        raise DataError(f"{path}: {where}.{key} is not of type {kind.__name__}; expected SQuAD JSON (v1.1 or v2.0)")
    return value


def read_squad(path: str | Path) -> list[QAItem]:
    """Every question of a SQuAD v1.1/v2.0 file, in file order (none for an empty `data`)."""
    path = Path(path)
    doc = read_json(path)
    items = []
    for a, article in enumerate(_get(doc, "data", list, "<root>", path)):
        for p, para in enumerate(_get(article, "paragraphs", list, f"data[{a}]", path)):
            where = f"data[{a}].paragraphs[{p}]"
            context = _get(para, "context", str, where, path)
            for q, qa in enumerate(_get(para, "qas", list, where, path)):
                qwhere = f"{where}.qas[{q}]"
                answers = _get(qa, "answers", list, qwhere, path)
                texts = tuple(_get(ans, "text", str, f"{qwhere}.answers[{i}]", path) for i, ans in enumerate(answers))
                impossible = _optional(qa, "is_impossible", bool, False, qwhere, path)
                if not texts and not impossible:
                    raise DataError(f"{path}: {qwhere} has no answers and is not marked is_impossible")
                if impossible:
                    texts = ()  # v2.0 keeps "plausible_answers" apart; "answers" is empty
                items.append(
                    QAItem(
                        qid=str(_get(qa, "id", (str, int), qwhere, path)),
                        question=_get(qa, "question", str, qwhere, path),
                        context=context,
                        answers=texts,
                        answer_starts=tuple(
                            _optional(ans, "answer_start", int, -1, f"{qwhere}.answers[{i}]", path)
                            for i, ans in enumerate(answers[: len(texts)])
                        ),
                        qtype=_optional(qa, "type", str, None, qwhere, path),
                        unseen=_optional(qa, "unseen", bool, False, qwhere, path),
                    )
                )
    return items


class SquadFiles:
    """Any SQuAD-format files under `root` (one per split). With download=true the public
    SQuAD files (train-v1.1.json, dev-v1.1.json, train-v2.0.json, dev-v2.0.json) are fetched
    from the official site into `root/squad/` on first use; SQuAD's test set is hidden, so
    the configs score dev as `test`."""
    kind = "qa_items"

    def __init__(self, root: str, splits: dict[str, str], download: bool = True):
        self.root, self.splits, self.download = Path(root).expanduser(), dict(splits), download

    def path(self, split: str) -> Path:
        if split not in self.splits:
            raise DataError(f"data.splits has no {split!r} entry (has {sorted(self.splits)})")
        name = self.splits[split]
        for candidate in (Path(name).expanduser(), self.root / name, self.root / "squad" / name):
            if candidate.is_file():
                return candidate
        if not self.download:
            raise DataError(f"data.splits.{split}={name}: not found under {self.root} (set data.download=true when online)")
        return self._fetch(name)

    def _fetch(self, name: str) -> Path:
        target = self.root / "squad" / name
        target.parent.mkdir(parents=True, exist_ok=True)
        url = SQUAD_URL.format(name=name)
        tmp = target.with_suffix(f".tmp{os.getpid()}")
        log.info("downloading %s -> %s", url, target)
        try:
            urllib.request.urlretrieve(url, tmp)
        except OSError as exc:
            tmp.unlink(missing_ok=True)
            raise DataError(
                f"{target} is missing and {url} could not be fetched ({exc}); copy the file there "
                "or point data.root / ENCDEC_DATA_DIR at a folder that has it"
            ) from None
        tmp.replace(target)
        return target

    def read(self, split: str) -> list[QAItem]:
        path = self.path(split)
        items = read_squad(path)
        require_examples(items, path, split, "no questions found (SQuAD JSON: data[].paragraphs[].qas[])")
        return items
