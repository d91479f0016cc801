"""QA end to end through the real CLI: train (with copy) on the tiny generated set, eval,
predict from "question ||| context" lines."""

import json

import pytest

from conftest import TINY_MODEL, run_cli
from encdec_tasks.qa.fixtures import TINY_STORIES


@pytest.fixture(scope="module")
def qa_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("qa")
    run_dir = root / "run"
    stories = ",".join(f"{k}:{v}" for k, v in TINY_STORIES.items())
    model = [a for a in TINY_MODEL if not a.startswith("task.adapter.tokenizer")]
    run_cli("train", "task=qa", "data=generated_qa", f"data.root={root / 'data'}", f"data.stories={{{stories}}}",
            "task.adapter.tokenizer.vocab_size=200", "decoder.copy=true", *model, "trainer=debug",
            "trainer.max_steps=10", "loader.max_tokens=2048", f"hydra.run.dir={run_dir}")
    return run_dir


def test_train_scores_test_with_breakdowns_and_protocol(qa_run):
    test = json.loads((qa_run / "metrics/test.json").read_text())
    assert {"em", "f1", "f1_has_ans", "f1_no_ans", "f1_who", "f1_counting"} <= set(test)
    assert all(0.0 <= m["value"] <= 100.0 for m in test.values())
    assert "SQuAD v2.0 official answer normalisation" in test["f1"]["protocol"]


def test_eval_and_predict(qa_run, tmp_path):
    proc = run_cli("evaluate", f"run_dir={qa_run}", "checkpoint=last", "split=val", "decoding=beam", "decoding.beam_size=2",
                   "decoding.max_len=8", "progress=false")
    assert "val/f1:" in proc.stdout and "val/em_yes_no:" in proc.stdout
    lines = "Where is Mary? ||| Mary went to the kitchen.\nIs Mary in the garden? ||| Mary went to the kitchen.\n"
    out = run_cli("predict", f"run_dir={qa_run}", "checkpoint=last", "input=-", "decoding.max_len=8", input=lines)
    assert len(out.stdout.splitlines()) == 2
