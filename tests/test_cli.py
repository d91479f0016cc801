"""End to end through the real CLI on a tiny generated parallel corpus."""

import json

import pytest
import torch

from conftest import run_cli, tiny_train_args


@pytest.fixture(scope="module")
def trained_run(tiny_corpus, tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("cli") / "run"
    proc = run_cli("train", *tiny_train_args(tiny_corpus, run_dir, "trainer.max_steps=12", "trainer.max_epochs=6", "loader.max_tokens=512"))
    return run_dir, proc


def test_train_writes_a_complete_run_directory(trained_run):
    run_dir, proc = trained_run
    for name in ["config.yaml", "tokenizer.json", "run_id", "checkpoints/best.ckpt", "checkpoints/last.ckpt",
                 "metrics/val.json", "metrics/test.json", "csv/metrics.csv"]:
        assert (run_dir / name).exists(), name
    assert not list((run_dir / "checkpoints").glob("*.tmp")), "no temporary checkpoint left behind"
    test = json.loads((run_dir / "metrics/test.json").read_text())
    assert set(test) >= {"sacrebleu", "chrf"}
    assert "nrefs:1|case:mixed|eff:no|tok:13a|smooth:exp|version:" in test["sacrebleu"]["protocol"]
    assert "test split" in test["sacrebleu"]["protocol"]
    ckpt = torch.load(run_dir / "checkpoints/last.ckpt", weights_only=True)
    assert ckpt["global_step"] == 12
    samples = list((run_dir / "samples").glob("val_samples_step*.md"))
    assert samples and "| source | reference | output |" in samples[0].read_text()


def test_eval_scores_a_split_with_beam_search(trained_run):
    run_dir, _ = trained_run
    proc = run_cli("evaluate", f"run_dir={run_dir}", "split=val", "decoding=beam", "decoding.beam_size=3",
                   "decoding.max_len=24", "progress=false")
    assert "val/sacrebleu:" in proc.stdout and "signature" not in proc.stderr
    result = json.loads((run_dir / "eval/val-beam/results.json").read_text())
    assert result["split"] == "val" and result["decoding"]["beam_size"] == 3
    assert 0.0 <= result["metrics"]["val/sacrebleu"] <= 100.0
    assert "tok:13a" in result["protocol"]["sacrebleu"]["protocol"]


def test_onednn_serving_gives_the_same_outputs_and_refuses_bf16(trained_run, tmp_path):
    run_dir, _ = trained_run
    inputs = tmp_path / "in.de"
    inputs.write_text("Der hund läuft im park.\nDie katze sitzt im garten.\nEin mann.\n", encoding="utf-8")
    args = [f"run_dir={run_dir}", "input=-", "decoding=beam", "decoding.beam_size=3", "scores=true",
            "decoding.max_len=24"]
    plain = run_cli("predict", *args, input=inputs.read_text(encoding="utf-8")).stdout.splitlines()
    packed = run_cli("predict", *args, "onednn=true", input=inputs.read_text(encoding="utf-8")).stdout.splitlines()
    assert [line.split("\t")[0] for line in packed] == [line.split("\t")[0] for line in plain]
    assert all(abs(float(a.split("\t")[1]) - float(b.split("\t")[1])) < 1e-3 for a, b in zip(plain, packed))
    refused = run_cli("predict", *args, "onednn=true", "decoding.dtype=bf16", input="Ein mann.\n", check=False)
    assert refused.returncode != 0 and "onednn=true runs fp32 only" in refused.stderr
    assert "Traceback" not in refused.stderr


def test_predict_from_file_stdin_and_interactive(trained_run, tmp_path):
    run_dir, _ = trained_run
    inputs = tmp_path / "in.de"
    inputs.write_text("Der hund läuft im park.\nDie katze sitzt im garten.\n", encoding="utf-8")
    out = tmp_path / "out.en"
    run_cli("predict", f"run_dir={run_dir}", f"input={inputs}", f"output={out}", "decoding.max_len=24")
    from_file = out.read_text(encoding="utf-8").splitlines()
    assert len(from_file) == 2
    piped = run_cli("predict", f"run_dir={run_dir}", "input=-", "decoding.max_len=24",
                    input=inputs.read_text(encoding="utf-8")).stdout.splitlines()
    assert piped == from_file, "stdin and file inputs give the same outputs"
    nbest = run_cli("predict", f"run_dir={run_dir}", "input=-", "decoding=beam", "decoding.beam_size=3",
                    "decoding.num_return=2", "scores=true", "decoding.max_len=24",
                    input="Der hund läuft im park.\n").stdout.splitlines()
    assert len(nbest) == 2 and all("\t" in line for line in nbest)
    assert float(nbest[0].split("\t")[1]) >= float(nbest[1].split("\t")[1])
    interactive = run_cli("predict", f"run_dir={run_dir}", "interactive=true", "decoding.max_len=24",
                          input="Der hund läuft im park.\n\nDie katze sitzt im garten.\n")
    # a prompt per input line (the blank one is skipped), each answer on its own line, a last prompt at EOF
    assert interactive.stdout == f"> {from_file[0]}\n> > {from_file[1]}\n> "


def test_multirun_runs_every_job_in_its_own_directory(tiny_corpus, tmp_path):
    sweep = tmp_path / "sweep"
    args = [a for a in tiny_train_args(tiny_corpus, tmp_path / "unused") if not a.startswith("hydra.run.dir")]
    run_cli("train", "--multirun", *args, f"hydra.sweep.dir={sweep}", "trainer.max_steps=2",
            "test_after_training=false", "optim.optimizer.lr=1e-3,3e-3")
    lrs = sorted(float(__import__("yaml").safe_load((sweep / str(i) / "config.yaml").read_text())["optim"]["optimizer"]["lr"])
                 for i in range(2))
    assert lrs == [1e-3, 3e-3]
    assert all((sweep / str(i) / "checkpoints/last.ckpt").exists() for i in range(2))


def test_user_mistakes_stop_with_a_clear_message(tiny_corpus, tmp_path):
    unknown = run_cli("train", *tiny_train_args(tiny_corpus, tmp_path / "a"), "optim.optimizer.lrr=1", check=False)
    assert unknown.returncode != 0 and "optim.optimizer.lrr" in unknown.stderr
    bad = tmp_path / "bad"
    bad.mkdir()
    for split in ["train", "val", "test"]:
        (bad / f"{split}.de").write_text("a b\nc d\n")
        (bad / f"{split}.en").write_text("a b\n")
    mismatch = run_cli("train", *tiny_train_args(bad, tmp_path / "b"), check=False)
    assert mismatch.returncode != 0
    assert "train.de has 2 lines but" in mismatch.stderr and "Traceback" not in mismatch.stderr
    wrong_key = run_cli("train", *tiny_train_args(tiny_corpus, tmp_path / "c"), "encoder.layerz=2", check=False)
    assert wrong_key.returncode != 0 and "encoder.layerz" in wrong_key.stderr
    appended = run_cli("train", *tiny_train_args(tiny_corpus, tmp_path / "d"), "+encoder.layerz=2", check=False)
    assert appended.returncode != 0 and "unknown key encoder.layerz" in appended.stderr


def test_ddp_on_two_cpu_processes_scores_the_whole_split_once(tiny_corpus, tmp_path):
    run_dir = tmp_path / "ddp"
    run_cli("train", *tiny_train_args(tiny_corpus, run_dir, "trainer=ddp_cpu", "trainer.max_epochs=1",
                                      "loader.max_tokens=1024", "loader.eval_max_tokens=64", "logger=tensorboard"))
    assert sorted(p.name for p in run_dir.parent.iterdir()) == ["ddp"], "one output folder, not one per rank"
    val = json.loads((run_dir / "metrics/val.json").read_text())
    assert "val split, 24 segments" in val["sacrebleu"]["protocol"], "both ranks' halves were scored together"
    test = json.loads((run_dir / "metrics/test.json").read_text())
    assert "test split, 24 segments" in test["sacrebleu"]["protocol"]
    assert torch.load(run_dir / "checkpoints/last.ckpt", weights_only=True)["global_step"] > 0
