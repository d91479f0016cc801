"""Recommendation end to end through the real CLI: train, eval with full ranking, predict."""

import json

import pytest

from conftest import run_cli
from encdec_tasks.recommendation.fixtures import write_atomic

TINY_REC = [
    "task=recommendation", "encoder=sasrec", "decoder=next_item", "decoding=rank", "optim=adam_constant",
    "model.d_model=32", "model.dropout=0.1", "encoder.layers=1", "encoder.ffn=64", "encoder.max_len=8",
    "task.adapter.max_history=8", "task.adapter.train_stride=4", "objective.label_smoothing=0",
    "optim.optimizer.lr=1e-2", "loader.max_tokens=2048", "logger=csv", "callbacks=none",
]


@pytest.fixture(scope="module")
def rec_run(tmp_path_factory):
    base = tmp_path_factory.mktemp("rec_cli")
    write_atomic(base / "data")
    run_dir = base / "run"
    args = ["logger=[csv,tensorboard]" if a == "logger=csv" else a for a in TINY_REC]
    run_cli("train", *args, "data=atomic", f"data.root={base / 'data'}", "data.dataset=tiny",
            "trainer.max_epochs=40", "trainer.check_val_every_n_epoch=20", f"hydra.run.dir={run_dir}")
    return run_dir


def test_train_reports_ranking_metrics_with_their_protocol_and_titled_samples(rec_run):
    test = json.loads((rec_run / "metrics/test.json").read_text())
    assert {f"{m}@{k}" for m in ("hr", "ndcg", "mrr") for k in (5, 10, 20)} <= set(test)
    assert test["hr@10"]["value"] >= 0.7, "the Markov chain is learnt through the CLI too"
    protocol = test["ndcg@10"]["protocol"]
    assert "test split" in protocol and "full ranking over all 30 items" in protocol and "K=10" in protocol
    assert "history items" in protocol and "WARNING" not in protocol
    sample = next((rec_run / "samples").glob("val_samples_step*.md")).read_text()
    assert "| user | last 5 of history | next item |" in sample and "Film Number" in sample


def test_tensorboard_shows_each_evaluations_ranked_items_with_titles_and_protocol(rec_run):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(rec_run / "tensorboard"), size_guidance={"tensors": 0, "scalars": 0})
    acc.Reload()
    text = lambda tag: {e.step: e.tensor_proto.string_val[0].decode() for e in acc.Tensors(f"{tag}/text_summary")}  # noqa: E731
    samples, protocols = text("val/samples"), text("val/protocol")
    assert len(samples) == 2 and sorted(samples) == sorted(protocols), "every evaluation: samples and protocol"
    assert all("| user | last 5 of history | next item |" in t and "Film Number" in t for t in samples.values())
    assert all("full ranking over all 30 items" in t for t in protocols.values())
    assert len(acc.Scalars("val/ndcg@10")) == 2


def test_eval_full_ranking_with_history_excluded(rec_run):
    proc = run_cli("evaluate", f"run_dir={rec_run}", "decoding=rank", "decoding.k=null",
                   "decoding.exclude_source=true", "progress=false", "name=excluded")
    result = json.loads((rec_run / "eval/excluded/results.json").read_text())
    assert "history items excluded (none of the" in result["protocol"]["hr@10"]["protocol"]
    assert 0.0 <= result["metrics"]["test/hr@10"] <= 1.0 and "test/hr@10:" in proc.stdout


def test_predict_from_a_user_id_ids_and_titles(rec_run, tmp_path):
    out = run_cli("predict", f"run_dir={rec_run}", "input=-", "decoding=rank", "decoding.k=5",
                  input="user:u3\ni4 i5\nFilm Number 7 | Film Number 12\n").stdout.splitlines()
    assert len(out) == 3
    for line in out:
        items = line.split(" | ")
        assert len(items) == 5 and all(i.startswith("Film Number ") and i.endswith("]") for i in items)
    beam = run_cli("predict", f"run_dir={rec_run}", "input=-", "decoding=beam", "decoding.beam_size=3",
                   "decoding.num_return=3", "decoding.max_len=4", "decoding.min_len=3",
                   "scores=true", input="i4 i5\n").stdout.splitlines()
    assert len(beam) == 3 and all(len(line.split("\t")[0].split(" | ")) == 3 for line in beam)
