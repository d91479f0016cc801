"""Property-based tests of every reader: on random bytes, random Unicode and random line
structures, each outcome is either data of the right shape or one `DataError` line that
names the file. Never another exception, never a malformed result."""

from __future__ import annotations

import gzip
import json
import math
import tempfile
from pathlib import Path
from typing import Callable

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from encdec.data.tokenizer import SubwordTokenizer
from encdec.errors import DataError
from encdec_tasks.captioning.data import CaptionedImage, KarpathyCaptions
from encdec_tasks.qa.squad import QAItem, SquadFiles
from encdec_tasks.recommendation.data import AtomicFiles, Interactions, InteractionsCSV, MovieLensFiles
from encdec_tasks.textgen.data import OracleData, TextFile
from encdec_tasks.translation.data import Multi30k, MonolingualText, ParallelText, TSVText

# modest: the whole suite has a time budget; a failure prints the example to reproduce it
PROPERTY = settings(max_examples=25, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])

# -- what files can hold ---------------------------------------------------------------------
unicode_text = st.text(st.characters(blacklist_categories=("Cs",)), max_size=120)
cell = st.one_of(
    st.text(st.characters(blacklist_categories=("Cs",)), max_size=12),
    st.sampled_from(["", " ", "\t", "a\tb", "a\tb\tc", "1::2::3::4", "a,b,c", '"q,"', "nan", "1e309", "\ufeff", "\x00", "\u2028"]),
)
line_structure = st.builds(
    lambda bom, lines, end, final: ("\ufeff" if bom else "") + end.join(lines) + (end if final else ""),
    st.booleans(), st.lists(cell, max_size=8), st.sampled_from(["\n", "\r\n", "\r"]), st.booleans(),
)
contents = st.one_of(
    st.binary(max_size=200),
    unicode_text.map(lambda s: s.encode("utf-8")),
    line_structure.map(lambda s: s.encode("utf-8")),
    line_structure.map(lambda s: s.encode("latin-1", errors="replace")),
)


def _tsv_rows(header: str, width: int) -> st.SearchStrategy[bytes]:
    """A header then rows that are mostly well-formed, sometimes not."""
    value = st.one_of(st.integers(0, 5).map(str), st.sampled_from(["", " ", "x", "nan", "inf", "1.5", "\x85"]))
    row = st.lists(value, min_size=width - 1, max_size=width + 1).map("\t".join)
    return st.builds(lambda rows, end: (header + end + end.join(rows)).encode("utf-8"),
                     st.lists(row, max_size=6), st.sampled_from(["\n", "\r\n"]))


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-2, 5) | st.floats(allow_nan=False) | unicode_text,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.sampled_from(
        ["images", "split", "filename", "filepath", "sentences", "tokens", "raw", "data", "paragraphs",
         "context", "qas", "id", "question", "answers", "text", "answer_start", "is_impossible", "type"]), inner, max_size=4),
    max_leaves=12,
)


def _karpathy_docs() -> st.SearchStrategy[bytes]:
    sentence = st.one_of(st.fixed_dictionaries({"tokens": st.lists(unicode_text, max_size=3)}),
                         st.fixed_dictionaries({"raw": unicode_text}), json_values)
    image = st.one_of(
        st.fixed_dictionaries({"filename": st.sampled_from(["a.png", "b.png", ""]), "split": st.sampled_from(["train", "val", ""]),
                               "sentences": st.lists(sentence, max_size=2)}),
        json_values,
    )
    doc = st.one_of(st.fixed_dictionaries({"images": st.lists(image, max_size=3)}), json_values)
    return doc.map(lambda d: json.dumps(d).encode("utf-8"))


