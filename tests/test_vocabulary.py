"""One vocabulary interface for every task, its spec saved with the run and its checkpoints,
and `init_from` bringing a run's vocabulary, model sizes and weights."""

import json
import shutil
import sys

import pytest
import pytorch_lightning as pl
import torch
from omegaconf import OmegaConf

import encdec
from conftest import tiny_train_args
from encdec.checkpointing import load_weights, resolve_init_from
from encdec.data.vocabulary import SPEC_KEY, Vocabulary, check_vocabulary, spec_difference, vocabulary_spec
from encdec.errors import ConfigError
from encdec_tasks.translation.fixtures import write_parallel_corpus


class WeightProbe(pl.Callback):
    """The model's weights when training starts (after init_from), for the test to compare."""

    seen: dict = {}

    def on_fit_start(self, trainer, pl_module):
        WeightProbe.seen = {k: v.detach().clone() for k, v in pl_module.model.state_dict().items()}


# -- the interface ------------------------------------------------------------------------------


def test_word_level_vocabulary_round_trips_and_keeps_its_kind(tmp_path):
    texts = ["3 + 4 = 7", "10 + 2 = 12", "red green blue"]
    vocab = Vocabulary.train(texts, model="word")
    assert vocab.kind == "word" and (vocab.pad_id, vocab.bos_id, vocab.eos_id, vocab.unk_id) == (0, 1, 2, 3)
    assert vocab.size == 4 + len({w for t in texts for w in t.split()})
    for text in texts:
        assert vocab.decode(vocab.encode(text)) == text
    three, plus = vocab.encode("3 +")
    assert vocab.encode("3 + purple") == [three, plus, vocab.unk_id], "an unseen word is <unk>"
    vocab.save(tmp_path / "tokenizer.json")
    again = Vocabulary.load(tmp_path / "tokenizer.json")
    assert again.kind == "word" and again.spec() == vocab.spec()

    items = Vocabulary.closed(["i9", "i2"], specials=("<pad>", "<s>", "</s>"))  # item ids: no <unk>
    assert items.encode("i2 i9") == [4, 3] and items.unk_id is None and items.mask_id is None
    assert items.decode([3, 4, items.eos_id, 3]) == "i9 i2", "decoding stops at EOS"


def test_the_spec_tells_vocabularies_of_one_size_apart_by_their_pieces():
    one = Vocabulary.train(["ein hund läuft im park"] * 20, vocab_size=30)
    other = Vocabulary.train(["a dog runs in the park"] * 20, vocab_size=30)
    assert one.size == other.size and one.spec().specials == other.spec().specials
    difference = spec_difference(vocabulary_spec({"target": one}), vocabulary_spec({"target": other}))
    assert difference and "maps other pieces" in difference
    assert spec_difference(vocabulary_spec({"target": one}), vocabulary_spec({"target": one})) is None

    with pytest.raises(ConfigError, match=r"^init_from=x: its vocabulary is not this run's \(the target vocabulary maps other pieces"):
        check_vocabulary(vocabulary_spec({"target": one}), {"source": other, "target": other}, "init_from=x", "...")
    word = Vocabulary.train(["a dog runs in the park"] * 20, model="word")
    assert "kind is bpe there, word here" in spec_difference(vocabulary_spec({"target": one}), vocabulary_spec({"target": word}))


# -- init_from ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def source_run(tiny_corpus, tmp_path_factory):
    """A tiny translation run (vocabulary 120, d_model 32, one layer per side)."""
    run_dir = tmp_path_factory.mktemp("vocab") / "source"
    encdec.train(tiny_train_args(tiny_corpus, run_dir, "trainer.max_steps=4", "loader.max_tokens=512",
                                 "test_after_training=false"))
    return run_dir


def _bare_args(corpus, run_dir, *extra):
    """A tiny run WITHOUT the vocabulary and model-size options of the tiny model."""
    return ["data=parallel", f"data.root={corpus}", "data.src_lang=de", "data.tgt_lang=en", "logger=csv",
            "callbacks=none", "optim.schedule.warmup_steps=2", "decoding.max_len=24", "loader.max_tokens=512",
            "trainer.max_steps=2", "test_after_training=false", f"hydra.run.dir={run_dir}", *extra]


def test_init_from_brings_the_vocabulary_the_model_sizes_and_the_weights(source_run, tmp_path):
    # other data: a tokenizer trained here would not be the source run's
    corpus = write_parallel_corpus(tmp_path / "corpus", sizes={"train": 60, "val": 8, "test": 8}, seed=7)
    run_dir = tmp_path / "finetune"
    WeightProbe.seen = {}
    encdec.train(_bare_args(corpus, run_dir, f"init_from={source_run}", "+callbacks.probe._target_=test_vocabulary.WeightProbe"))

    assert (run_dir / "tokenizer.json").read_text() == (source_run / "tokenizer.json").read_text()
    spec = json.loads((run_dir / "vocabulary.json").read_text())
    assert spec == json.loads((source_run / "vocabulary.json").read_text())
    assert spec_difference(torch.load(run_dir / "checkpoints/last.ckpt", weights_only=True)[SPEC_KEY], spec) is None
    cfg = OmegaConf.load(run_dir / "config.yaml")
    assert cfg.model.d_model == 32 and cfg.encoder.layers == 1 and cfg.decoder.ffn == 64 and cfg.decoder.heads == 2
    assert cfg.task.adapter.tokenizer.vocab_size == 120, "the tokenizer options are that run's too"
    start = load_weights(resolve_init_from(source_run))
    assert set(WeightProbe.seen) == set(start)
    assert all(torch.equal(WeightProbe.seen[k], v) for k, v in start.items()), "training starts from the source weights"


