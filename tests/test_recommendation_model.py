"""Recommendation models, ranking search, losses and metrics: exact values on small tensors,
and models that learn a Markov-chain item sequence set."""

import math
import random

import pytest
import torch
import torch.nn.functional as F

from encdec.decoding import BeamSearch
from encdec.decoding.ranking import TopKRanking
from encdec.errors import ConfigError
from encdec.model import EncoderDecoder
from encdec.modules.item_sequence import GRU4RecEncoder, NextItemDecoder, SASRecEncoder
from encdec.objectives import MLE
from encdec.objectives.bpr import BPR, bpr_loss
from encdec.objectives.mle import token_nll
from encdec.objectives.sampled_softmax import SampledSoftmax, sampled_softmax_loss
from encdec.types import EncoderOutput
from encdec_tasks.recommendation import RecommendationTask
from encdec_tasks.recommendation.adapter import ItemList
from encdec_tasks.recommendation.data import AtomicFiles
from encdec_tasks.recommendation.fixtures import write_atomic
from encdec_tasks.recommendation.metrics import ranking_metrics, sampled_rank

PAD, BOS, EOS = 0, 1, 2


def test_ranking_metrics_match_hand_computed_values():
    ranks = [1, 3, None, 12]  # the true next item's rank per user (None: not in the list)
    m = ranking_metrics(ranks, [5, 10, 20])
    assert m["hr@5"] == m["hr@10"] == pytest.approx(2 / 4)
    assert m["ndcg@5"] == pytest.approx((1 + 1 / math.log2(4)) / 4)  # 1/log2(1+1), 1/log2(3+1)
    assert m["mrr@10"] == pytest.approx((1 + 1 / 3) / 4)
    assert m["hr@20"] == pytest.approx(3 / 4)
    assert m["ndcg@20"] == pytest.approx((1 + 0.5 + 1 / math.log2(13)) / 4)
    assert m["mrr@20"] == pytest.approx((1 + 1 / 3 + 1 / 12) / 4)
    assert sampled_rank("t", ["a", "t", "b", "c"], ["b", "a", "c"]) == 2
    assert sampled_rank("t", ["a", "b"], ["a"]) is None


@pytest.fixture(scope="module")
def task(tmp_path_factory):
    root = tmp_path_factory.mktemp("rec")
    write_atomic(root)
    adapter = RecommendationTask(AtomicFiles(str(root), "tiny"), max_history=8, train_stride=4)
    adapter.setup(root, "fit")
    return adapter


def test_adapter_metrics_protocol_history_exclusion_and_sampled_metrics(task):
    refs = [ItemList(["i1"], history=["i5", "i6"]), ItemList(["i2"], history=["i7"])]
    outputs = [ItemList(["i9", "i1", "i5"]), ItemList(["i3", "i4"])]
    report = task.metrics(outputs, refs, "test")
    assert report.values["hr@5"] == 0.5 and report.values["mrr@5"] == pytest.approx(0.25)
    assert set(report.protocol) == set(report.values)
    p = report.protocol["ndcg@10"]
    assert "test split" in p and "leave-one-out" in p and "K=10" in p and "full ranking over all 30 items" in p
    assert "history items not excluded (1 of 2 ranked lists contain one)" in p
    assert "WARNING: ranked lists as short as 2 < K" in p
    clean = task.metrics([ItemList(["i1"]), ItemList(["i2"])], refs, "val").protocol["hr@5"]
    assert "history items excluded" in clean

    sampled = RecommendationTask(task.data, sampled_negatives=3, ks=[1, 2])
    sampled.setup(task_dir(task), "eval")
    everything = [f"i{i}" for i in range(30)]
    # i0.. ranked in order: target i1 has only i0 above it (if i0 is drawn as a negative)
    report = sampled.metrics([ItemList(everything)], [ItemList(["i1"], history=["i5"])], "test")
    negatives = __import__("encdec_tasks.recommendation.metrics", fromlist=["x"]).sample_negatives(
        sampled.items, {"i5", "i1"}, 3, random.Random(0))
    expected_rank = 1 + ("i0" in negatives)
    assert report.values["hr_sampled3@1"] == float(expected_rank == 1)
    assert "3 uniform negatives" in report.protocol["hr_sampled3@1"]
    with pytest.raises(ConfigError, match="decoding.k=null"):
        sampled.metrics([ItemList(["i1", "i2"])], [ItemList(["i1"], history=[])], "test")


def task_dir(task):
    return task.data.folder.parent