def _squad_docs() -> st.SearchStrategy[bytes]:
    answer = st.one_of(st.fixed_dictionaries({"text": unicode_text, "answer_start": st.integers(-1, 9)}), json_values)
    qa = st.one_of(
        st.fixed_dictionaries({"id": st.one_of(unicode_text, st.integers()), "question": unicode_text,
                               "answers": st.lists(answer, max_size=2)},
                              optional={"is_impossible": st.booleans(), "type": st.one_of(st.none(), unicode_text)}),
        json_values,
    )
    para = st.one_of(st.fixed_dictionaries({"context": unicode_text, "qas": st.lists(qa, max_size=2)}), json_values)
    doc = st.one_of(st.fixed_dictionaries({"data": st.lists(st.fixed_dictionaries({"paragraphs": st.lists(para, max_size=2)}), max_size=2)}),
                    json_values)
    return doc.map(lambda d: json.dumps(d).encode("utf-8"))


# -- the property ------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def scratch(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("properties")


def data_or_one_line(scratch: Path, files: dict[str, bytes], read: Callable[[Path], object], check: Callable[[object], bool]) -> None:
    root = Path(tempfile.mkdtemp(dir=scratch))
    for name, content in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(content)
    try:
        result = read(root)
    except DataError as exc:
        message = str(exc)
        assert "\n" not in message, message
        assert str(root) in message, f"the message names no file: {message}"
        return
    assert check(result), result


def _texts(lines) -> bool:
    return (isinstance(lines, list) and len(lines) > 0
            and all(isinstance(s, str) and s.strip() and "\n" not in s for s in lines)
            and not lines[0].startswith("\ufeff"))


def _pairs(pairs) -> bool:
    return (isinstance(pairs, list) and len(pairs) > 0 and all(isinstance(p, tuple) and len(p) == 2 for p in pairs)
            and _texts([s for s, _ in pairs]) and _texts([t for _, t in pairs]))


def _interactions(log) -> bool:
    return (isinstance(log, Interactions) and len(log) > 0 and len(log.users) == len(log.items) == len(log.times)
            and all(u.strip() and i.strip() for u, i in zip(log.users, log.items))
            and all(isinstance(t, float) and math.isfinite(t) for t in log.times))


@PROPERTY
@given(src=contents, tgt=contents)
def test_aligned_files(scratch, src, tgt):
    data_or_one_line(scratch, {"train.de": src, "train.en": tgt},
                     lambda root: ParallelText(str(root), "de", "en", {"train": "train"}).read("train"), _pairs)


@PROPERTY
@given(text=contents, flip=st.integers(0, 400), cut=st.integers(0, 400))
def test_multi30k_gzip_files_bit_flipped_or_cut(scratch, text, flip, cut):
    packed = bytearray(gzip.compress(text, mtime=0))
    packed[flip % len(packed)] ^= 0x04
    files = {"multi30k/train.de.gz": bytes(packed[: max(1, len(packed) - cut % 8)]), "multi30k/train.en.gz": gzip.compress(text)}
    data_or_one_line(scratch, files, lambda root: Multi30k(str(root), download=False).read("train"), _pairs)


@PROPERTY
@given(content=contents)
def test_tsv_file(scratch, content):
    data_or_one_line(scratch, {"train.tsv": content}, lambda root: TSVText(str(root), {"train": "train.tsv"}).read("train"), _pairs)


@PROPERTY
@given(content=contents)
def test_sentence_files(scratch, content):
    data_or_one_line(scratch, {"train.txt": content}, lambda root: TextFile(str(root), {"train": "train.txt"}).read("train"), _texts)
    data_or_one_line(scratch, {"train.txt": content},
                     lambda root: MonolingualText(str(root), {"train": "train.txt"}).read("train"), _pairs)


@PROPERTY
@given(doc=st.one_of(_karpathy_docs(), contents))
def test_karpathy_json(scratch, doc):
    from PIL import Image

    def read(root: Path):
        Image.new("RGB", (2, 2)).save(root / "a.png")
        return KarpathyCaptions(str(root / "captions.json"), str(root), splits={"train": ["train"]}).read("train")

    def check(items) -> bool:
        return (isinstance(items, list) and len(items) > 0 and all(isinstance(it, CaptionedImage) for it in items)
                and all(it.captions and all(isinstance(c, str) and c.strip() for c in it.captions) for it in items))

    data_or_one_line(scratch, {"captions.json": doc}, read, check)


