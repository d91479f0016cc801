"""Exact tests of decoding: search strategies against hand-set next-token distributions, the
logits processors on tiny tensors, and the decoders' incremental `step` / `reorder` contract.

The fake decoder looks the next-token probabilities up by the prefix generated so far, so
every expected token sequence and score below is worked out by hand (fairseq-style).
"""

from __future__ import annotations

import functools
import math

import pytest
import torch

from encdec.decoding import BeamSearch, Greedy, Sampling
from encdec.decoding import processors as P
from encdec.model import EncoderDecoder
from encdec.modules.attention import AdditiveAttention, DotAttention, GeneralAttention
from encdec.modules.rnn import RNNDecoder, RNNEncoder
from encdec.modules.transformer import TransformerDecoder, TransformerEncoder
from encdec.types import EncoderOutput

PAD, BOS, EOS, A, B, C = 0, 1, 2, 3, 4, 5
V = 6
NEG_INF = float("-inf")


# --------------------------------------------------------------------------------------------
# A decoder with hand-set next-token probabilities
# --------------------------------------------------------------------------------------------
class TableDecoder:
    """Next-token distribution = table[source](prefix), the prefix excluding BOS.

    A table is a dict {prefix tuple: {token: prob}} (unknown prefixes end with EOS) or a
    callable prefix -> {token: prob}. Row b of the encoder output reads table
    `enc.memory[b, 0, 0]`, so one batch can mix sources with different tables.
    """

    def __init__(self, *tables):
        self.tables = tables
        self.calls = 0

    def dist(self, source: int, prefix: tuple) -> dict:
        table = self.tables[source]
        dist = table(prefix) if callable(table) else table.get(prefix, {EOS: 1.0})
        assert math.isclose(sum(dist.values()), 1.0), dist
        return dist

    def init_state(self, enc: EncoderOutput) -> dict:
        src = enc.memory[:, 0, 0].long()
        return {"src": src, "hist": torch.zeros(len(src), 0, dtype=torch.long)}

    def step(self, tokens, state):
        self.calls += 1
        hist = torch.cat([state["hist"], tokens[:, None]], dim=1)
        rows = []
        for source, h in zip(state["src"].tolist(), hist.tolist()):
            assert h[0] == BOS
            probs = torch.zeros(V, dtype=torch.float64)
            for tok, p in self.dist(source, tuple(h[1:])).items():
                probs[tok] = p
            rows.append(probs.log())
        return torch.stack(rows).float(), {"src": state["src"], "hist": hist}

    @staticmethod
    def reorder(state, index):
        return {k: v.index_select(0, index) for k, v in state.items()}


def fake_enc(sources=(0,), lengths=None) -> EncoderOutput:
    """Encoder output whose row b reads table sources[b]; memory_mask has `lengths` True."""
    lengths = list(lengths or [1] * len(sources))
    memory = torch.zeros(len(sources), max(lengths), 1)
    memory[:, 0, 0] = torch.tensor(sources, dtype=torch.float)
    mask = torch.arange(max(lengths))[None, :] < torch.tensor(lengths)[:, None]
    return EncoderOutput(memory=memory, memory_mask=mask)


def lp(*probs) -> float:
    return sum(math.log(p) for p in probs)


def search(strategy, *tables, sources=None, lengths=None):
    sources = list(range(len(tables))) if sources is None else sources
    return strategy.search(TableDecoder(*tables), fake_enc(sources, lengths), BOS, EOS, PAD)


def rows(t: torch.Tensor) -> list:
    return t.tolist()


def strip(seq: list) -> list:
    """Drop trailing padding."""
    while seq and seq[-1] == PAD:
        seq = seq[:-1]
    return seq


APPROX = dict(rel=1e-5, abs=1e-5)

# greedy takes A (.5) then A (.4): total .2; beam finds B (.4), C (.9): total .36
GREEDY_TRAP = {
    (): {A: 0.5, B: 0.4, EOS: 0.1},
    (A,): {A: 0.4, B: 0.3, C: 0.3},
    (B,): {C: 0.9, EOS: 0.1},
}

# hypotheses [EOS] (.4), [A, EOS] (.06), [A, B, EOS] (.27), [A, B, C, EOS] (.27)
LENGTHS = {
    (): {EOS: 0.4, A: 0.6},
    (A,): {B: 0.9, EOS: 0.1},
    (A, B): {EOS: 0.5, C: 0.5},
}


