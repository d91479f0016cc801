"""When beam search stops a sentence: exact tests with hand-set probabilities.

`stopping=early` is fairseq's rule (a sentence stops once beam_size hypotheses have ended);
`exact` (the default) keeps it open while a live beam could still beat the worst finalised
hypothesis; `heuristic` is Hugging Face's estimate of that. With EOS in the top k at every
step (label-smoothed models), the early rule fills the pool with cut-off hypotheses before
the right one ends.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from test_decoding import APPROX, BOS, EOS, PAD, A, B, C, TableDecoder, fake_enc, lp, rows, search, strip
from toy import MAX_LEN, NUM_SPECIALS, VOCAB, make_batch

from encdec.decoding import BeamSearch, Greedy
from encdec.errors import ConfigError
from encdec.types import EncoderOutput

# greedy path A B C EOS (each .9); EOS .06 everywhere else, so it sits in every top 2
EOS_IN_TOP_K = {
    (): {A: 0.9, EOS: 0.06, B: 0.04},
    (A,): {B: 0.9, EOS: 0.06, C: 0.04},
    (A, B): {C: 0.9, EOS: 0.06, A: 0.04},
    (A, B, C): {EOS: 0.9, A: 0.06, B: 0.04},
}
RIGHT = [A, B, C, EOS]


@pytest.mark.parametrize("alpha", [0.0, 1.0])
def test_early_stop_loses_the_best_hypothesis_and_exact_keeps_it(alpha):
    # early, beam 2: [EOS] ends at step 1, [A, EOS] at step 2: two hypotheses, stop
    early = search(BeamSearch(beam_size=2, length_penalty=alpha, max_len=10, stopping="early"), EOS_IN_TOP_K)
    assert strip(rows(early.tokens[0, 0])) == ([EOS] if alpha == 0 else [A, EOS])
    assert RIGHT not in [strip(h) for h in rows(early.tokens[0])]
    # exact: the live [A, B] (.81) can still beat both, so the search goes on and finds it
    for stopping in ("exact", "heuristic"):
        hyps = search(BeamSearch(beam_size=2, length_penalty=alpha, max_len=10, stopping=stopping), EOS_IN_TOP_K)
        assert strip(rows(hyps.tokens[0, 0])) == RIGHT
        assert float(hyps.scores[0, 0]) == pytest.approx(lp(0.9, 0.9, 0.9, 0.9) / 4**alpha, **APPROX)


@pytest.mark.parametrize("beam", [2, 3, 4, 5])
@pytest.mark.parametrize("alpha", [0.0, 1.0])
def test_n_best_of_a_full_beam_contains_the_greedy_output(beam, alpha):
    greedy = strip(rows(search(Greedy(max_len=10), EOS_IN_TOP_K).tokens[0, 0]))
    assert greedy == RIGHT
    hyps = search(BeamSearch(beam_size=beam, num_return=beam, length_penalty=alpha, max_len=10), EOS_IN_TOP_K)
    returned = [strip(h) for h in rows(hyps.tokens[0])]
    assert returned[0] == greedy
    early = search(
        BeamSearch(beam_size=beam, num_return=beam, length_penalty=alpha, max_len=10, stopping="early"),
        EOS_IN_TOP_K,
    )
    if beam < 4:  # early stop: `beam` cut-off hypotheses end before step 4
        assert greedy not in [strip(h) for h in rows(early.tokens[0])]


# alpha 1, beam 1: [EOS] (.45) ranks first and ends with log(.45) = -0.80; the live [A] has
# log(.4) = -0.92 after one token. Heuristic: -0.92 / 1 < -0.80, stop. Exact: [A] may still end
# at length 10 with -0.92 / 10 > -0.80, go on; [A, B, EOS] indeed scores about -0.92 / 3.
TINY = 1e-6
LONG_TAIL = {
    (): {EOS: 0.45, A: 0.4, C: 0.15},
    (A,): {B: 1 - TINY, EOS: TINY},
    (A, B): {EOS: 1 - TINY, C: TINY},
}


def test_exact_bound_finds_a_longer_hypothesis_the_heuristic_gives_up_on():
    heuristic = search(BeamSearch(beam_size=1, length_penalty=1.0, max_len=10, stopping="heuristic"), LONG_TAIL)
    assert strip(rows(heuristic.tokens[0, 0])) == [EOS]
    exact = search(BeamSearch(beam_size=1, length_penalty=1.0, max_len=10, stopping="exact"), LONG_TAIL)
    assert strip(rows(exact.tokens[0, 0])) == [A, B, EOS]
    assert float(exact.scores[0, 0]) == pytest.approx(lp(0.4, 1 - TINY, 1 - TINY) / 3, **APPROX)
    assert float(exact.scores[0, 0]) > float(heuristic.scores[0, 0])


@pytest.mark.parametrize("stopping, steps", [("early", 2), ("exact", 4)])
def test_raw_scores_stop_as_soon_as_no_live_beam_can_win(stopping, steps):
    """length_penalty 0, beam 2. After step 2 the pool holds [EOS] (-2.81) and [A, EOS]
    (-2.92): early stops. Exact goes on while the live [A, B], [A, B, C] may still win; step 4
    ends [A, B, C, EOS] (-0.42), and the best live beam, [A, B, C, A] (-3.13), is below the
    pool's worst ([EOS], -2.81): no fifth step."""
    decoder = TableDecoder(EOS_IN_TOP_K)
    BeamSearch(beam_size=2, length_penalty=0.0, max_len=50, stopping=stopping).search(decoder, fake_enc(), BOS, EOS, PAD)
    assert decoder.calls == steps


