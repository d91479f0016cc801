"""The SQuAD reader (v1.1, v2.0, errors), the generated set, truncation counts, predict input."""

import json
import logging
import re

import pytest

from encdec.errors import DataError
from encdec_tasks.qa.adapter import QATask
from encdec_tasks.qa.generated import TYPES, GeneratedQA
from encdec_tasks.qa.squad import SquadFiles, read_squad

V11 = {"version": "1.1", "data": [
    {"title": "Paris", "paragraphs": [{"context": "The Eiffel Tower is in Paris. It opened in 1889.", "qas": [
        {"id": "q1", "question": "Where is the Eiffel Tower?",
         "answers": [{"text": "Paris", "answer_start": 23}, {"text": "in Paris", "answer_start": 20}]},
        {"id": "q2", "question": "When did it open?", "answers": [{"text": "1889", "answer_start": 43}]}]}]},
    {"title": "Dogs", "paragraphs": [{"context": "Rex is a dog.", "qas": [
        {"id": "q3", "question": "Who is a dog?", "answers": [{"text": "Rex", "answer_start": 0}]}]}]},
]}
V20 = {"version": "v2.0", "data": [{"title": "Paris", "paragraphs": [{"context": "The Eiffel Tower is in Paris.", "qas": [
    {"id": "a", "question": "Where is the tower?", "answers": [{"text": "Paris", "answer_start": 23}], "is_impossible": False},
    {"id": "b", "question": "Where is the Louvre?", "answers": [], "is_impossible": True,
     "plausible_answers": [{"text": "Paris", "answer_start": 23}]}]}]}]}


def _write(path, doc):
    path.write_text(json.dumps(doc, indent=1), encoding="utf-8")
    return path


def test_reads_v11_with_several_answers(tmp_path):
    items = read_squad(_write(tmp_path / "v11.json", V11))
    assert [i.qid for i in items] == ["q1", "q2", "q3"]
    assert items[0].answers == ("Paris", "in Paris") and items[0].answer_starts == (23, 20)
    assert items[2].context == "Rex is a dog." and not any(i.impossible for i in items)


def test_reads_v20_unanswerable_without_its_plausible_answer(tmp_path):
    items = read_squad(_write(tmp_path / "v20.json", V20))
    assert items[0].answers == ("Paris",) and not items[0].impossible
    assert items[1].answers == () and items[1].impossible


def test_reader_errors_name_the_file_and_place(tmp_path):
    bad = json.loads(json.dumps(V11))
    del bad["data"][0]["paragraphs"][0]["qas"][1]["question"]
    with pytest.raises(DataError, match=re.escape("data[0].paragraphs[0].qas[1].question is missing")):
        read_squad(_write(tmp_path / "bad.json", bad))
    broken = tmp_path / "broken.json"
    broken.write_text('{"data": [\n  {"title": }\n]}')
    with pytest.raises(DataError, match=r"broken\.json, line 2: not valid JSON"):
        read_squad(broken)
    no_answer = json.loads(json.dumps(V11))
    no_answer["data"][1]["paragraphs"][0]["qas"][0]["answers"] = []
    with pytest.raises(DataError, match=r"data\[1\]\.paragraphs\[0\]\.qas\[0\] has no answers"):
        read_squad(_write(tmp_path / "noans.json", no_answer))


def test_squad_files_find_any_path_and_refuse_to_guess_offline(tmp_path):
    _write(tmp_path / "mine.json", V20)
    files = SquadFiles(str(tmp_path), {"train": "mine.json", "val": str(tmp_path / "mine.json"), "test": "nope.json"},
                       download=False)
    assert len(files.read("train")) == 2 and len(files.read("val")) == 2
    with pytest.raises(DataError, match="data.splits.test=nope.json: not found"):
        files.read("test")


def test_generated_set_is_deterministic_and_covers_every_question_type(tmp_path):
    kwargs = {"stories": {"train": 80, "val": 10, "test": 40}, "seed": 3}
    a, b = GeneratedQA(str(tmp_path / "a"), **kwargs), GeneratedQA(str(tmp_path / "b"), **kwargs)
    for split in ["train", "test"]:
        assert a.path(split).read_bytes() == b.path(split).read_bytes()
    train, test = a.read("train"), a.read("test")
    assert {i.qtype for i in test} == set(TYPES)
    assert any(i.impossible for i in test) and not any(i.unseen for i in train)
    # answers flagged unseen are names that train never mentions
    train_words = {w.strip(".?") for i in train for w in (i.context + " " + i.question).split()}
    unseen = [i for i in test if i.unseen]
    assert unseen and all(i.qtype == "who" and i.answers[0] not in train_words for i in unseen)
    assert not any(i.impossible for i in GeneratedQA(str(tmp_path / "c"), version="v1.1", **kwargs).read("test"))


class _Items:
    def __init__(self, items):
        self.items = items

    def read(self, split):
        return self.items


def test_long_contexts_are_truncated_with_counts_in_the_log(tmp_path, caplog):
    items = read_squad(_write(tmp_path / "v11.json", V11))
    task = QATask(_Items(items), tokenizer={"vocab_size": 100})
    task.setup(tmp_path, "fit")
    # a budget that keeps q1's context up to just past "Paris." (its answer), so q2 (shorter
    # question, same context) loses only "1889"; q3 (short) fits whole
    n = len(task.tok.encode(items[0].question)) + 1 + len(task.tok.encode("The Eiffel Tower is in Paris.")) + 2
    task.max_src_len = n
    with caplog.at_level(logging.WARNING):
        val = task.examples("val")
        train = task.examples("train")
    assert all(len(e["src"]) <= n for e in val) and len(val) == 3
    assert f"val: 2 of 3 contexts truncated to task.adapter.max_src_len={n} pieces; 1 lost every answer span" in caplog.text
    assert "dropped from training" in caplog.text and len(train) == 2  # q2's answer (1889) was cut off


def test_predict_reads_question_context_lines(tmp_path):
    task = QATask(_Items(read_squad(_write(tmp_path / "v11.json", V11))), tokenizer={"vocab_size": 100})
    task.setup(tmp_path, "fit")
    batch = task.collate(task.parse_inputs(["Who is a dog? ||| Rex is a dog."]))
    assert batch.tgt_in is None and batch.src.size(0) == 1
    with pytest.raises(DataError, match="input line 2: expected 'question ||| context'"):
        task.parse_inputs(["Who? ||| Rex.", "no separator here"])