def test_parse_inputs_takes_user_ids_item_ids_and_titles(task):
    ex = task.parse_inputs(["user:u3", "i4 i5", "Film Number 7 | film number 12 (1992)", "i4,i9"])
    sequences = task._read_sequences()
    assert task._raw(ex[0]["src"]) == sequences["u3"][-8:]
    assert task._raw(ex[1]["src"]) == ["i4", "i5"]
    assert task._raw(ex[2]["src"]) == ["i7", "i12"]
    assert task._raw(ex[3]["src"]) == ["i4", "i9"]
    from encdec.errors import DataError

    with pytest.raises(DataError, match="input line 1: 'Nope' is neither"):
        task.parse_inputs(["Nope"])
    with pytest.raises(DataError, match=r"input line 2: 'Film Number 1' matches \d+ titles"):
        task.parse_inputs(["i1", "Film Number 1 | i2"])
    with pytest.raises(DataError, match="no user 'zz'"):
        task.parse_inputs(["user:zz"])


class FixedDecoder:
    """A decoder whose first step returns given logits (for search tests)."""

    def __init__(self, logits):
        self.logits = logits

    def init_state(self, enc):
        return {}

    def step(self, tokens, state):
        return self.logits, state


def test_top_k_ranking_bans_specials_and_optionally_the_history():
    logits = torch.tensor([[9.0, 8.0, 7.0, 1.0, 5.0, 3.0, 4.0], [0.0, 0.0, 0.0, 6.0, 5.0, 4.0, 3.0]])
    enc = EncoderOutput(memory=torch.zeros(2, 2, 1), memory_mask=torch.tensor([[True, True], [True, False]]),
                        src_ids=torch.tensor([[4, 6], [3, 0]]))
    hyps = TopKRanking(k=3).search(FixedDecoder(logits), enc, BOS, EOS, PAD)
    assert hyps.tokens.tolist() == [[[4, 6, 5]], [[3, 4, 5]]]
    assert hyps.scores[0, 0] == pytest.approx(float(F.log_softmax(logits[0], -1)[4]))
    excl = TopKRanking(k=None, exclude_source=True).search(FixedDecoder(logits), enc, BOS, EOS, PAD)
    # full ranking: banned history items only pad the end of the list
    assert excl.tokens.tolist() == [[[5, 3, PAD, PAD]], [[4, 5, 6, PAD]]]


def test_sampled_softmax_and_bpr_losses_match_hand_computation():
    hidden = torch.tensor([[1.0, 0.0], [0.5, -1.0]])
    weight = torch.tensor([[0.0, 0.0], [2.0, 1.0], [1.0, 3.0], [-1.0, 1.0]])
    targets = torch.tensor([1, 3])
    negatives = torch.tensor([2, 3])
    got = sampled_softmax_loss(hidden, weight, targets, negatives)
    # row 0: scores target 2, negatives 1 and -1 -> -log(e^2 / (e^2 + e^1 + e^-1))
    row0 = -math.log(math.exp(2) / (math.exp(2) + math.exp(1) + math.exp(-1)))
    # row 1: target 3 scores -1.5; negative 2 scores -2.5; negative 3 is an accidental hit
    row1 = -math.log(math.exp(-1.5) / (math.exp(-1.5) + math.exp(-2.5)))
    assert got.tolist() == pytest.approx([row0, row1])

    pairs = torch.tensor([[2, 1], [2, 0]])  # row 0's second negative is its own target: skipped
    sig = lambda x: 1 / (1 + math.exp(-x))  # noqa: E731
    expected = (-math.log(sig(2 - 1)) - math.log(sig(-1.5 + 2.5)) - math.log(sig(-1.5 - 0))) / 3
    assert float(bpr_loss(hidden, weight, targets, pairs)) == pytest.approx(expected)


def tiny_model(vocab, encoder="sasrec", dropout=0.0):
    enc = (SASRecEncoder(vocab, 32, 1, 2, 64, dropout, dropout, max_len=8) if encoder == "sasrec"
           else GRU4RecEncoder(vocab, 32, 32, 1, dropout))
    return EncoderDecoder(enc, NextItemDecoder(vocab, 32, bos_id=BOS), BOS, EOS, PAD, share_embeddings=True)


def test_decoder_is_tied_and_its_steps_match_teacher_forcing(task):
    torch.manual_seed(0)
    model = tiny_model(task.vocab_size).eval()
    assert model.encoder.embed.weight is model.decoder.output_weight
    batch = task.collate(list(task.examples("val"))[:4])
    tgt_in = torch.cat([batch.tgt_in, torch.tensor([[5], [6], [7], [8]])], dim=1)  # a 2-item continuation
    enc = model.encode(batch.src, batch.src_mask)
    forced = model.decoder(tgt_in, enc)
    state = model.decoder.init_state(enc)
    for t in range(tgt_in.size(1)):
        logits, state = model.decoder.step(tgt_in[:, t], state)
        assert (logits[:, [PAD, BOS]] == float("-inf")).all(), "decoding never proposes pad or BOS"
        torch.testing.assert_close(logits[:, 2:], forced[:, t, 2:])
    torch.testing.assert_close(forced[:, 0], enc.summary @ model.decoder.output_weight.T)