def never_ends(prefix):
    return {A: 0.5, B: 0.3, EOS: 0.2}


def alternating(prefix):
    """Prefers A after B (or at the start), B after A, A after C."""
    last = prefix[-1] if prefix else None
    if last == A:
        return {B: 0.6, C: 0.2, A: 0.1, EOS: 0.1}
    if last == C:
        return {A: 0.5, B: 0.3, C: 0.1, EOS: 0.1}
    return {A: 0.6, C: 0.2, B: 0.1, EOS: 0.1}


# --------------------------------------------------------------------------------------------
# 1. greedy
# --------------------------------------------------------------------------------------------
def test_greedy_follows_argmax_and_scores_sum_of_logprobs_including_eos():
    first = {(): {A: 0.6, B: 0.4}, (A,): {C: 0.7, EOS: 0.3}, (A, C): {EOS: 0.9, B: 0.1}}
    second = {(): {EOS: 0.8, A: 0.2}}
    hyps = search(Greedy(max_len=10), first, second)
    assert hyps.tokens.shape == (2, 1, 3)
    assert rows(hyps.tokens[:, 0]) == [[A, C, EOS], [EOS, PAD, PAD]]
    assert rows(hyps.best()) == [[A, C, EOS], [EOS, PAD, PAD]]
    assert hyps.scores[:, 0].tolist() == pytest.approx([lp(0.6, 0.7, 0.9), lp(0.8)], **APPROX)


def test_greedy_stops_stepping_once_every_row_has_ended():
    decoder = TableDecoder({(): {A: 0.6, B: 0.4}, (A,): {EOS: 0.9, B: 0.1}})
    Greedy(max_len=50).search(decoder, fake_enc(), BOS, EOS, PAD)
    assert decoder.calls == 2


# --------------------------------------------------------------------------------------------
# 2. beam finds what greedy misses; 7. num_return
# --------------------------------------------------------------------------------------------
def test_greedy_falls_into_the_trap():
    hyps = search(Greedy(max_len=10), GREEDY_TRAP)
    assert rows(hyps.tokens[0, 0]) == [A, A, EOS]
    assert float(hyps.scores[0, 0]) == pytest.approx(lp(0.5, 0.4, 1.0), **APPROX)


@pytest.mark.parametrize("alpha", [0.0, 1.0])
def test_beam_finds_the_better_hypothesis(alpha):
    hyps = search(BeamSearch(beam_size=2, length_penalty=alpha, num_return=2, max_len=10), GREEDY_TRAP)
    assert rows(hyps.tokens[0]) == [[B, C, EOS], [A, A, EOS]]
    expected = [lp(0.4, 0.9, 1.0) / 3**alpha, lp(0.5, 0.4, 1.0) / 3**alpha]
    assert hyps.scores[0].tolist() == pytest.approx(expected, **APPROX)


@pytest.mark.parametrize(
    "stopping, best, scores",
    [
        # fairseq's early stop: three hypotheses are out after step 3, so [A, B, C, EOS] never ends
        ("early", [[A, B, EOS], [EOS, PAD, PAD], [A, EOS, PAD]], [lp(0.6, 0.9, 0.5) / 3, lp(0.4), lp(0.6, 0.1) / 2]),
        # the live [A, B, C] could still beat [A, EOS]: it does (.27 over 4 tokens)
        (
            "exact",
            [[A, B, C, EOS], [A, B, EOS, PAD], [EOS, PAD, PAD, PAD]],
            [lp(0.6, 0.9, 0.5, 1.0) / 4, lp(0.6, 0.9, 0.5) / 3, lp(0.4)],
        ),
    ],
)
def test_beam_returns_the_n_best_in_descending_order(stopping, best, scores):
    hyps = search(BeamSearch(beam_size=3, length_penalty=1.0, num_return=3, max_len=10, stopping=stopping), LENGTHS)
    assert rows(hyps.tokens[0]) == best
    assert hyps.scores[0].tolist() == pytest.approx(scores, **APPROX)
    assert hyps.scores[0].tolist() == sorted(hyps.scores[0].tolist(), reverse=True)
    # num_return=1 is the first of those
    one = search(BeamSearch(beam_size=3, length_penalty=1.0, num_return=1, max_len=10, stopping=stopping), LENGTHS)
    assert one.tokens.shape == (1, 1, len(best[0]))
    assert rows(one.tokens[0, 0]) == best[0]


