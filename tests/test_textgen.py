"""Text generation: BLEU / self-BLEU on hand cases and against sacreBLEU, the oracle task's
metric, and the CLI flows (MLE language model on sentences; SeqGAN on the oracle,
interrupted mid-phase and resumed)."""

import csv
import json
import math
import random

import pytest
import torch
from sacrebleu.metrics import BLEU

from conftest import run_cli
from encdec_tasks.textgen.data import OracleData
from encdec_tasks.textgen.fixtures import write_sentences
from encdec_tasks.textgen.metrics import ReferenceSet, corpus_bleu, self_bleu, sentence_bleu
from encdec_tasks.textgen.synthetic import OracleTextGenTask
from encdec_tasks.textgen.synthetic.fixtures import tiny_data_config as tiny_oracle_config


def _sacre(hyp: str, refs: list[str], n: int) -> float:
    scorer = BLEU(max_ngram_order=n, smooth_method="floor", smooth_value=0.1, tokenize="none", effective_order=False)
    return scorer.sentence_score(hyp, refs).score / 100.0


def test_bleu_hand_cases():
    refs = ["a cat sits on the mat", "the dog runs in the park"]
    assert corpus_bleu(["the dog runs in the park"], refs, [2, 5]) == {2: pytest.approx(1.0), 5: pytest.approx(1.0)}
    # no shared word: every precision is floored to 0.1 / total, brevity penalty 1 (same length)
    value = corpus_bleu(["x y z u v w"], refs, [2])[2]
    assert value == pytest.approx(math.exp((math.log(0.1 / 6) + math.log(0.1 / 5)) / 2))
    # mixing references: "a cat runs in the park" takes n-grams from both
    mixed = corpus_bleu(["a cat runs in the park"], refs, [2])[2]
    assert mixed == pytest.approx(math.sqrt(6 / 6 * 4 / 5))


def test_bleu_equals_sacrebleu_with_the_same_settings():
    rng = random.Random(0)
    words = "a b c d e f g".split()
    sentences = [" ".join(rng.choice(words) for _ in range(rng.randint(5, 9))) for _ in range(12)]
    hyps, refs = sentences[:4], sentences[4:]
    table = ReferenceSet([r.split() for r in refs], 5)
    for h in hyps:
        for n in (2, 3, 4, 5):
            assert sentence_bleu(h.split(), table, n) == pytest.approx(_sacre(h, refs, n), abs=1e-9)
    # self-BLEU: each sample against all the others
    expected = sum(_sacre(h, sentences[:i] + sentences[i + 1 :], 3) for i, h in enumerate(sentences)) / len(sentences)
    assert self_bleu(sentences, [3])[3] == pytest.approx(expected, abs=1e-9)


def test_self_bleu_hand_cases():
    same = self_bleu(["a b c d e", "a b c d e", "f g h i j"], [2])[2]
    unrelated = math.exp((math.log(0.1 / 5) + math.log(0.1 / 4)) / 2)
    assert same == pytest.approx((1.0 + 1.0 + unrelated) / 3)
    assert self_bleu(["a b c d e", "f g h i j"], [2])[2] == pytest.approx(unrelated)


def test_oracle_task_scores_oracle_samples_far_below_random(tmp_path):
    data = OracleData(**{k: v for k, v in tiny_oracle_config(tmp_path).items() if k != "_target_"})
    task = OracleTextGenTask(data)
    task.setup(tmp_path, "fit")
    own = task.metrics(data.read("val").tolist(), [], "val").values
    noise = torch.randint(0, 40, (16, 8), generator=torch.Generator().manual_seed(0)).tolist()
    rand = task.metrics(noise, [], "val").values
    assert own["valid_fraction"] == 1.0 and own["nll_oracle"] < rand["nll_oracle"] - 1.0
    # special ids are left out and counted
    eos = task.special_ids()["eos_id"]
    mixed = task.metrics([[1, 2, 3], [task.special_ids()["bos_id"], 4]], [], "val").values
    assert mixed["valid_fraction"] == 0.5
    assert task.decode(torch.tensor([[5, 6, eos, 7]])) == [[5, 6]]


# -- CLI flows ----------------------------------------------------------------------------------
TINY_LM = [
    "encoder=none", "decoder=gru", "model.d_model=32", "decoder.hidden_size=32", "model.share_embeddings=false",
    "logger=csv", "callbacks=none", "decoding=sampling", "decoding.max_len=12",
]


