"""Copy attention (pointer-generator): exact mixture math, what the searches and MLE see,
cached = teacher-forced decoding, and that copy learns to emit tokens never seen as targets
where plain generation cannot."""

import math

import pytest
import torch
import torch.nn.functional as F

from encdec.decoding import Greedy
from encdec.model import EncoderDecoder
from encdec.modules.copy import copy_mixture
from encdec.modules.rnn import RNNDecoder, RNNEncoder
from encdec.modules.transformer import TransformerDecoder
from encdec.objectives.mle import token_nll
from encdec.types import Batch, EncoderOutput


def test_mixture_matches_hand_computation():
    logits = torch.tensor([[[0.0, 1.0, 2.0, 3.0]]])  # [B=1, T=1, V=4]
    gate = torch.tensor([[[math.log(3.0)]]])  # sigmoid = 0.75
    attention = torch.tensor([[[0.5, 0.3, 0.2, 0.0]]])  # last source position is padding
    src_ids = torch.tensor([[2, 3, 2, 0]])
    p_vocab = F.softmax(logits[0, 0], -1)
    expected = 0.75 * p_vocab + 0.25 * torch.tensor([0.0, 0.0, 0.7, 0.3])
    logp = copy_mixture(logits, gate, attention, src_ids)
    assert torch.allclose(logp[0, 0].exp(), expected, atol=1e-6)
    assert torch.allclose(logp.exp().sum(-1), torch.ones(1, 1), atol=1e-6)
    # one-step form (decoding) equals the sequence form
    assert torch.allclose(copy_mixture(logits[:, 0], gate[:, 0], attention[:, 0], src_ids), logp[:, 0])


def test_searches_and_mle_leave_copy_log_probabilities_unchanged():
    torch.manual_seed(0)
    logp = copy_mixture(torch.randn(2, 3, 7), torch.randn(2, 3, 1), F.softmax(torch.randn(2, 3, 5), -1),
                        torch.randint(0, 7, (2, 5)))
    assert torch.allclose(F.log_softmax(logp, -1), logp, atol=1e-5)  # what the searches apply
    target = torch.tensor([[1, 4, 0], [6, 2, 3]])
    _, nll = token_nll(logp, target, pad_id=0)
    manual = -logp.gather(-1, target[..., None])[..., 0] * (target != 0)
    assert torch.allclose(nll, manual, atol=1e-5)


def _decoder(kind, vocab, d=16, copy=True):
    if kind == "transformer":
        return TransformerDecoder(vocab, d_model=d, layers=2, heads=2, ffn=32, dropout=0.0, copy=copy)
    return RNNDecoder(vocab, d_model=d, hidden_size=d, cell=kind, dropout=0.0, copy=copy)


@pytest.mark.parametrize("kind", ["transformer", "gru", "lstm"])
def test_cached_steps_equal_teacher_forcing_with_copy_and_beam_groups(kind):
    torch.manual_seed(0)
    vocab, batch, s, t = 11, 2, 5, 4
    dec = _decoder(kind, vocab).eval()
    mask = torch.tensor([[True] * 5, [True] * 3 + [False] * 2])
    src_ids = torch.randint(3, vocab, (batch, s))
    enc = EncoderOutput(memory=torch.randn(batch, s, 16), memory_mask=mask, src_ids=src_ids)
    tgt = torch.randint(3, vocab, (batch, t))
    full = dec(tgt, enc)
    assert torch.allclose(full.exp().sum(-1), torch.ones(batch, t), atol=1e-5)
    for group in (1, 3):  # group 3: the rows beam search decodes, per-source tensors shared
        state = dec.init_state(enc.repeat_interleave(group) if group > 1 else enc)
        rows = tgt.repeat_interleave(group, 0)
        for i in range(t):
            out, state = dec.step(rows[:, i], state)
            assert torch.allclose(out, full[:, i].repeat_interleave(group, 0), atol=1e-5), (group, i)
            state = dec.reorder(state, torch.arange(rows.size(0)))


def test_copy_with_a_separate_source_vocabulary_is_refused():
    dec = _decoder("transformer", vocab=6)
    enc = EncoderOutput(memory=torch.randn(1, 3, 16), memory_mask=torch.ones(1, 3, dtype=torch.bool),
                        src_ids=torch.tensor([[1, 2, 9]]))
    with pytest.raises(ValueError, match="one vocabulary for source and target"):
        dec(torch.tensor([[1]]), enc)


# --- copy learns to copy tokens it never saw as targets ---------------------------------------
PAD, BOS, EOS, MARK = 0, 1, 2, 3
FILLERS = range(4, 12)
# many training names, so that copying (not memorising names) is what training rewards
SEEN = range(12, 112)    # names in training answers
UNSEEN = range(112, 140)  # names only in the test: never a training target, never a training input
VOCAB = 140


def name_batch(names, size, gen):
    """Filler tokens with `MARK n1 n2` somewhere; the answer is n1 n2."""
    src = torch.tensor(FILLERS)[torch.randint(0, len(FILLERS), (size, 9), generator=gen)]
    pos = torch.randint(0, 7, (size,), generator=gen)
    pool = torch.tensor(names)
    answer = pool[torch.randint(0, len(pool), (size, 2), generator=gen)]
    rows = torch.arange(size)
    src[rows, pos] = MARK
    src[rows, pos + 1], src[rows, pos + 2] = answer[:, 0], answer[:, 1]
    bos, eos = torch.full((size, 1), BOS), torch.full((size, 1), EOS)
    return Batch(src=src, src_mask=torch.ones_like(src, dtype=torch.bool),
                 tgt_in=torch.cat([bos, answer], 1), tgt_out=torch.cat([answer, eos], 1))


def train_and_score(decoder_kind: str, copy: bool, steps: int = 150) -> float:
    torch.manual_seed(0)
    gen = torch.Generator().manual_seed(0)
    d = 32
    encoder = RNNEncoder(VOCAB, d_model=d, hidden_size=d, dropout=0.0)
    model = EncoderDecoder(encoder, _decoder(decoder_kind, VOCAB, d, copy), BOS, EOS, PAD, share_embeddings=True)
    opt = torch.optim.Adam(model.parameters(), lr=5e-3)
    for _ in range(steps):
        batch = name_batch(list(SEEN), 64, gen)
        logits = model(batch.src, batch.src_mask, batch.tgt_in)
        loss = token_nll(logits, batch.tgt_out, PAD)[0].mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    test = name_batch(list(UNSEEN), 200, torch.Generator().manual_seed(1))
    with torch.no_grad():
        hyps = Greedy(max_len=4)(model.eval(), test.src, test.src_mask).best()
    hyps = F.pad(hyps, (0, 3), value=PAD)[:, :3]  # greedy stops early once every row has ended
    return (hyps == test.tgt_out).all(1).float().mean().item()


# The Transformer decoder copies the first unseen piece every time but the second less
# reliably: its input is then the untrained embedding of an unseen token (measured: first
# token 1.0, both 0.81 after 200 steps); the recurrent decoder is near perfect.
@pytest.mark.parametrize("decoder_kind,floor", [("gru", 0.9), ("transformer", 0.5)])
def test_copy_emits_unseen_names_that_plain_generation_cannot(decoder_kind, floor):
    torch.set_num_threads(1)
    plain, copy = train_and_score(decoder_kind, copy=False), train_and_score(decoder_kind, copy=True)
    assert copy >= floor, (plain, copy)
    assert plain == 0.0, (plain, copy)