def test_beam_batch_of_different_tables():
    hyps = search(BeamSearch(beam_size=2, length_penalty=0.0, max_len=10), GREEDY_TRAP, {(): {EOS: 1.0}})
    assert rows(hyps.tokens[:, 0]) == [[B, C, EOS], [EOS, PAD, PAD]]
    assert hyps.scores[:, 0].tolist() == pytest.approx([lp(0.4, 0.9), 0.0], **APPROX)


# --------------------------------------------------------------------------------------------
# 3. beam_size=1 is greedy
# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("table", [GREEDY_TRAP, LENGTHS, alternating])
def test_beam_of_one_is_greedy_on_tables(table):
    greedy = search(Greedy(max_len=7), table)
    beam = search(BeamSearch(beam_size=1, length_penalty=0.0, max_len=7), table)
    assert rows(beam.tokens) == rows(greedy.tokens)
    assert beam.scores.flatten().tolist() == pytest.approx(greedy.scores.flatten().tolist(), **APPROX)


# --------------------------------------------------------------------------------------------
# 4. length penalty
# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "alpha, stopping, best, score",
    [
        (0.0, "early", [EOS], lp(0.4)),  # raw: .4 beats .27 and .06
        (1.0, "early", [A, B, EOS], lp(0.6, 0.9, 0.5) / 3),  # -0.436 beats -0.916 and -1.407
        (2.0, "early", [A, B, EOS], lp(0.6, 0.9, 0.5) / 9),
        (0.0, "exact", [EOS], lp(0.4)),  # raw: .4 beats .27 (x2) and .06
        (1.0, "exact", [A, B, C, EOS], lp(0.6, 0.9, 0.5) / 4),  # -0.327 beats -0.436
        (2.0, "exact", [A, B, C, EOS], lp(0.6, 0.9, 0.5) / 16),
    ],
)
def test_length_penalty_normalises_by_length_counting_eos(alpha, stopping, best, score):
    hyps = search(BeamSearch(beam_size=3, length_penalty=alpha, max_len=10, stopping=stopping), LENGTHS)
    assert strip(rows(hyps.tokens[0, 0])) == best
    assert float(hyps.scores[0, 0]) == pytest.approx(score, **APPROX)


# --------------------------------------------------------------------------------------------
# 5. min_len / max_len
# --------------------------------------------------------------------------------------------
EARLY_EOS = {
    (): {EOS: 0.6, A: 0.4},
    (A,): {EOS: 0.7, B: 0.3},
    (A, B): {EOS: 0.8, C: 0.2},
}


def test_min_len_bans_eos_greedy():
    assert rows(search(Greedy(max_len=10), EARLY_EOS).tokens[0, 0]) == [EOS]
    hyps = search(Greedy(max_len=10, min_len=2), EARLY_EOS)
    assert rows(hyps.tokens[0, 0]) == [A, B, EOS]
    assert float(hyps.scores[0, 0]) == pytest.approx(lp(0.4, 0.3, 0.8), **APPROX)


def test_min_len_bans_eos_beam():
    hyps = search(BeamSearch(beam_size=2, length_penalty=0.0, min_len=2, num_return=2, max_len=10), EARLY_EOS)
    assert rows(hyps.tokens[0]) == [[A, B, EOS, PAD], [A, B, C, EOS]]
    assert hyps.scores[0].tolist() == pytest.approx([lp(0.4, 0.3, 0.8), lp(0.4, 0.3, 0.2)], **APPROX)


def test_pad_is_never_generated():
    table = {(): {PAD: 0.5, A: 0.3, EOS: 0.2}, (A,): {PAD: 0.6, EOS: 0.4}}
    greedy = search(Greedy(max_len=5), table)
    assert rows(greedy.tokens[0, 0]) == [A, EOS]
    assert float(greedy.scores[0, 0]) == pytest.approx(lp(0.3, 0.4), **APPROX)
    beam = search(BeamSearch(beam_size=2, num_return=2, length_penalty=0.0, max_len=5), table)
    assert rows(beam.tokens[0]) == [[EOS, PAD], [A, EOS]]
    assert beam.scores[0].tolist() == pytest.approx([lp(0.2), lp(0.3, 0.4)], **APPROX)
    torch.manual_seed(0)
    sampled = search(Sampling(num_return=20, max_len=5), table)
    assert PAD not in [t for h in rows(sampled.tokens[0]) for t in strip(h)]