def test_stopping_is_validated():
    with pytest.raises(ConfigError, match="decoding.stopping"):
        BeamSearch(stopping="sometimes")


# --------------------------------------------------------------------------------------------
# A toy task: a deterministic copy model whose greedy path is right but whose EOS is in the
# top k at every step, as with label smoothing
# --------------------------------------------------------------------------------------------
class CopyOracle:
    """Next token = the source symbol at this position (EOS after the last) with probability
    `p_right`; EOS gets `p_eos` elsewhere; the rest is spread over the other symbols. The
    right sequence is the most likely one (raw or length-normalised)."""

    def __init__(self, p_right: float = 0.85, p_eos: float = 0.1):
        self.p_right, self.p_eos = p_right, p_eos

    def init_state(self, enc: EncoderOutput) -> dict:
        return {"src": enc.src_ids, "length": enc.memory_mask.sum(1), "pos": 0}

    def step(self, tokens, state):
        src, length, pos = state["src"], state["length"], state["pos"]
        n = src.size(0)
        at = torch.full((n, 1), min(pos, src.size(1) - 1))
        right = torch.where(pos < length, src.gather(1, at)[:, 0], torch.full_like(length, EOS))
        others = VOCAB - NUM_SPECIALS - 1
        probs = torch.zeros(n, VOCAB)
        ends = right == EOS
        rest = torch.where(ends, 1 - self.p_right, 1 - self.p_right - self.p_eos)
        probs[:, NUM_SPECIALS:] = (rest / torch.where(ends, others + 1, others))[:, None]
        probs[:, EOS] = torch.where(ends, self.p_right, self.p_eos)
        probs.scatter_(1, right[:, None], self.p_right)
        return probs.log(), {**state, "pos": pos + 1}

    @staticmethod
    def reorder(state, index):
        return {**state, "src": state["src"].index_select(0, index), "length": state["length"].index_select(0, index)}


def _exact_match(strategy, batch) -> float:
    enc = EncoderOutput(memory=torch.zeros(len(batch), batch.src.size(1), 1), memory_mask=batch.src_mask, src_ids=batch.src)
    best = strategy.search(CopyOracle(), enc, BOS, EOS, PAD).best()
    expected = batch.tgt_out
    width = max(best.size(1), expected.size(1))
    best = F.pad(best, (0, width - best.size(1)), value=PAD)
    expected = F.pad(expected, (0, width - expected.size(1)), value=PAD)
    return (best == expected).all(dim=1).float().mean().item()


@pytest.mark.parametrize("alpha", [0.0, 1.0])
def test_beam_never_loses_to_greedy_on_a_toy_task(alpha):
    batch = make_batch("copy", 300, torch.Generator().manual_seed(0))
    greedy = _exact_match(Greedy(max_len=MAX_LEN + 2), batch)
    assert greedy == 1.0
    for beam in range(1, 6):
        exact = _exact_match(BeamSearch(beam_size=beam, length_penalty=alpha, max_len=MAX_LEN + 2), batch)
        assert exact >= greedy, (beam, exact)
    # the early stop is what the test guards against: it loses sequences here
    early = _exact_match(BeamSearch(beam_size=2, length_penalty=alpha, max_len=MAX_LEN + 2, stopping="early"), batch)
    assert early < greedy
