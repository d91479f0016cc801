"""Readers, tokenizer and token-budget batching."""

import gzip

import pytest

from encdec.data.bucketing import TokenBudgetBatchSampler
from encdec.data.tokenizer import SubwordTokenizer
from encdec.errors import DataError
from encdec_tasks.translation.data import Multi30k, ParallelText, TSVText, read_lines


def test_reads_plain_and_gzip_aligned_files(tmp_path):
    (tmp_path / "train.de").write_text("Ein Hund.\nZwei Katzen.\n", encoding="utf-8")
    with gzip.open(tmp_path / "train.en.gz", "wt", encoding="utf-8") as f:
        f.write("A dog.\nTwo cats.\n")
    pairs = ParallelText(str(tmp_path), "de", "en", {"train": "train"}).read("train")
    assert pairs == [("Ein Hund.", "A dog."), ("Zwei Katzen.", "Two cats.")]


@pytest.mark.parametrize(
    "content,message",
    [
        (b"ok\n\nok\n", r"x\.txt, line 2: empty line"),
        (b"ok\n\xff\xfe bad\n", r"x\.txt, line 2: not valid UTF-8"),
    ],
)
def test_bad_lines_are_reported_with_file_and_line(tmp_path, content, message):
    path = tmp_path / "x.txt"
    path.write_bytes(content)
    with pytest.raises(DataError, match=message):
        read_lines(path)


def test_mismatched_line_counts_name_both_files(tmp_path):
    (tmp_path / "train.de").write_text("a\nb\n")
    (tmp_path / "train.en").write_text("a\n")
    with pytest.raises(DataError, match=r"train\.de has 2 lines but .*train\.en has 1"):
        ParallelText(str(tmp_path), "de", "en", {"train": "train"}).read("train")


def test_tsv_reader_and_its_errors(tmp_path):
    (tmp_path / "train.tsv").write_text("Hallo\tHello\nWelt\tWorld\n")
    assert TSVText(str(tmp_path), {"train": "train.tsv"}).read("train") == [("Hallo", "Hello"), ("Welt", "World")]
    (tmp_path / "bad.tsv").write_text("Hallo\tHello\nonly one field\n")
    with pytest.raises(DataError, match=r"bad\.tsv, line 2: expected 'source<TAB>target'"):
        TSVText(str(tmp_path), {"train": "bad.tsv"}).read("train")


def test_multi30k_offline_without_files_says_where_to_put_them(tmp_path):
    reader = Multi30k(root=str(tmp_path), download=False)
    with pytest.raises(DataError, match="ENCDEC_DATA_DIR"):
        reader.read("train")


def test_multi30k_reads_the_shared_offline_copy():
    from conftest import SHARED_DATA

    if not (SHARED_DATA / "multi30k").exists():
        pytest.skip("no offline Multi30k copy beside the repository")
    reader = Multi30k(root=str(SHARED_DATA), download=False)
    val = reader.read("val")
    assert len(val) == 1014 and len(reader.read("test")) == 1000


def test_tokenizer_round_trips_detokenised_text(tmp_path):
    texts = ["Ein kleiner Hund läuft im Park.", "A small dog runs in the park.", "Zwei Männer, ein Ball!"] * 20
    tok = SubwordTokenizer.train(texts, vocab_size=200)
    assert (tok.pad_id, tok.bos_id, tok.eos_id, tok.unk_id) == (0, 1, 2, 3)
    for text in texts[:3]:
        assert tok.decode(tok.encode(text)) == text
    assert tok.decode(tok.encode(texts[0]) + [tok.eos_id] + tok.encode("Ball")) == texts[0], "stops at EOS"
    tok.save(tmp_path / "tok.json")
    assert SubwordTokenizer.load(tmp_path / "tok.json").encode(texts[1]) == tok.encode(texts[1])


def test_token_budget_batches_respect_budget_and_cover_every_example_once():
    lengths = [3, 17, 5, 9, 9, 30, 2, 12, 8, 8, 8, 25] * 10
    sampler = TokenBudgetBatchSampler(lengths, max_tokens=64, seed=1)
    batches = list(sampler)
    assert sorted(i for b in batches for i in b) == list(range(len(lengths)))
    assert all(max(lengths[i] for i in b) * len(b) <= 64 for b in batches)
    padded = sum(max(lengths[i] for i in b) * len(b) for b in batches)
    assert sum(lengths) / padded > 0.9, "length bucketing keeps padding low"
    sampler.set_epoch(1)
    assert list(sampler) != batches, "a new epoch reshuffles"
    sampler.set_epoch(0)
    assert list(sampler) == batches, "deterministic per (seed, epoch)"


def test_token_budget_sharding_gives_ranks_disjoint_equal_shares():
    lengths = list(range(1, 41))
    shards = [list(TokenBudgetBatchSampler(lengths, 80, rank=r, world_size=2)) for r in range(2)]
    assert len(shards[0]) == len(shards[1])
    seen = [i for shard in shards for b in shard for i in b]
    assert len(seen) == len(set(seen))


def test_evaluation_sharding_scores_every_example_exactly_once():
    lengths = list(range(1, 42))
    shards = [list(TokenBudgetBatchSampler(lengths, 80, shuffle=False, rank=r, world_size=2)) for r in range(2)]
    assert sorted(i for shard in shards for b in shard for i in b) == list(range(len(lengths)))


def test_budget_smaller_than_an_example_is_a_config_error():
    with pytest.raises(ValueError, match="loader.max_tokens=4"):
        TokenBudgetBatchSampler([3, 9], max_tokens=4)


def test_unigram_tokenizer_round_trips_too():
    texts = ["Ein kleiner Hund läuft im Park.", "A small dog runs in the park.", "Zwei Männer spielen Ball."] * 30
    tok = SubwordTokenizer.train(texts, vocab_size=60, model="unigram")
    assert tok.vocab_size <= 60 and (tok.pad_id, tok.bos_id, tok.eos_id) == (0, 1, 2)
    assert [tok.decode(tok.encode(t)) for t in texts[:3]] == texts[:3]
    with pytest.raises(ValueError, match="task.adapter.tokenizer.model"):
        SubwordTokenizer.train(texts, model="wordpiece")