@PROPERTY
@given(doc=st.one_of(_squad_docs(), contents))
def test_squad_json(scratch, doc):
    def check(items) -> bool:
        return isinstance(items, list) and len(items) > 0 and all(
            isinstance(q, QAItem) and isinstance(q.question, str) and isinstance(q.context, str)
            and all(isinstance(a, str) for a in q.answers) and all(isinstance(s, int) for s in q.answer_starts)
            and (q.qtype is None or isinstance(q.qtype, str))
            for q in items
        )

    data_or_one_line(scratch, {"train.json": doc}, lambda root: SquadFiles(str(root), {"train": "train.json"}, download=False).read("train"), check)


@PROPERTY
@given(inter=st.one_of(_tsv_rows("user_id:token\titem_id:token\ttimestamp:float", 3), contents), item=contents)
def test_recbole_atomic_files(scratch, inter, item):
    data_or_one_line(scratch, {"ml/ml.inter": inter, "ml/ml.item": item}, lambda root: AtomicFiles(str(root), "ml").read(), _interactions)


@PROPERTY
@given(udata=st.one_of(_tsv_rows("1\t2\t5\t100", 4), contents), uitem=contents, ratings=contents)
def test_raw_movielens_files(scratch, udata, uitem, ratings):
    data_or_one_line(scratch, {"u.data": udata, "u.item": uitem}, lambda root: MovieLensFiles(str(root)).read(), _interactions)
    data_or_one_line(scratch, {"ratings.dat": ratings}, lambda root: MovieLensFiles(str(root)).read(), _interactions)


@PROPERTY
@given(log=st.one_of(_tsv_rows("user,item,timestamp", 3).map(lambda b: b.replace(b"\t", b",")), contents), items=contents)
def test_interactions_csv(scratch, log, items):
    data_or_one_line(scratch, {"log.csv": log, "items.csv": items},
                     lambda root: InteractionsCSV(str(root / "log.csv"), items_path=str(root / "items.csv")).read(), _interactions)


@PROPERTY
@given(content=st.binary(max_size=300))
def test_oracle_weights_and_tokenizer_files(scratch, content):
    data_or_one_line(scratch, {"oracle.npz": content},
                     lambda root: OracleData(str(root), oracle_path=str(root / "oracle.npz"), check_hash=False, sizes={"train": 2}).read("train"),
                     lambda rows: rows.shape == (2, 20))
    data_or_one_line(scratch, {"tokenizer.json": content}, lambda root: SubwordTokenizer.load(root / "tokenizer.json"),
                     lambda tok: isinstance(tok, SubwordTokenizer))


@PROPERTY
@given(content=contents)
def test_predict_input_file(scratch, content):
    from encdec.cli.predict import read_input

    body = content.removeprefix(b"\xef\xbb\xbf")
    lines_in_file = body.count(b"\n") + (not body.endswith(b"\n") and body != b"")  # what `wc -l` and editors count
    data_or_one_line(scratch, {"in.txt": content}, lambda root: read_input(str(root / "in.txt")),
                     lambda lines: len(lines) == lines_in_file and all(isinstance(s, str) and "\n" not in s for s in lines))


@settings(max_examples=10, deadline=None, database=None)
@given(src=line_structure, tgt=line_structure)
def test_accepted_parallel_text_trains_a_tokenizer_and_encodes(scratch, src, tgt):
    """Whatever a reader accepts, the tokenizer trains on and encodes without error."""
    root = Path(tempfile.mkdtemp(dir=scratch))
    (root / "train.de").write_bytes(src.encode("utf-8"))
    (root / "train.en").write_bytes(tgt.encode("utf-8"))
    try:
        pairs = ParallelText(str(root), "de", "en", {"train": "train"}).read("train")
    except DataError:
        return
    tok = SubwordTokenizer.train([s for pair in pairs for s in pair], vocab_size=40, mask_token=True)
    assert all(isinstance(ids, list) for ids in tok.encode_batch([s for s, _ in pairs]))
