"""Bad input files and bad predict inputs: each case either gives data or stops with one
line naming the file (and line) and what to do; the CLI cases exit 1 with no traceback.

Reader cases run in-process (milliseconds each); the few CLI cases fail before training or
before loading the model, a few seconds each.
"""

from __future__ import annotations

import gzip
import io
import json
from pathlib import Path
from typing import Any, Callable

import pytest
from PIL import Image

from conftest import run_cli, tiny_train_args
from encdec.data.tokenizer import SubwordTokenizer
from encdec.errors import ConfigError, DataError
from encdec_tasks.captioning.data import KarpathyCaptions
from encdec_tasks.qa.squad import SquadFiles
from encdec_tasks.recommendation.data import AtomicFiles, InteractionsCSV, MovieLensFiles
from encdec_tasks.textgen.data import OracleData, TextFile
from encdec_tasks.textgen.synthetic.fixtures import write_tiny_oracle
from encdec_tasks.translation.data import Multi30k, MonolingualText, ParallelText, TSVText


def _gz(text: str) -> bytes:
    return gzip.compress(text.encode("utf-8"), mtime=0)


def _bit_flipped_gz() -> bytes:
    data = bytearray(_gz("Ein Hund läuft im Park.\n" * 40))
    data[len(data) // 2] ^= 0x10  # inside the deflate stream
    return bytes(data)


def _png() -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (4, 4), (200, 10, 10)).save(out, format="PNG")
    return out.getvalue()


def _karpathy(images: Any) -> bytes:
    return json.dumps({"images": images}).encode()


def _squad(qas: list, **para) -> bytes:
    return json.dumps({"version": "1.1", "data": [{"title": "t", "paragraphs": [{"context": "A dog.", "qas": qas, **para}]}]}).encode()


QA_OK = {"id": "q1", "question": "Who?", "answers": [{"text": "dog", "answer_start": 2}]}
IMAGE = {"filename": "a.png", "split": "train", "sentences": [{"tokens": ["a", "red", "square"], "raw": "A red square."}]}


def parallel(root: Path):
    return ParallelText(str(root), "de", "en", {"train": "train"}).read("train")


def multi30k(root: Path):
    return Multi30k(str(root), download=False).read("train")


def tsv(root: Path):
    return TSVText(str(root), {"train": "train.tsv"}).read("train")


def monolingual(root: Path):
    return MonolingualText(str(root), {"train": "train.txt"}).read("train")


def text_file(root: Path):
    return TextFile(str(root), {"train": "train.txt"}).read("train")


def karpathy(root: Path):
    return KarpathyCaptions(str(root / "captions.json"), str(root), splits={"train": ["train"]}).read("train")


def squad(root: Path):
    return SquadFiles(str(root), {"train": "train.json"}, download=False).read("train")


def atomic(root: Path):
    return AtomicFiles(str(root), "ml").read()


def movielens(root: Path):
    return MovieLensFiles(str(root)).read()


def interactions_csv(root: Path, **kw):
    items = root / "items.csv"
    return InteractionsCSV(str(root / "log.csv"), items_path=str(items) if items.exists() else None, **kw).read()


def oracle(root: Path, **kw):
    return OracleData(str(root), oracle_path=str(root / "oracle.npz"), check_hash=False, **kw).read("train")


def tokenizer(root: Path):
    return SubwordTokenizer.load(root / "tokenizer.json")


INTER_HEADER = b"user_id:token\titem_id:token\ttimestamp:float\n"