def test_min_len_must_be_below_max_len():
    with pytest.raises(ValueError):
        Greedy(max_len=3, min_len=3)


@pytest.mark.parametrize("max_len", [1, 2, 4])
def test_max_len_forces_eos_greedy(max_len):
    hyps = search(Greedy(max_len=max_len), never_ends)
    assert rows(hyps.tokens[0, 0]) == [A] * (max_len - 1) + [EOS]
    assert float(hyps.scores[0, 0]) == pytest.approx(lp(*[0.5] * (max_len - 1), 0.2), **APPROX)


def test_max_len_forces_eos_beam():
    hyps = search(BeamSearch(beam_size=2, length_penalty=0.0, max_len=3), never_ends)
    assert hyps.tokens.shape[-1] == 3
    assert rows(hyps.tokens[0, 0]) == [A, A, EOS]
    assert float(hyps.scores[0, 0]) == pytest.approx(lp(0.5, 0.5, 0.2), **APPROX)


@pytest.mark.parametrize(
    "strategy",
    [
        Greedy(max_len=50, max_len_a=1.0, max_len_b=1),
        BeamSearch(beam_size=2, length_penalty=0.0, max_len=50, max_len_a=1.0, max_len_b=1),
        Sampling(top_k=1, max_len=50, max_len_a=1.0, max_len_b=1),
    ],
)
def test_max_len_a_b_is_per_source_and_batch_invariant(strategy):
    # limits: a * src_len + b = 2 and 4 tokens
    batched = search(strategy, never_ends, never_ends, lengths=[1, 3])
    assert [strip(r) for r in rows(batched.tokens[:, 0])] == [[A, EOS], [A, A, A, EOS]]
    alone = search(strategy, never_ends, lengths=[1])
    assert rows(alone.tokens[0, 0]) == [A, EOS]
    assert float(alone.scores[0, 0]) == pytest.approx(float(batched.scores[0, 0]), **APPROX)
    # max_len still caps, and min_len + 1 is the floor
    capped = Greedy(max_len=3, max_len_a=1.0, max_len_b=10, min_len=1)
    assert rows(search(capped, never_ends, lengths=[5]).tokens[0, 0]) == [A, A, EOS]
    floor = Greedy(max_len=9, max_len_a=0.1, max_len_b=0, min_len=2)
    assert rows(search(floor, never_ends, lengths=[5]).tokens[0, 0]) == [A, A, EOS]


# --------------------------------------------------------------------------------------------
# 6. no_repeat_ngram
# --------------------------------------------------------------------------------------------
def test_no_repeat_ngram_greedy_exact():
    plain = search(Greedy(max_len=6), alternating)
    assert rows(plain.tokens[0, 0]) == [A, B, A, B, A, EOS]

    bigram = search(Greedy(max_len=6, no_repeat_ngram_size=2), alternating)
    # after A, B would repeat (A, B): C instead; after C, A is new
    assert rows(bigram.tokens[0, 0]) == [A, B, A, C, A, EOS]
    assert float(bigram.scores[0, 0]) == pytest.approx(lp(0.6, 0.6, 0.6, 0.2, 0.5, 0.1), **APPROX)

    unigram = search(Greedy(max_len=6, no_repeat_ngram_size=1), alternating)
    assert rows(unigram.tokens[0, 0]) == [A, B, C, EOS]
    assert float(unigram.scores[0, 0]) == pytest.approx(lp(0.6, 0.6, 0.2, 0.1), **APPROX)


def _bigrams(seq):
    return list(zip(seq, seq[1:]))