def test_training_windows_give_exactly_the_every_prefix_loss(task):
    """A window's positions (one source row each, the window up to there) train exactly the
    every-prefix loss."""
    torch.manual_seed(0)
    model = tiny_model(task.vocab_size).eval()
    prefixes = RecommendationTask(task.data, max_history=8)
    windows = RecommendationTask(task.data, max_history=8, train_stride=1)
    totals = []
    for adapter in (prefixes, windows):
        adapter.setup(task_dir(task), "eval")
        batch = adapter.collate(list(adapter.examples("train")))
        with torch.no_grad():
            nll, _ = token_nll(model(batch.src, batch.src_mask, batch.tgt_in), batch.tgt_out, PAD)
        items = (batch.tgt_out > EOS)
        totals.append((float(nll[items].sum()), int(items.sum())))
    assert totals[0][1] == totals[1][1] and totals[0][0] == pytest.approx(totals[1][0], rel=1e-5)
    assert len(windows.examples("train")) < len(prefixes.examples("train"))


def hit_rate_at_10(model, adapter) -> float:
    batch = adapter.collate(list(adapter.examples("test")))
    hyps = TopKRanking(k=10)(model.eval(), batch.src, batch.src_mask)
    return adapter.metrics(adapter.decode(hyps.best()), adapter.references(batch), "test").values["hr@10"]


@pytest.mark.parametrize("encoder,objective", [("sasrec", MLE()), ("gru4rec", MLE()), ("sasrec", SampledSoftmax(8))])
def test_models_learn_a_markov_chain_of_items(task, encoder, objective):
    torch.manual_seed(0)
    model = tiny_model(task.vocab_size, encoder, dropout=0.1)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    batch = task.collate(list(task.examples("train")))
    untrained = hit_rate_at_10(model, task)
    for _ in range(80):
        model.train()
        loss, _ = objective.loss(model, batch)
        opt.zero_grad()
        loss.backward()
        opt.step()
    hr = hit_rate_at_10(model, task)
    # users follow the chain 90% of the time: the successor is the answer for ~90% of them
    assert hr >= 0.8 > untrained + 0.3, (untrained, hr)


def test_bpr_trains_and_beam_search_returns_distinct_next_items(task):
    torch.manual_seed(0)
    model = tiny_model(task.vocab_size)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    batch = task.collate(list(task.examples("train")))
    first = None
    for _ in range(30):
        loss, _ = BPR(num_negatives=4).loss(model, batch)
        first = first if first is not None else float(loss.detach())
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert float(loss.detach()) < 0.5 * first
    test = task.collate(list(task.examples("test"))[:3])
    nbest = BeamSearch(beam_size=4, num_return=4, max_len=2, min_len=1)(model.eval(), test.src, test.src_mask)
    assert nbest.tokens.shape[:2] == (3, 4)
    firsts = nbest.tokens[:, :, 0]
    assert all(len(set(row.tolist())) == 4 for row in firsts) and (firsts > EOS).all()
    assert (nbest.scores[:, :-1] >= nbest.scores[:, 1:]).all()
    # the best beam's item is the full ranking's first item
    top = TopKRanking(k=1)(model, test.src, test.src_mask).tokens[:, 0, 0]
    assert torch.equal(firsts[:, 0], top)
    # a multi-step sequence of future items
    seq = BeamSearch(beam_size=3, max_len=4, min_len=3)(model, test.src, test.src_mask)
    assert (seq.tokens[:, 0, :3] > EOS).all() and (seq.tokens[:, 0, 3] == EOS).all()
    with pytest.raises(ConfigError, match="decoder=next_item"):
        from encdec.modules.transformer import TransformerDecoder
        other = EncoderDecoder(model.encoder, TransformerDecoder(task.vocab_size, 32, 1, 2, 64), BOS, EOS, PAD)
        SampledSoftmax(4).loss(other, test)


def test_multi_step_targets_collate_with_one_eos_after_the_real_items(task):
    for stride in (None, 3):
        adapter = RecommendationTask(task.data, max_history=4, target_len=2, train_stride=stride)
        adapter.setup(task_dir(task), "eval")
        batch = adapter.collate(list(adapter.examples("train"))[:6])
        real = batch.tgt_out > EOS
        lengths = real.sum(1)
        assert lengths.max() == 2 and (batch.tgt_in[:, 0] == BOS).all()
        eos_at = torch.where(lengths > 0, (batch.tgt_out == EOS).float().argmax(1), -1)
        assert torch.equal(eos_at[lengths > 0], lengths[lengths > 0])  # EOS right after the items
        assert torch.equal(batch.tgt_in[:, 1:][real[:, :-1]], batch.tgt_out[real])  # teacher forcing shift
        assert batch.tgt_in.size(0) == batch.src.size(0), "one target row per source row"
        if stride:  # a window batch holds one source row per trained position
            assert len(batch) > 6
    model = tiny_model(task.vocab_size)
    with pytest.raises(ValueError, match="give one row per source"):
        model(batch.src, batch.src_mask, batch.tgt_in[:-1])
