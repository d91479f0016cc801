"""The Python API runs the same configs, checks and steps as the command-line apps."""

import pytest

import encdec
from conftest import run_cli, tiny_train_args
from encdec.errors import ConfigError


@pytest.fixture(scope="module")
def api_run(tiny_corpus, tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("api") / "run"
    # best.ckpt by validation NLL: the result still names the task's metric (what sweeps optimise)
    result = encdec.train(tiny_train_args(tiny_corpus, run_dir, "trainer.max_steps=6", "loader.max_tokens=512",
                                          "best_checkpoint.monitor=val/loss", "best_checkpoint.mode=min"))
    return run_dir, result


def test_train_in_process_writes_a_run_and_returns_its_metrics(api_run):
    run_dir, result = api_run
    assert (run_dir / "checkpoints" / "last.ckpt").exists() and (run_dir / "config.yaml").exists()
    assert result.monitor == "val/sacrebleu" and result.monitor_mode == "max"
    assert "test/sacrebleu" in result.metrics


def test_load_run_predicts_what_the_cli_prints(api_run):
    run_dir, _ = api_run
    lines = ["Der hund läuft im park.", "Die katze sitzt im garten."]
    run = encdec.load_run(run_dir, checkpoint="last", decoding=["decoding.max_len=24"])
    cli = run_cli("predict", f"run_dir={run_dir}", "checkpoint=last", "input=-", "decoding.max_len=24",
                  input="\n".join(lines) + "\n").stdout.splitlines()
    assert run.predict(lines) == cli
    assert run.decoding.max_len_a == 1.5  # translation's length rule, from the run's saved task
    beam = encdec.load_run(run_dir, checkpoint="last", decoding=["decoding=beam", "decoding.beam_size=3",
                                                                  "decoding.num_return=2", "decoding.max_len=24"])
    pairs = beam.predict(lines[:1], n_best=True)[0]
    assert len(pairs) == 2 and pairs[0][1] >= pairs[1][1]


def test_evaluate_in_process(api_run):
    run_dir, _ = api_run
    metrics = encdec.evaluate([f"run_dir={run_dir}", "split=val", "checkpoint=last", "progress=false",
                               "decoding.max_len=24"])
    assert 0.0 <= metrics["val/sacrebleu"] <= 100.0


def test_mistakes_raise_the_error_the_cli_prints(tiny_corpus, tmp_path):
    with pytest.raises(ConfigError, match="unknown key foo"):
        encdec.train(tiny_train_args(tiny_corpus, tmp_path / "run", "+foo=1"))