# (id, reader, files under a fresh folder, expected: a message fragment (regex) or a check of the data)
CASES: list[tuple[str, Callable, dict[str, bytes], Any]] = [
    # translation: aligned files
    ("parallel-empty", parallel, {"train.de": b"", "train.en": b""}, r"train\.de: no training examples"),
    ("parallel-missing", parallel, {"train.de": b"Hallo\n"}, r"train\.en: file not found"),
    ("parallel-not-utf8", parallel, {"train.de": b"Hallo\nGr\xfc\xdfe\n", "train.en": b"Hi\nBye\n"},
     r"train\.de, line 2: not valid UTF-8"),
    ("parallel-binary", parallel, {"train.de": b"Hallo\n", "train.en": b"\x00\x01\x02\n"}, r"train\.en, line 1: NUL byte"),
    ("parallel-utf16", parallel, {"train.de": "Hallo\n".encode("utf-16"), "train.en": b"Hi\n"}, r"train\.de: UTF-16"),
    ("parallel-crlf", parallel, {"train.de": b"Hallo\r\nWelt\r\n", "train.en": b"Hello\r\nWorld\r\n"},
     lambda pairs: pairs == [("Hallo", "Hello"), ("Welt", "World")]),
    ("parallel-bom", parallel, {"train.de": b"\xef\xbb\xbfHallo\n", "train.en": b"\xef\xbb\xbfHello\n"},
     lambda pairs: pairs == [("Hallo", "Hello")]),
    ("parallel-no-final-newline", parallel, {"train.de": b"Hallo", "train.en": b"Hello"}, lambda pairs: pairs == [("Hallo", "Hello")]),
    ("parallel-line-counts", parallel, {"train.de": b"a\nb\n", "train.en": b"a\n"}, r"train\.de has 2 lines but .*train\.en has 1"),
    ("parallel-blank-line", parallel, {"train.de": b"a\nb\n", "train.en": b"a\n \n"}, r"train\.en, line 2: empty line"),
    ("parallel-folder", parallel, {"train.de/x": b"", "train.en": b"a\n"}, r"train\.de: is a folder"),
    # Multi30k's gzip files
    ("multi30k-bit-flipped-gz", multi30k, {"multi30k/train.de.gz": _bit_flipped_gz(), "multi30k/train.en.gz": _gz("A dog.\n" * 40)},
     r"train\.de\.gz: corrupt or truncated gzip file"),
    ("multi30k-truncated-gz", multi30k, {"multi30k/train.de.gz": _gz("Ein Hund.\n" * 40)[:30], "multi30k/train.en.gz": _gz("A dog.\n")},
     r"train\.de\.gz: corrupt or truncated gzip file"),
    ("multi30k-not-gzip", multi30k, {"multi30k/train.de.gz": b"Ein Hund.\n", "multi30k/train.en.gz": _gz("A dog.\n")},
     r"train\.de\.gz: corrupt or truncated gzip file"),
    ("multi30k-empty-gz", multi30k, {"multi30k/train.de.gz": _gz(""), "multi30k/train.en.gz": _gz("")}, r"train\.de\.gz: no training examples"),
    # TSV and monolingual text
    ("tsv-three-columns", tsv, {"train.tsv": b"a\tb\na\tb\tc\n"}, r"train\.tsv, line 2: expected 'source<TAB>target', got 3"),
    ("tsv-one-column", tsv, {"train.tsv": b"only source\n"}, r"train\.tsv, line 1: expected 'source<TAB>target', got 1"),
    ("tsv-empty-target", tsv, {"train.tsv": b"a\t \n"}, r"train\.tsv, line 1: empty target"),
    ("tsv-empty", tsv, {"train.tsv": b""}, r"train\.tsv: no training examples"),
    ("tsv-crlf-bom", tsv, {"train.tsv": b"\xef\xbb\xbfa\tb\r\n"}, lambda pairs: pairs == [("a", "b")]),
    ("monolingual-empty", monolingual, {"train.txt": b""}, r"train\.txt: no training examples"),
    ("textfile-empty", text_file, {"train.txt": b""}, r"train\.txt: no training examples"),
    ("textfile-binary", text_file, {"train.txt": bytes(range(256))}, r"train\.txt, line 1: NUL byte"),
    # captioning: Karpathy-split JSON
    ("karpathy-missing", karpathy, {}, r"captions\.json: Karpathy split file not found"),
    ("karpathy-not-json", karpathy, {"captions.json": b'{"images": [\n'}, r"captions\.json, line 2: not valid JSON"),
    ("karpathy-not-utf8", karpathy, {"captions.json": b'{"images": ["\xff"]}'}, r"captions\.json, line 1: not valid UTF-8"),
    ("karpathy-wrong-top", karpathy, {"captions.json": b"[]"}, r"captions\.json: expected an object with an 'images' list"),
    ("karpathy-entry-not-object", karpathy, {"captions.json": _karpathy([1])}, r"images\[0\]: expected an object with a 'split'"),
    ("karpathy-split-not-string", karpathy, {"captions.json": _karpathy([{**IMAGE, "split": ["train"]}])}, r"images\[0\]: expected an object with a 'split'"),
    ("karpathy-no-filename", karpathy, {"captions.json": _karpathy([{"split": "train", "sentences": [{"raw": "x"}]}])}, r"images\[0\]: needs a 'filename'"),
    ("karpathy-sentence-not-object", karpathy, {"captions.json": _karpathy([{**IMAGE, "sentences": ["a cat"]}])}, r"images\[0\]: a sentence is not an object"),
    ("karpathy-tokens-not-strings", karpathy, {"captions.json": _karpathy([{**IMAGE, "sentences": [{"tokens": [1, 2]}]}])}, r"'tokens' is not a list of strings"),
    ("karpathy-no-train-images", karpathy, {"captions.json": _karpathy([{**IMAGE, "split": "val"}])}, r"captions\.json: no training examples"),
    ("karpathy-all-images-bad", karpathy, {"captions.json": _karpathy([IMAGE]), "a.png": b"not a png"},
     r"captions\.json: no training examples; every image was missing or unreadable"),
    ("karpathy-bom", karpathy, {"captions.json": b"\xef\xbb\xbf" + _karpathy([IMAGE]), "a.png": _png()},
     lambda items: [it.captions for it in items] == [["a red square"]]),
    # QA: SQuAD JSON
    ("squad-not-json", squad, {"train.json": b'{"data": [}'}, r"train\.json, line 1: not valid JSON"),
    ("squad-not-utf8", squad, {"train.json": b'{"data": "\xfe"}'}, r"train\.json, line 1: not valid UTF-8"),
    ("squad-data-not-list", squad, {"train.json": b'{"data": {}}'}, r"train\.json: <root>\.data is missing or not a list"),
    ("squad-answers-not-list", squad, {"train.json": _squad([{**QA_OK, "answers": "dog"}])}, r"qas\[0\]\.answers is missing or not a list"),
    ("squad-answer-start-text", squad, {"train.json": _squad([{**QA_OK, "answers": [{"text": "dog", "answer_start": "x"}]}])},
     r"answers\[0\]\.answer_start is not of type int"),
    ("squad-impossible-not-bool", squad, {"train.json": _squad([{**QA_OK, "is_impossible": "no"}])}, r"is_impossible is not of type bool"),
    ("squad-type-not-string", squad, {"train.json": _squad([{**QA_OK, "type": ["who"]}])}, r"qas\[0\]\.type is not of type str"),
    ("squad-no-questions", squad, {"train.json": b'{"data": []}'}, r"train\.json: no training examples"),
    ("squad-bom-crlf", squad, {"train.json": b"\xef\xbb\xbf" + _squad([QA_OK]).replace(b", ", b",\r\n")},
     lambda items: [(i.question, i.answers) for i in items] == [("Who?", ("dog",))]),
    # recommendation: RecBole atomic files, raw MovieLens, CSV
    ("atomic-empty", atomic, {"ml/ml.inter": b""}, r"ml\.inter: empty file"),
    ("atomic-header-only", atomic, {"ml/ml.inter": INTER_HEADER}, r"ml\.inter: no training examples"),
    ("atomic-untyped-header", atomic, {"ml/ml.inter": b"user_id\titem_id\ttimestamp\n1\t2\t3\n"}, r"ml\.inter, line 1: header field 'user_id' is not `name:type`"),
    ("atomic-short-row", atomic, {"ml/ml.inter": INTER_HEADER + b"1\t2\t3\n1\t2\n"}, r"ml\.inter, line 3: expected 3 '\\t'-separated fields, found 2"),
    ("atomic-nan-time", atomic, {"ml/ml.inter": INTER_HEADER + b"1\t2\tnan\n"}, r"ml\.inter, line 2: timestamp 'nan' is not a finite number"),
    ("atomic-empty-item", atomic, {"ml/ml.inter": INTER_HEADER + b"1\t \t3\n"}, r"ml\.inter, line 2: empty item id"),
    ("atomic-bom-crlf", atomic, {"ml/ml.inter": b"\xef\xbb\xbf" + INTER_HEADER.replace(b"\n", b"\r\n") + b"1\t2\t3\r\n"},
     lambda log: (log.users, log.items, log.times) == (["1"], ["2"], [3.0])),
    ("udata-short-row", movielens, {"u.data": b"1\t2\t5\t100\n1\t2\n"}, r"u\.data, line 2: expected 4"),
    ("udata-binary", movielens, {"u.data": b"1\t2\t5\t100\n\x00\x00\n"}, r"u\.data, line 2: NUL byte"),
    ("ratings-dat-bad-time", movielens, {"ratings.dat": b"1::2::5::soon\n"}, r"ratings\.dat, line 1: timestamp 'soon' is not a number"),
    ("csv-missing-column", interactions_csv, {"log.csv": b"user,item\n1,2\n"}, r"log\.csv, line 1: no column 'timestamp'"),
    ("csv-short-row", interactions_csv, {"log.csv": b"user,item,timestamp\n1,2,3\n1,2\n"}, r"log\.csv, line 3: 2 columns, the header has 3"),
    ("csv-empty", interactions_csv, {"log.csv": b""}, r"log\.csv: empty file"),
    ("csv-header-only", interactions_csv, {"log.csv": b"user,item,timestamp\n"}, r"log\.csv: no training examples"),
    ("csv-not-utf8", interactions_csv, {"log.csv": b"user,item,timestamp\n1,\xe9,3\n"}, r"log\.csv, line 2: not valid UTF-8"),
    ("csv-huge-field", interactions_csv, {"log.csv": b"user,item,timestamp\n1," + b"x" * 140_000 + b",3\n"}, r"log\.csv, line 2: not valid CSV"),
    ("csv-items-missing-title", interactions_csv, {"log.csv": b"user,item,timestamp\n1,2,3\n", "items.csv": b"item,name\n2,x\n"},
     r"items\.csv, line 1: no column 'title'"),
    ("csv-quoted-newline-bom", interactions_csv, {"log.csv": b'\xef\xbb\xbfuser,item,timestamp\r\n"1\r\n",2,3\r\n4,5,6\r\n'},
     lambda log: log.items == ["2", "5"]),
    # the SeqGAN oracle's weights
    ("oracle-random-bytes", oracle, {"oracle.npz": bytes(range(256)) * 4}, r"oracle\.npz: not a readable npz file"),
    ("oracle-empty", oracle, {"oracle.npz": b""}, r"oracle\.npz: not a readable npz file"),
    # a run's tokenizer file
    ("tokenizer-garbage", tokenizer, {"tokenizer.json": b"{not json"}, r"tokenizer\.json: not a valid tokenizer file"),
    ("tokenizer-missing", tokenizer, {}, r"tokenizer\.json: tokenizer file not found"),
]