def test_no_repeat_ngram_beam_never_repeats_a_bigram():
    plain = search(BeamSearch(beam_size=3, num_return=3, max_len=8), alternating)
    assert any(len(set(_bigrams(strip(h)))) < len(_bigrams(strip(h))) for h in rows(plain.tokens[0]))
    hyps = search(BeamSearch(beam_size=3, num_return=3, max_len=8, no_repeat_ngram_size=2), alternating)
    for h in rows(hyps.tokens[0]):
        grams = _bigrams(strip(h))
        assert len(set(grams)) == len(grams), h


def _apply(proc, logprobs, tokens):
    return proc(torch.tensor(logprobs, dtype=torch.float), torch.tensor(tokens))


def _banned(out):
    return [[i for i, x in enumerate(row) if x == NEG_INF] for row in out.tolist()]


def test_processor_no_repeat_ngram():
    zeros = [[0.0] * V, [0.0] * V]
    # bigrams row 0: (3,4) (4,3) (3,5) (5,3), last 3 -> ban 4, 5; row 1: ... (4,3) ..., last 4 -> ban 3
    hist = [[BOS, 3, 4, 3, 5, 3], [BOS, 5, 4, 3, 3, 4]]
    assert _banned(_apply(P.no_repeat_ngram(2), zeros, hist)) == [[4, 5], [3]]
    # trigrams: last two (3, 4) were followed by 5
    assert _banned(_apply(P.no_repeat_ngram(3), zeros[:1], [[BOS, 3, 4, 5, 3, 4]])) == [[5]]
    assert _banned(_apply(P.no_repeat_ngram(3), zeros[:1], [[BOS, 3, 4, 3, 4, 5]])) == [[]]
    # unigrams: everything already generated
    assert _banned(_apply(P.no_repeat_ngram(1), zeros, [[BOS, 3, 5], [BOS, 4, 4]])) == [[3, 5], [4]]
    # nothing generated yet, or too short to hold an n-gram
    assert _banned(_apply(P.no_repeat_ngram(1), zeros[:1], [[BOS]])) == [[]]
    assert _banned(_apply(P.no_repeat_ngram(2), zeros[:1], [[BOS, 3]])) == [[]]
    # values not banned are untouched
    out = _apply(P.no_repeat_ngram(2), [[-1.0, -2.0, -3.0, -4.0, -5.0, -6.0]], [[BOS, 3, 4, 3]])
    assert out.tolist() == [[-1.0, -2.0, -3.0, -4.0, NEG_INF, -6.0]]


PROBS = [0.1, 0.2, 0.3, 0.4]
LOGPROBS = [[math.log(p) for p in PROBS]]


def test_processor_top_k():
    hist = [[BOS]]
    assert _banned(_apply(P.top_k(2), LOGPROBS, hist)) == [[0, 1]]
    assert _banned(_apply(P.top_k(1), LOGPROBS, hist)) == [[0, 1, 2]]
    assert _banned(_apply(P.top_k(0), LOGPROBS, hist)) == [[]]
    assert _banned(_apply(P.top_k(4), LOGPROBS, hist)) == [[]]
    out = _apply(P.top_k(2), LOGPROBS, hist)[0, 2:]
    assert out.tolist() == pytest.approx([math.log(0.3), math.log(0.4)])


@pytest.mark.parametrize(
    "p, banned",
    [
        (0.35, [0, 1, 2]),  # .4 alone reaches .35
        (0.5, [0, 1]),  # .4 + .3
        (0.75, [0]),  # .4 + .3 + .2
        (0.95, []),
        (1.0, []),
        (0.0, [0, 1, 2]),  # the top token always survives
    ],
)
def test_processor_top_p(p, banned):
    assert _banned(_apply(P.top_p(p), LOGPROBS, [[BOS]])) == [banned]


def test_processor_top_p_per_row_and_unsorted():
    logprobs = [[math.log(p) for p in [0.4, 0.1, 0.3, 0.2]], [math.log(p) for p in [0.05, 0.05, 0.05, 0.85]]]
    assert _banned(_apply(P.top_p(0.6), logprobs, [[BOS], [BOS]])) == [[1, 3], [0, 1, 2]]


def test_processor_temperature():
    out = _apply(P.temperature(2.0), LOGPROBS, [[BOS]])[0]
    roots = [math.sqrt(p) for p in PROBS]
    assert out.tolist() == pytest.approx([math.log(r / sum(roots)) for r in roots], **APPROX)
    sharp = _apply(P.temperature(0.5), LOGPROBS, [[BOS]])[0]
    squares = [p * p for p in PROBS]
    assert sharp.tolist() == pytest.approx([math.log(s / sum(squares)) for s in squares], **APPROX)
    with pytest.raises(ValueError):
        P.temperature(0.0)