def test_cli_textgen_language_model_reports_bleu_and_self_bleu(tmp_path):
    corpus = write_sentences(tmp_path / "corpus")
    run = tmp_path / "run"
    run_cli(
        "train", "task=textgen", "data=text_file", f"data.root={corpus}", *TINY_LM,
        "task.adapter.tokenizer.vocab_size=120", "trainer=debug", "trainer.max_steps=15", f"hydra.run.dir={run}",
    )
    record = json.loads((run / "metrics" / "test.json").read_text())
    for n in (2, 3, 4, 5):
        assert 0.0 <= record[f"bleu{n}"]["value"] <= 1.0 and 0.0 <= record[f"self_bleu{n}"]["value"] <= 1.0
        assert "references: all" in record[f"bleu{n}"]["protocol"]
    assert record["bleu2"]["value"] >= record["bleu5"]["value"]


def _seqgan_args(tmp_path, run):
    data = tiny_oracle_config(tmp_path / "data")
    return [
        "experiment=seqgan_oracle_seqgan", f"data.oracle_path={data['oracle_path']}", "data.check_hash=false",
        "data.sizes.train=32", "data.sizes.val=8", "data.sizes.test=8", "data.seq_len=8",
        "model.d_model=16", "decoder.hidden_size=16", "loader.max_sentences=8",
        "objective.generator_pretrain_epochs=1", "objective.discriminator_pretrain_epochs=1",
        "objective.adversarial_rounds=2", "objective.generator_steps=1", "objective.discriminator_steps=1",
        "objective.rollouts=2",
        "objective.discriminator.embed_dim=8", "objective.discriminator.filter_sizes=[1,2,3]",
        "objective.discriminator.num_filters=[4,4,4]",
        "decoding.max_len=9", "decoding.min_len=8", "checkpoint_every_n_steps=1",
        "trainer.check_val_every_n_epoch=1000", "trainer.log_every_n_steps=1", "test_after_training=false",
        "callbacks=none",
        f"hydra.run.dir={run}",
    ]


def _logged_phases(run):
    rows = []
    for path in sorted(run.glob("**/metrics.csv")):
        with open(path) as f:
            rows += [r for r in csv.DictReader(f) if r.get("seqgan/phase")]
    return [(int(float(r["step"])), int(float(r["seqgan/phase"])), int(float(r["seqgan/phase_step"]))) for r in rows]


def _saved_state(run):
    ckpt = torch.load(run / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    return ckpt["state_dict"]["objective._extra_state"], ckpt["global_step"]


def test_cli_seqgan_resumes_mid_phase(tmp_path):
    """4 batches per epoch: 4 MLE steps, 4 discriminator steps, 2 rounds x (1 + 1) adversarial.
    Stopped after 6 steps (discriminator pre-training, 2 done), resumed: the phase continues at
    its third step and the run ends after exactly 12 steps with every phase complete."""
    run = tmp_path / "run"
    run_cli("train", *_seqgan_args(tmp_path, run), "trainer.max_steps=6")
    state, step = _saved_state(run)
    assert (state["phase"], state["phase_step"], step) == ("discriminator_pretrain", 2, 6)

    run_cli("train", f"resume={run}", "trainer.max_steps=100", f"hydra.run.dir={run}")
    state, step = _saved_state(run)
    assert (state["phase"], step) == ("done", 12)
    # logged at every step: (phase index, step within the phase); no phase restarts
    expected = [(0, i) for i in range(4)] + [(1, i) for i in range(4)] + [(2, i) for i in range(4)]
    assert [(p, s) for _, p, s in sorted(_logged_phases(run))] == expected


def test_prefix_conditioned_examples_split_source_and_continuation(tmp_path):
    from encdec_tasks.textgen import TextGenTask
    from encdec_tasks.textgen.data import TextFile

    corpus = write_sentences(tmp_path / "corpus")
    data = TextFile(str(corpus), {"train": "train.txt", "val": "val.txt", "test": "test.txt"})
    task = TextGenTask(data, tokenizer={"vocab_size": 120}, prefix_words=2)
    task.setup(tmp_path, "fit")
    sentence = data.read("val")[0]
    batch = task.collate(list(task.examples("val"))[:3])
    words = sentence.split()
    assert batch.meta["source"][0] == " ".join(words[:2]) and batch.meta["ref"][0] == " ".join(words[2:])
    assert task.tok.decode(batch.src[0][batch.src_mask[0]].tolist()).split() == words[:2]
    assert task.decode(batch.tgt_out[:1])[0].split() == words[2:]
    unconditional = TextGenTask(data, tokenizer={"vocab_size": 120})
    unconditional.setup(tmp_path, "eval")
    assert unconditional.collate(list(unconditional.examples("val"))[:2]).src.shape == (2, 1)