def _materialise(root: Path, files: dict[str, bytes]) -> None:
    for name, content in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content)


@pytest.mark.parametrize("reader,files,expected", [pytest.param(*case[1:], id=case[0]) for case in CASES])
def test_reader_gives_data_or_one_line_naming_the_file(tmp_path, reader, files, expected):
    _materialise(tmp_path, files)
    if callable(expected):
        assert expected(reader(tmp_path))
        return
    with pytest.raises(DataError, match=expected) as info:
        reader(tmp_path)
    message = str(info.value)
    assert "\n" not in message and str(tmp_path) in message


@pytest.mark.parametrize(
    "reader,expected",
    [
        pytest.param(lambda root: interactions_csv(root, delimiter="::"), r"data\.delimiter='::': must be a single character", id="csv-delimiter"),
        pytest.param(lambda root: oracle(root, sizes={"train": 0}), r"data\.sizes\.train=0", id="oracle-no-samples"),
    ],
)
def test_config_mistakes_of_readers_name_the_key(tmp_path, reader, expected):
    _materialise(tmp_path, {"log.csv": b"user,item,timestamp\n1,2,3\n"})
    write_tiny_oracle(tmp_path / "oracle.npz")
    with pytest.raises(ConfigError, match=expected):
        reader(tmp_path)