def test_processor_ban_eos_before():
    zeros = [[0.0] * V]
    assert _banned(_apply(P.ban_eos_before(2, EOS), zeros, [[BOS, A]])) == [[EOS]]
    assert _banned(_apply(P.ban_eos_before(2, EOS), zeros, [[BOS, A, B]])) == [[]]


# --------------------------------------------------------------------------------------------
# 10. sampling
# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("table", [GREEDY_TRAP, EARLY_EOS, alternating, never_ends])
def test_sampling_top_k_1_is_greedy_on_tables(table):
    greedy = search(Greedy(max_len=6), table)
    sampled = search(Sampling(top_k=1, max_len=6), table)
    assert rows(sampled.tokens) == rows(greedy.tokens)
    assert sampled.scores.flatten().tolist() == pytest.approx(greedy.scores.flatten().tolist(), **APPROX)


def test_sampling_only_draws_tokens_inside_top_p():
    dist = {A: 0.4, B: 0.3, C: 0.2, EOS: 0.1}
    strategy = Sampling(top_p=0.6, num_return=40, max_len=5)  # nucleus {A, B}
    torch.manual_seed(0)
    hyps = search(strategy, lambda prefix: dist)
    tokens = rows(hyps.tokens[0])
    assert all(h[:4] and set(h[:4]) <= {A, B} and h[4] == EOS for h in tokens)
    assert {t for h in tokens for t in h[:4]} == {A, B}
    # scores: log-probabilities of the draws, forced EOS at its model log-probability
    expected = [lp(*[dist[t] for t in h]) for h in tokens]
    assert hyps.scores[0].tolist() == pytest.approx(expected, **APPROX)
    assert hyps.scores[0].tolist() == sorted(hyps.scores[0].tolist(), reverse=True)


def test_sampling_top_k_with_forced_eos_outside_the_top_k():
    # EOS is never among the top 2, yet the last step must still end the hypothesis
    hyps = search(Sampling(top_k=2, num_return=8, max_len=3), never_ends)
    for h in rows(hyps.tokens[0]):
        assert set(h[:2]) <= {A, B} and h[2] == EOS
    assert torch.isfinite(hyps.scores).all()


def test_sampling_is_reproducible_with_a_seed():
    table = lambda prefix: {A: 0.3, B: 0.3, C: 0.2, EOS: 0.2}  # noqa: E731
    draws = []
    for seed in (0, 0, 1):
        torch.manual_seed(seed)
        draws.append(rows(search(Sampling(num_return=16, max_len=8), table).tokens))
    assert draws[0] == draws[1]
    assert draws[0] != draws[2]


def test_sampling_with_every_token_banned_ends_the_hypothesis():
    # unigram ban over a vocabulary of A, B only: the third step has nothing left but EOS,
    # which the table never proposes
    table = lambda prefix: {A: 0.6, B: 0.4}  # noqa: E731
    for strategy in (Greedy(max_len=6, no_repeat_ngram_size=1), Sampling(max_len=6, no_repeat_ngram_size=1)):
        hyps = search(strategy, table)
        h = strip(rows(hyps.tokens[0, 0]))
        assert sorted(h[:2]) == [A, B] and h[2:] == [EOS], h


# --------------------------------------------------------------------------------------------
# Real models: 8. batch invariance, 3. beam of one, 10. sampling top-k 1
# --------------------------------------------------------------------------------------------
VOCAB, D = 11, 16
SOURCES = [[5, 6, 7, 8, 9], [9, 3], [4, 4, 5, 10, 3, 7, 6], [8]]