def test_init_from_refuses_a_size_given_otherwise_and_another_vocabulary(source_run, tiny_corpus, tmp_path):
    with pytest.raises(ConfigError, match=r"^task.adapter.tokenizer.vocab_size=100 but init_from=.* has task.adapter.tokenizer.vocab_size=120"):
        encdec.train(_bare_args(tiny_corpus, tmp_path / "a", f"init_from={source_run}", "task.adapter.tokenizer.vocab_size=100"))
    with pytest.raises(ConfigError, match=r"^model.d_model=64 but init_from=.* has model.d_model=32"):
        encdec.train(_bare_args(tiny_corpus, tmp_path / "b", f"init_from={source_run}", "model.d_model=64"))
    with pytest.raises(ConfigError, match=r"^task.adapter.tokenizer.model=word but init_from=.* has task.adapter.tokenizer.model=bpe"):
        encdec.train(_bare_args(tiny_corpus, tmp_path / "k", f"init_from={source_run}", "task.adapter.tokenizer.model=word"))
    # a checkpoint away from its run directory: this run trains its own vocabulary on other text
    lonely = tmp_path / "lonely.ckpt"
    shutil.copyfile(resolve_init_from(source_run), lonely)
    corpus = tmp_path / "numbers"
    corpus.mkdir()
    for split in ("train", "val", "test"):
        (corpus / f"{split}.de").write_text("".join(f"zahl {i} und {i + 1}\n" for i in range(40)), encoding="utf-8")
        (corpus / f"{split}.en").write_text("".join(f"number {i} and {i + 1}\n" for i in range(40)), encoding="utf-8")
    with pytest.raises(ConfigError, match=r"^init_from=.*lonely.ckpt: its vocabulary is not this run's") as error:
        encdec.train(_bare_args(corpus, tmp_path / "c", f"init_from={lonely}", "model.d_model=32",
                                "task.adapter.tokenizer.vocab_size=120"))
    assert "\n" not in str(error.value)


def test_the_removed_from_run_key_names_init_from(monkeypatch):
    from encdec.cli.train import main

    monkeypatch.setattr(sys, "argv", ["encdec-train", "task.adapter.tokenizer.from_run=runs/x"])
    with pytest.raises(SystemExit, match=r"^error: task.adapter.tokenizer.from_run no longer exists: init_from=<run> brings"):
        main()  # before Hydra, which would only call it an unknown key


# -- checkpoints and run directories ------------------------------------------------------------


def test_eval_refuses_a_checkpoint_of_another_vocabulary(source_run, tmp_path):
    run_dir = shutil.copytree(source_run, tmp_path / "run")
    Vocabulary.train(["a dog runs in the park"] * 20, vocab_size=120).save(run_dir / "tokenizer.json")
    with pytest.raises(ConfigError, match=r"^checkpoint .*last.ckpt: its vocabulary is not this run's"):
        encdec.evaluate([f"run_dir={run_dir}", "split=val", "checkpoint=last", "progress=false", "decoding.max_len=24"])


def test_a_run_directory_from_before_vocabulary_specs_still_evaluates(source_run, tmp_path):
    run_dir = shutil.copytree(source_run, tmp_path / "old")
    (run_dir / "vocabulary.json").unlink()
    for ckpt in (run_dir / "checkpoints").glob("*.ckpt"):
        state = torch.load(ckpt, weights_only=True)
        state.pop(SPEC_KEY)
        torch.save(state, ckpt)
    cfg = OmegaConf.load(run_dir / "config.yaml")
    cfg.task.adapter.tokenizer.from_run = None  # what such runs saved
    OmegaConf.save(cfg, run_dir / "config.yaml")
    assert Vocabulary.load(run_dir / "tokenizer.json").kind == "bpe"
    metrics = encdec.evaluate([f"run_dir={run_dir}", "split=val", "checkpoint=last", "progress=false", "decoding.max_len=24"])
    assert 0.0 <= metrics["val/sacrebleu"] <= 100.0


def test_recommendation_items_are_a_closed_vocabulary_and_old_item_lists_still_load(tmp_path):
    from encdec_tasks.recommendation import RecommendationTask
    from encdec_tasks.recommendation.data import AtomicFiles
    from encdec_tasks.recommendation.fixtures import write_atomic

    write_atomic(tmp_path / "data")
    data = AtomicFiles(str(tmp_path / "data"), "tiny")
    new_dir, old_dir = tmp_path / "new", tmp_path / "old"
    new_dir.mkdir(), old_dir.mkdir()
    trained = RecommendationTask(data)
    trained.setup(new_dir, "fit")
    vocab = trained.vocabularies()["target"]
    assert vocab.kind == "word" and vocab.size == len(trained.items) + 3 and vocab.unk_id is None
    reloaded = RecommendationTask(data)
    reloaded.setup(new_dir, "eval")
    assert reloaded.index == trained.index and reloaded.titles == trained.titles and reloaded.titles
    # a run written before item vocabularies were tokenizer files: items.json lists the items
    order = list(reversed(trained.items))
    (old_dir / "items.json").write_text(json.dumps({"items": order, "titles": {}, "genres": {}}))
    old = RecommendationTask(data)
    old.setup(old_dir, "eval")
    assert old.index == {item: i + 3 for i, item in enumerate(order)} and not (old_dir / "tokenizer.json").exists()