def test_oracle_weights_of_the_wrong_layout_are_named(tmp_path):
    import numpy as np

    np.savez(tmp_path / "oracle.npz", embedding=np.zeros((4, 2), dtype=np.float32))
    with pytest.raises(DataError, match=r"oracle\.npz: oracle weights lack array\(s\) Wi"):
        oracle(tmp_path)
    from encdec_tasks.textgen.oracle import ORACLE_ARRAYS

    arrays = dict(np.load(write_tiny_oracle(tmp_path / "good.npz")))
    np.savez(tmp_path / "oracle.npz", **{**arrays, "W_out": arrays["W_out"][:, :3]})
    with pytest.raises(DataError, match=r"oracle\.npz: oracle weights have inconsistent shapes: W_out"):
        oracle(tmp_path)
    np.savez(tmp_path / "oracle.npz", **{**arrays, "bi": np.array(["x"] * 8)})
    with pytest.raises(DataError, match=r"oracle\.npz: oracle weight array\(s\) bi are not numeric"):
        oracle(tmp_path)
    assert set(arrays) == set(ORACLE_ARRAYS)


# -- through the CLI ---------------------------------------------------------------------------

def _assert_one_line_error(proc, fragment: str) -> None:
    assert proc.returncode == 1, proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr, proc.stderr[-3000:]
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and fragment in errors[0], proc.stderr[-2000:]