def make_model(kind: str) -> EncoderDecoder:
    """A small random model whose outputs vary in length and content (untied Transformer
    output layer: a tied pre-norm one just repeats its input token; RNN weights scaled up for
    sharper distributions; the tied RNN output gives the pad token a logit of exactly 0)."""
    torch.manual_seed(0)
    if kind == "transformer":
        enc = TransformerEncoder(VOCAB, d_model=D, layers=2, heads=2, ffn=32, dropout=0.0, pad_id=PAD)
        dec = TransformerDecoder(
            VOCAB, d_model=D, layers=2, heads=2, ffn=32, dropout=0.0, pad_id=PAD, tie_embeddings=False
        )
        scale = 1.0
    else:
        enc = RNNEncoder(VOCAB, d_model=D, hidden_size=D, cell=kind, dropout=0.0, pad_id=PAD)
        dec = RNNDecoder(VOCAB, d_model=D, hidden_size=D, cell=kind, dropout=0.0, pad_id=PAD)
        scale = 3.0
    model = EncoderDecoder(enc, dec, bos_id=BOS, eos_id=EOS, pad_id=PAD).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.mul_(scale)
    return model


def batch(sources):
    width = max(len(s) for s in sources)
    src = torch.tensor([s + [PAD] * (width - len(s)) for s in sources])
    return src, src != PAD


MODEL_STRATEGIES = {
    "greedy": lambda: Greedy(max_len=9, max_len_a=1.0, max_len_b=3),
    "beam": lambda: BeamSearch(beam_size=3, num_return=2, max_len=9, max_len_a=1.0, max_len_b=3),
    "beam_no_repeat": lambda: BeamSearch(beam_size=3, max_len=9, no_repeat_ngram_size=2, min_len=2),
}


@pytest.mark.parametrize("kind", ["transformer", "gru", "lstm"])
def test_batch_invariance(kind):
    model = make_model(kind)
    for name, make in MODEL_STRATEGIES.items():
        strategy = make()
        together = strategy(model, *batch(SOURCES))
        for i, source in enumerate(SOURCES):
            alone = strategy(model, *batch([source]))
            for n in range(alone.tokens.size(1)):
                assert strip(rows(alone.tokens[0, n])) == strip(rows(together.tokens[i, n])), (name, i, n)
            assert alone.scores[0].tolist() == pytest.approx(together.scores[i].tolist(), abs=1e-4), (name, i)
        ends = [strip(h) for h in rows(together.tokens[:, 0])]
        assert all(h[-1] == EOS and EOS not in h[:-1] and PAD not in h for h in ends), (name, ends)


@pytest.mark.parametrize("kind", ["transformer", "gru"])
def test_beam_of_one_and_top_k_1_are_greedy_on_models(kind):
    model = make_model(kind)
    src, mask = batch(SOURCES)
    greedy = Greedy(max_len=10)(model, src, mask)
    beam = BeamSearch(beam_size=1, length_penalty=0.0, max_len=10)(model, src, mask)
    sampled = Sampling(top_k=1, max_len=10)(model, src, mask)
    for other in (beam, sampled):
        assert [strip(h) for h in rows(other.tokens[:, 0])] == [strip(h) for h in rows(greedy.tokens[:, 0])]
        assert other.scores.flatten().tolist() == pytest.approx(greedy.scores.flatten().tolist(), abs=1e-4)


def test_model_beam_scores_are_normalised_model_logprobs():
    """Rescore the returned hypotheses with teacher forcing: the exact sum / len**alpha."""
    model = make_model("transformer")
    src, mask = batch(SOURCES)
    alpha = 0.7
    hyps = BeamSearch(beam_size=3, num_return=3, length_penalty=alpha, max_len=8)(model, src, mask)
    with torch.no_grad():
        for n in range(3):
            tgt = hyps.tokens[:, n]
            tgt_in = torch.cat([torch.full((len(SOURCES), 1), BOS), tgt[:, :-1]], dim=1)
            logprobs = model(src, mask, tgt_in).log_softmax(-1).gather(2, tgt[:, :, None])[:, :, 0]
            keep = tgt != PAD
            length = keep.sum(1).float()
            expected = (logprobs * keep).sum(1) / length**alpha
            assert hyps.scores[:, n].tolist() == pytest.approx(expected.tolist(), abs=1e-4)
    assert (hyps.scores[:, :-1] >= hyps.scores[:, 1:]).all()


