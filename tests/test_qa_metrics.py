"""SQuAD EM/F1 against hand-computed cases, and the QA adapter's breakdowns."""

import pytest

from encdec_tasks.qa.adapter import QAReference, QATask
from encdec_tasks.qa.metrics import best_over_references, exact_match, f1_score, normalize_answer


def test_official_normalisation():
    assert normalize_answer("The  Eiffel-Tower!") == "eiffeltower"
    assert normalize_answer("an apple, a pear and THE plum.") == "apple pear and plum"
    assert normalize_answer("theatre") == "theatre"  # articles only as whole words


def test_exact_match_and_f1_by_hand():
    assert exact_match("the Eiffel Tower.", "Eiffel tower") == 1.0
    assert exact_match("Eiffel", "Eiffel tower") == 0.0
    # pred {big, red, dog} vs gold {red, dog, barked}: 2 shared, P = R = 2/3
    assert f1_score("the big red dog", "red dog barked") == pytest.approx(2 / 3)
    # repeated tokens count with multiplicity: "dog dog" vs "dog": P = 1/2, R = 1
    assert f1_score("dog dog", "dog") == pytest.approx(2 * 0.5 * 1 / 1.5)
    assert f1_score("cat", "dog") == 0.0


def test_best_over_several_references_and_unanswerable():
    refs = ["red dog barked", "a big red dog", "dog"]
    assert best_over_references(exact_match, "Big red dog", refs) == 1.0
    assert best_over_references(f1_score, "the dog", refs) == 1.0
    # {red, cat} vs {red, dog, barked} or {big, red, dog}: P = 1/2, R = 1/3, F1 = 0.4; vs {dog}: 0
    assert best_over_references(f1_score, "red cat", refs) == pytest.approx(0.4)
    # unanswerable: the reference is "", only an empty prediction scores
    assert best_over_references(exact_match, "", []) == 1.0
    assert best_over_references(f1_score, "kitchen", []) == 0.0
    assert best_over_references(f1_score, "", ["kitchen"]) == 0.0


def test_adapter_metrics_break_down_by_type_unseen_and_answerability():
    task = QATask(data=None)
    refs = [
        QAReference(("kitchen",), "one_fact"),
        QAReference(("Zuxa",), "who", unseen=True),
        QAReference(("Mary",), "who"),
        QAReference((), "no_answer"),
    ]
    outputs = ["the kitchen", "Zu", "Mary", "garden"]
    report = task.metrics(outputs, refs, "test")
    v = report.values
    assert list(v)[:2] == ["em", "f1"]
    assert v["em"] == pytest.approx(50.0) and v["f1"] == pytest.approx(50.0)
    assert v["em_who"] == pytest.approx(50.0) and v["em_unseen"] == 0.0 and v["em_one_fact"] == 100.0
    assert v["f1_has_ans"] == pytest.approx(200 / 3) and v["f1_no_ans"] == 0.0
    assert set(report.protocol) == set(v)
    assert "test split, 4 all questions" in report.protocol["em"] and "max over all reference answers" in report.protocol["em"]
    # a split without unanswerable questions has no HasAns/NoAns split
    assert "f1_has_ans" not in task.metrics(outputs[:3], refs[:3], "test").values
    assert task.reward([None] * 4, outputs, refs) == pytest.approx([1.0, 0.0, 1.0, 0.0])