def _corpus_with(tiny_corpus: Path, root: Path, files: dict[str, bytes]) -> Path:
    root.mkdir(parents=True)
    for split in ("train", "val", "test"):
        for lang in ("de", "en"):
            (root / f"{split}.{lang}").write_bytes((tiny_corpus / f"{split}.{lang}").read_bytes())
    for name, content in files.items():
        (root / name.removesuffix(".gz")).unlink(missing_ok=True)
        (root / name).write_bytes(content)
    return root


TRAIN_CASES = [
    pytest.param({"train.de": b"", "train.en": b""}, "train.de: no training examples", id="empty-training-files"),
    pytest.param({"train.de.gz": _bit_flipped_gz()}, "train.de.gz: corrupt or truncated gzip file", id="bit-flipped-gz"),
    pytest.param({"train.en": b"A dog.\n\xff\xfe\x00\x01\n"}, "train.en, line 2: NUL byte", id="binary-training-file"),
]


@pytest.mark.parametrize("files,fragment", TRAIN_CASES)
def test_train_cli_bad_data_is_one_line(tiny_corpus, tmp_path, files, fragment):
    corpus = _corpus_with(tiny_corpus, tmp_path / "corpus", files)
    proc = run_cli("train", *tiny_train_args(corpus, tmp_path / "run"), check=False)
    _assert_one_line_error(proc, fragment)