# --------------------------------------------------------------------------------------------
# 9. cached step == uncached forward; reorder
# --------------------------------------------------------------------------------------------
def make_decoder(kind: str):
    torch.manual_seed(0)
    if kind == "transformer":
        return TransformerDecoder(VOCAB, d_model=D, layers=2, heads=2, ffn=32, dropout=0.0, pad_id=PAD).eval()
    cell, attention = kind.split("-")
    attn = {
        "additive": functools.partial(AdditiveAttention),
        "dot": functools.partial(DotAttention),
        "general": GeneralAttention,
    }[attention]
    return RNNDecoder(VOCAB, d_model=D, hidden_size=D, cell=cell, attention=attn, dropout=0.0, pad_id=PAD).eval()


DECODERS = ["transformer", "gru-additive", "lstm-additive", "gru-dot", "lstm-dot", "gru-general", "lstm-general"]


def random_enc(batch_size=3, length=5, summary=False) -> EncoderOutput:
    torch.manual_seed(1)
    lengths = torch.tensor([5, 2, 4][:batch_size])
    return EncoderOutput(
        memory=torch.randn(batch_size, length, D),
        memory_mask=torch.arange(length)[None, :] < lengths[:, None],
        summary=torch.randn(batch_size, D) if summary else None,
    )


def run_steps(decoder, tokens, state):
    out = []
    for t in range(tokens.size(1)):
        logits, state = decoder.step(tokens[:, t], state)
        out.append(logits)
    return torch.stack(out, dim=1), state


@pytest.mark.parametrize("kind", DECODERS)
@torch.no_grad()
def test_step_matches_forward_and_reorder_permutes(kind):
    decoder = make_decoder(kind)
    enc = random_enc(summary=kind.startswith("lstm"))
    tgt_in = torch.tensor([[BOS, 3, 4, 5, 6, 7], [BOS, 8, 9, 9, 2, 0], [BOS, 10, 3, 6, 6, 4]])
    full = decoder(tgt_in, enc)
    stepped, _ = run_steps(decoder, tgt_in, decoder.init_state(enc))
    assert torch.allclose(stepped, full, atol=1e-5)
    # prefixes agree too (causality: later tokens do not leak into earlier logits)
    assert torch.allclose(decoder(tgt_in[:, :3], enc), full[:, :3], atol=1e-5)

    # reorder mid-decoding == decoding the permuted batch from the start
    index = torch.tensor([2, 0, 1, 1])
    _, state = run_steps(decoder, tgt_in[:, :3], decoder.init_state(enc))
    after, _ = run_steps(decoder, tgt_in[index, 3:], decoder.reorder(state, index))
    expected, _ = run_steps(decoder, tgt_in[index], decoder.init_state(enc.index_select(index)))
    assert torch.allclose(after, expected[:, 3:], atol=1e-5)
    assert torch.allclose(after, full[index, 3:], atol=1e-5)
    assert not torch.allclose(after[0], full[0, 3:], atol=1e-3)  # the permutation matters


def test_transformer_keeps_one_cross_attention_copy_per_source_when_rows_are_grouped():
    from encdec.modules.transformer import TransformerDecoder
    from encdec.types import EncoderOutput

    torch.manual_seed(0)
    dec = TransformerDecoder(vocab_size=20, d_model=16, layers=1, heads=2, ffn=32, dropout=0.0).eval()
    enc = EncoderOutput(memory=torch.randn(2, 5, 16), memory_mask=torch.tensor([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]]).bool())
    grouped, flat = enc.repeat_interleave(3), enc.repeat_interleave(3)
    flat.group_size = 1  # same rows, decoded as six independent sources
    g_state, f_state = dec.init_state(grouped), dec.init_state(flat)
    assert g_state["cross"][0][0].size(0) == 2 and f_state["cross"][0][0].size(0) == 6
    tokens = torch.tensor([1, 4, 5, 1, 6, 7])
    index = torch.tensor([1, 1, 0, 5, 3, 4])  # beams move only within their source
    with torch.no_grad():
        g_logits, g_state = dec.step(tokens, g_state)
        f_logits, f_state = dec.step(tokens, f_state)
        torch.testing.assert_close(g_logits, f_logits)
        g_state, f_state = dec.reorder(g_state, index), dec.reorder(f_state, index)
        torch.testing.assert_close(dec.step(tokens, g_state)[0], dec.step(tokens, f_state)[0])
    with pytest.raises(ValueError, match="another source's group"):
        dec.reorder(g_state, torch.tensor([3, 0, 1, 2, 4, 5]))
