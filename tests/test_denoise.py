"""Denoising pre-training: exact properties of the noise (spans, lengths, determinism), the
noised batch, and the CLI flow pre-train on monolingual text -> fine-tune with init_from."""

from __future__ import annotations

import csv

import pytest
import torch

from denoise_runs import denoise_run, finetuned_run, monolingual_corpus  # noqa: F401 (fixtures)
from encdec.checkpointing import load_init_weights, load_weights, resolve_init_from
from encdec.data.tokenizer import SubwordTokenizer
from encdec.errors import ConfigError
from encdec.objectives import Denoise
from encdec.objectives.denoise import delete, infill, local_shuffle
from encdec.types import Batch
from toy import make_model

MASK = 99


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


@pytest.mark.parametrize("n", [1, 2, 5, 13, 40])
def test_infilling_removes_exactly_the_masked_share_in_spans_one_mask_each(n):
    tokens = list(range(10, 10 + n))  # distinct, increasing: the gaps show where spans were
    for seed in range(30):
        out = infill(tokens, MASK, 0.3, 3.0, _gen(seed))
        kept = [t for t in out if t != MASK]
        assert len(kept) == n - round(0.3 * n), "exactly round(ratio * n) tokens are masked"
        assert kept == sorted(kept) and set(kept) <= set(tokens), "kept tokens stay in order"
        # every run of removed tokens sits where at least one mask is
        padded = [9] + out + [10 + n]
        real = [i for i, t in enumerate(padded) if t != MASK]
        for a, b in zip(real, real[1:]):
            if padded[b] - padded[a] > 1:
                assert b - a > 1, f"tokens {padded[a] + 1}..{padded[b] - 1} vanished without a mask"


def test_span_lengths_follow_the_poisson_mean():
    tokens = list(range(1000))
    masks = [sum(t == MASK for t in infill(tokens, MASK, 0.3, 3.0, _gen(s))) for s in range(20)]
    # 300 masked tokens in spans of mean 3 (Poisson(3)); 0-length spans add masks too
    assert 85 <= sum(masks) / len(masks) <= 120
    long_spans = [sum(t == MASK for t in infill(tokens, MASK, 0.3, 10.0, _gen(s))) for s in range(20)]
    assert 25 <= sum(long_spans) / len(long_spans) <= 36


def test_noise_is_deterministic_given_the_seed():
    tokens = list(range(5, 35))
    first = infill(tokens, MASK, 0.3, 3.0, _gen(4))
    assert infill(tokens, MASK, 0.3, 3.0, _gen(4)) == first
    assert any(infill(tokens, MASK, 0.3, 3.0, _gen(s)) != first for s in range(5, 10))
    objective = Denoise(seed=3)
    assert objective.generator(17).initial_seed() == Denoise(seed=3).generator(17).initial_seed()
    assert objective.generator(17).initial_seed() != objective.generator(18).initial_seed()


def test_deletion_and_local_shuffle():
    tokens = list(range(100))
    kept = delete(tokens + [MASK], MASK, 0.5, _gen(0))
    assert MASK in kept and 30 < len(kept) < 70 and kept == sorted(kept)
    for seed in range(10):
        shuffled = local_shuffle(tokens, 3, _gen(seed))
        assert sorted(shuffled) == tokens
        assert max(abs(pos - t) for pos, t in enumerate(shuffled)) <= 3
    assert local_shuffle(tokens, 3, _gen(0)) != tokens
    assert local_shuffle(tokens, 0, _gen(0)) == tokens


def test_noised_batch_reads_the_target_text_as_its_source():
    eos, pad = 2, 0
    tgt_out = torch.tensor([[5, 6, 7, 8, 9, 10, 11, 12, 13, 14, eos], [5, 6, 7, eos, pad, pad, pad, pad, pad, pad, pad]])
    batch = Batch(src=torch.zeros(2, 1, dtype=torch.long), tgt_in=tgt_out.clone(), tgt_out=tgt_out)
    objective = Denoise(mask_ratio=0.3, mask_id=MASK)
    objective.src_pad_id = pad
    noised = objective.noise_batch(batch, eos, pad, _gen(0))
    assert noised.tgt_out is batch.tgt_out and noised.tgt_in is batch.tgt_in
    lengths = noised.src_mask.sum(1).tolist()
    rows = [noised.src[i, :n].tolist() for i, n in enumerate(lengths)]
    assert all(eos not in r and pad not in r for r in rows)
    assert [sum(t != MASK for t in r) for r in rows] == [7, 2], "10 and 3 tokens, 30% masked"
    assert all(MASK in r for r in rows)
    assert bool((noised.src[~noised.src_mask] == pad).all())


def test_denoise_takes_the_mask_id_from_the_source_vocabulary_and_needs_one_vocabulary():
    from encdec.data.vocabulary import Vocabulary

    words = ["ein hund läuft im park"] * 20
    plain, masked = Vocabulary.train(words, vocab_size=40), Vocabulary.train(words, vocab_size=40, mask_token=True)

    class Adapter:
        def __init__(self, source, target):
            self.vocabs = {"source": source, "target": target}

        def vocabularies(self):
            return self.vocabs

    with pytest.raises(ConfigError, match="mask token"):
        Denoise().setup(None, Adapter(plain, plain))
    objective = Denoise()
    objective.setup(None, Adapter(masked, masked))
    assert objective.mask_id == masked.mask_id == 4, "the mask id comes with the source vocabulary's spec"
    assert masked.spec().specials["mask"] == 4
    with pytest.raises(ConfigError, match="joint=true"):
        Denoise(mask_id=4).setup(None, Adapter(masked, Vocabulary.train(["a dog runs"] * 20, vocab_size=40)))


# --- the CLI --------------------------------------------------------------------------------


def test_pretrain_on_monolingual_text_then_finetune_translation(denoise_run, finetuned_run):
    pre_dir, _ = denoise_run
    ft_dir, output = finetuned_run
    tok = SubwordTokenizer.load(pre_dir / "tokenizer.json")
    assert tok.mask_id is not None and tok.mask_id > tok.unk_id
    rows = list(csv.DictReader(open(pre_dir / "csv/metrics.csv")))
    losses = [float(r["train/loss"]) for r in rows if r.get("train/loss")]
    assert len(losses) == 6 and losses[-1] < losses[0], "the denoising loss falls"
    # fine-tuning reuses the pre-training vocabulary and loads every weight
    assert (ft_dir / "tokenizer.json").read_text() == (pre_dir / "tokenizer.json").read_text()
    assert "0 missing, 0 unexpected keys" in output
    start = load_weights(pre_dir / "checkpoints/last.ckpt")
    assert set(start) == set(load_weights(ft_dir / "checkpoints/last.ckpt"))
    assert (ft_dir / "metrics/test.json").exists()


def test_init_from_a_run_directory_and_a_clear_error_on_another_vocabulary(denoise_run, tmp_path):
    pre_dir, _ = denoise_run
    assert resolve_init_from(pre_dir) == pre_dir / "checkpoints/best.ckpt"
    model = make_model("transformer", "transformer", d_model=32)  # the toy's 14 symbols, not the run's 120
    with pytest.raises(ConfigError, match=r"init_from=.*differ in shape.*init_from brings that run's vocabulary"):
        load_init_weights(model, pre_dir)
    with pytest.raises(ConfigError, match="no such checkpoint"):
        resolve_init_from(tmp_path / "nowhere")