@pytest.fixture(scope="module")
def trained_run(tiny_corpus, tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("reliability") / "run"
    run_cli("train", *tiny_train_args(tiny_corpus, run_dir, "trainer.max_steps=4", "trainer.max_epochs=1", "loader.max_tokens=512"))
    return run_dir


LONG = " ".join(["der kleine hund läuft im park"] * 40)  # far over max_src_len=128 pieces


def _predict(run_dir: Path, *args: str, input: str | None = None):
    return run_cli("predict", f"run_dir={run_dir}", "checkpoint=last", "decoding.max_len=4", *args, input=input, check=False)


@pytest.mark.parametrize(
    "inputs,args,fragment",
    [
        pytest.param(b"\x00\x01\x02binary", ["input=-"], "input=- (stdin), line 1: NUL byte", id="binary-stdin"),
        pytest.param(f"Der hund.\n{LONG}\nDie katze.\n{LONG}\n".encode(), ["input={in_}", "truncate=error"],
                     "input lines 2, 4: longer than the model's task.adapter.max_src_len=128", id="too-long-refused"),
    ],
)
def test_predict_cli_bad_input_is_one_line(trained_run, tmp_path, inputs, args, fragment):
    (tmp_path / "in.de").write_bytes(inputs)
    args = [a.format(in_=tmp_path / "in.de") for a in args]
    proc = _predict(trained_run, *args, input=inputs.decode("latin-1") if "input=-" in args else None)
    _assert_one_line_error(proc, fragment)


def test_predict_checks_output_before_loading_the_model(tmp_path):
    """A missing folder for output= is found before the (here absent) run is even opened."""
    (tmp_path / "in.de").write_text("Der hund.\n")
    proc = run_cli("predict", f"run_dir={tmp_path / 'no_run'}", f"input={tmp_path / 'in.de'}",
                   f"output={tmp_path / 'missing' / 'out.en'}", check=False)
    _assert_one_line_error(proc, f"output={tmp_path / 'missing' / 'out.en'}: folder")


def test_predict_warns_once_with_line_numbers_and_still_translates(trained_run, tmp_path):
    (tmp_path / "in.de").write_text(f"Der hund.\n{LONG}\r\nDie katze.\r\n{LONG}\n", encoding="utf-8")
    out = tmp_path / "out.en"
    out.write_text("previous\n")
    proc = _predict(trained_run, f"input={tmp_path / 'in.de'}", f"output={out}")
    assert proc.returncode == 0, proc.stderr[-2000:]
    warnings = [line for line in proc.stderr.splitlines() if "longer than the model's" in line]
    assert warnings == [
        "warning: input lines 2, 4: longer than the model's task.adapter.max_src_len=128 pieces; "
        "cut to that length (truncate=error refuses instead)"
    ]
    assert len(out.read_text(encoding="utf-8").splitlines()) == 4  # one output per input line, CRLF or not


def test_predict_keeps_an_existing_output_when_it_stops_early(trained_run, tmp_path):
    (tmp_path / "in.de").write_bytes(b"Der hund.\n\xff\n")
    out = tmp_path / "out.en"
    out.write_text("previous\n")
    proc = _predict(trained_run, f"input={tmp_path / 'in.de'}", f"output={out}")
    _assert_one_line_error(proc, "line 2: not valid UTF-8")
    assert out.read_text() == "previous\n"


# -- predict's checks in-process -------------------------------------------------------------

def test_predict_input_lines_name_the_undecodable_line(tmp_path):
    from encdec.cli.predict import read_input

    path = tmp_path / "in.de"
    path.write_bytes("\ufeffEins\r\nZwei\n\nDrei\x85\u2028".encode("utf-8"))
    assert read_input(str(path)) == ["Eins", "Zwei", "", "Drei\x85\u2028"]  # only \n ends a line
    path.write_bytes(b"Eins\nZwei\nDr\xe9i\n")
    with pytest.raises(DataError, match=r"^input=.*in\.de, line 3: not valid UTF-8"):
        read_input(str(path))
    with pytest.raises(ConfigError, match=r"input=.*nowhere\.de: file not found"):
        read_input(str(tmp_path / "nowhere.de"))


def test_predict_output_check_names_the_key_and_leaves_nothing(tmp_path):
    from encdec.cli.predict import check_output

    with pytest.raises(ConfigError, match=r"^output=.*: is a folder"):
        check_output(str(tmp_path))
    with pytest.raises(ConfigError, match=r"^output=.*missing/out\.en: folder .*missing does not exist"):
        check_output(str(tmp_path / "missing" / "out.en"))
    check_output(str(tmp_path / "new.en"))
    assert not (tmp_path / "new.en").exists()  # the probe leaves no empty file behind
    (tmp_path / "old.en").write_text("kept\n")
    check_output(str(tmp_path / "old.en"))
    assert (tmp_path / "old.en").read_text() == "kept\n"


def test_predict_truncation_report_lists_lines_once():
    from encdec.cli.predict import check_truncation

    examples = [{}, {"truncated": "task.adapter.max_src_len=8 pieces"}] * 12
    with pytest.raises(DataError, match=r"^input lines 2, 4, 6, .*, 20 \.\.\. \(2 more\): longer than the model's task\.adapter\.max_src_len=8"):
        check_truncation(examples, "error")
    check_truncation([{}, {}], "error")


def test_predict_refuses_an_unknown_truncate_option(tmp_path):
    from omegaconf import OmegaConf

    from encdec.cli.predict import predict

    cfg = OmegaConf.create({"truncate": "sometimes", "interactive": False, "input": None, "output": None})
    with pytest.raises(ConfigError, match=r"truncate=sometimes: choose one of warn, error"):
        predict(cfg)


def test_a_split_left_empty_after_filtering_is_a_data_error():
    """E.g. every training pair longer than the length limits: named before the sampler sees it."""
    from encdec.data.datamodule import EncDecDataModule

    class NoExamples:
        def examples(self, split):
            return []

    with pytest.raises(DataError, match=r"no training examples left after reading the data"):
        EncDecDataModule(NoExamples())._loader("train", train=True)
