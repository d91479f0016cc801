"""Decoding speed-ups that must not change a single output: finished sources leave the batch,
the Transformer's preallocated key/value cache, bf16 decoding, int8 CPU quantisation, and the
Transformer's attention-backend and activation-checkpointing switches."""

from __future__ import annotations

import pytest
import torch
from test_decoding import (
    BOS,
    D,
    EOS,
    PAD,
    SOURCES,
    VOCAB,
    A,
    TableDecoder,
    batch,
    fake_enc,
    make_decoder,
    make_model,
    never_ends,
    random_enc,
    rows,
    strip,
)

from encdec.decoding import BeamSearch, Greedy, Sampling
from encdec.decoding.quantize import PackedLinear, for_serving, onednn_available, quantize_for_cpu
from encdec.errors import ConfigError
from encdec.modules import transformer as T
from encdec.modules.attention import AdditiveAttention, DotAttention, GeneralAttention
from encdec.modules.transformer import TransformerDecoder, TransformerEncoder
from encdec.types import EncoderOutput


class RowCounter:
    """Wraps a decoder and records how many rows each step decodes."""

    def __init__(self, decoder):
        self.decoder, self.rows = decoder, []

    def init_state(self, enc):
        return self.decoder.init_state(enc)

    def step(self, tokens, state):
        self.rows.append(tokens.size(0))
        return self.decoder.step(tokens, state)

    def reorder(self, state, index):
        return self.decoder.reorder(state, index)


# --------------------------------------------------------------------------------------------
# finished sources leave the batch
# --------------------------------------------------------------------------------------------
def ends_after_four(prefix):
    return {A: 0.7, EOS: 0.3} if len(prefix) < 4 else {EOS: 1.0}


# ends at step 1, step 5, and at the length limit (12)
UNEVEN = [{(): {EOS: 1.0}}, ends_after_four, never_ends]

STRATEGIES = {
    "greedy": lambda: Greedy(max_len=12),
    "beam": lambda: BeamSearch(beam_size=3, num_return=3, max_len=12),
    "beam_raw": lambda: BeamSearch(beam_size=2, num_return=2, length_penalty=0.0, max_len=12),
    "beam_early": lambda: BeamSearch(beam_size=2, max_len=12, stopping="early"),
}


@pytest.mark.parametrize("name", list(STRATEGIES))
def test_uneven_batch_equals_each_source_alone_and_finished_sources_leave(name):
    strategy = STRATEGIES[name]()
    counter = RowCounter(TableDecoder(*UNEVEN))
    together = strategy.search(counter, fake_enc([0, 1, 2]), BOS, EOS, PAD)
    for i, table in enumerate(UNEVEN):
        alone = strategy.search(TableDecoder(table), fake_enc([0]), BOS, EOS, PAD)
        assert [strip(h) for h in rows(alone.tokens[0])] == [strip(h) for h in rows(together.tokens[i])], i
        assert alone.scores[0].tolist() == pytest.approx(together.scores[i].tolist(), abs=1e-6)
    per_source = getattr(strategy, "beam_size", 1)
    # every source decodes at the first step; the one ending at once is gone from the second
    assert counter.rows[0] == 3 * per_source
    assert counter.rows[1] == 2 * per_source
    # the last steps decode the never-ending source only
    assert counter.rows[-1] == per_source
    assert len(counter.rows) == 12


def test_sampling_drops_a_source_once_all_its_samples_have_ended():
    torch.manual_seed(0)
    counter = RowCounter(TableDecoder(*UNEVEN))
    hyps = Sampling(num_return=4, max_len=12).search(counter, fake_enc([0, 2]), BOS, EOS, PAD)
    assert all(strip(h) == [EOS] for h in rows(hyps.tokens[0]))
    lengths = [len(strip(h)) for h in rows(hyps.tokens[1])]
    assert len(set(lengths)) > 1  # the samples of source 1 end at different steps...
    # ...and its rows stay until the last one ends; source 0 left after the first step
    assert counter.rows == [8] + [4] * (max(lengths) - 1)


# the first source's limit is 1 * 1 + 1 = 2 tokens, the last's 1 * 7 + 1 = 8
UNEVEN_MODEL_STRATEGIES = {
    "greedy": lambda: Greedy(max_len=30, max_len_a=1.0, max_len_b=1),
    "beam": lambda: BeamSearch(beam_size=3, num_return=3, max_len=30, max_len_a=1.0, max_len_b=1),
    "sampling_top1": lambda: Sampling(top_k=1, num_return=2, max_len=30, max_len_a=1.0, max_len_b=1),
}


@pytest.mark.parametrize("kind", ["transformer", "gru", "lstm"])
@pytest.mark.parametrize("name", list(UNEVEN_MODEL_STRATEGIES))
def test_models_decode_the_same_after_finished_sources_leave(kind, name):
    model = make_model(kind)
    strategy = UNEVEN_MODEL_STRATEGIES[name]()
    sources = [[8], [9, 3], [5, 6, 7, 8, 9], [4, 4, 5, 10, 3, 7, 6]]
    src, mask = batch(sources)
    counter = RowCounter(model.decoder)
    with torch.no_grad():
        together = strategy.search(counter, model.encode(src, mask), BOS, EOS, PAD)
    assert counter.rows[-1] < counter.rows[0]  # some source left before the end
    for i, source in enumerate(sources):
        alone = strategy(model, *batch([source]))
        for n in range(alone.tokens.size(1)):
            assert strip(rows(alone.tokens[0, n])) == strip(rows(together.tokens[i, n])), (i, n)
        assert alone.scores[0].tolist() == pytest.approx(together.scores[i].tolist(), abs=1e-4), i


# --------------------------------------------------------------------------------------------
# the Transformer's key/value cache
# --------------------------------------------------------------------------------------------
@torch.no_grad()
def test_kv_cache_grows_past_its_first_capacity_and_matches_teacher_forcing():
    torch.manual_seed(0)
    dec = TransformerDecoder(VOCAB, d_model=D, layers=2, heads=2, ffn=32, dropout=0.0).eval()
    enc = random_enc()
    length = 2 * T.FIRST_CACHE_CAPACITY + 3  # grows twice
    tgt_in = torch.randint(3, VOCAB, (3, length))
    full = dec(tgt_in, enc)
    state = dec.init_state(enc)
    stepped = []
    for t in range(length):
        logits, state = dec.step(tgt_in[:, t], state)
        stepped.append(logits)
        if t == 0:
            first = state["self"][0][0]
            assert first.shape[2] == T.FIRST_CACHE_CAPACITY
    assert state["self"][0][0].shape[2] >= length
    torch.testing.assert_close(torch.stack(stepped, 1), full, atol=1e-5, rtol=1e-5)


@torch.no_grad()
def test_kv_cache_is_written_in_place_between_growths():
    torch.manual_seed(0)
    dec = TransformerDecoder(VOCAB, d_model=D, layers=1, heads=2, ffn=32, dropout=0.0).eval()
    state = dec.init_state(random_enc())
    _, state = dec.step(torch.tensor([BOS] * 3), state)
    buffer = state["self"][0][0]
    for token in (4, 5, 6):
        _, state = dec.step(torch.tensor([token] * 3), state)
    assert state["self"][0][0].data_ptr() == buffer.data_ptr()  # no copy per step


@torch.no_grad()
def test_grouped_reorder_may_drop_whole_sources():
    """Beam rows of the sources still searching (fewer rows, whole groups) decode as those
    sources would from a fresh, smaller batch."""
    torch.manual_seed(0)
    dec = TransformerDecoder(VOCAB, d_model=D, layers=2, heads=2, ffn=32, dropout=0.0, copy=True).eval()
    enc = random_enc()
    enc.src_ids = torch.randint(3, VOCAB, enc.memory_mask.shape)
    g = 2
    tokens = torch.randint(3, VOCAB, (3 * g, 5))
    state = dec.init_state(enc.repeat_interleave(g))
    for t in range(3):
        _, state = dec.step(tokens[:, t], state)
    keep = torch.tensor([5, 4, 1, 1])  # source 2's beams (swapped), source 0's beam 1 twice
    after = dec.reorder(state, keep)
    assert after["cross"][0][0].size(0) == 2
    got = [dec.step(tokens[keep, 3], after)[0]]
    # the same rows decoded from scratch as independent sources
    fresh = dec.init_state(enc.repeat_interleave(g).index_select(torch.tensor([5, 4, 1, 1])))
    for t in range(4):
        expected, fresh = dec.step(tokens[keep, t], fresh)
    torch.testing.assert_close(got[0], expected, atol=1e-5, rtol=1e-5)
    with pytest.raises(ValueError, match="another source's group"):
        dec.reorder(state, torch.tensor([5, 0]))


PER_SOURCE_KEY = {"transformer": lambda s: s["cross"][0][0], "rnn": lambda s: s["memory"]}


@pytest.mark.parametrize("kind", ["transformer", "gru-additive", "lstm-dot", "gru-general"])
@torch.no_grad()
def test_grouped_rows_share_one_memory_per_source_and_decode_as_independent_rows(kind):
    """Beam rows keep one copy of their source's memory (Transformer: cross-attention keys
    and values; RNN: memory, attention keys, mask), and decode exactly as the same rows
    treated as independent sources, before and after the beams move within their source."""
    dec = make_decoder(kind)
    per_source = PER_SOURCE_KEY["transformer" if kind == "transformer" else "rnn"]
    enc = random_enc(summary=kind.startswith("lstm"))
    grouped = enc.repeat_interleave(3)
    flat = enc.repeat_interleave(3)
    flat.group_size = 1  # the same nine rows as nine sources
    g_state, f_state = dec.init_state(grouped), dec.init_state(flat)
    assert per_source(g_state).size(0) == 3 and per_source(f_state).size(0) == 9
    tokens = torch.tensor([BOS] * 9)
    for index in (torch.tensor([1, 1, 0, 5, 3, 4, 8, 8, 8]), torch.tensor([6, 7, 8, 0, 0, 1])):
        g_logits, g_state = dec.step(tokens, g_state)
        f_logits, f_state = dec.step(tokens, f_state)
        torch.testing.assert_close(g_logits, f_logits, atol=1e-5, rtol=1e-5)
        g_state, f_state = dec.reorder(g_state, index), dec.reorder(f_state, index)
        tokens = torch.randint(3, VOCAB, (index.numel(),), generator=torch.Generator().manual_seed(index.numel()))
    assert per_source(g_state).size(0) == 2  # the second move dropped source 1 and swapped 0 and 2
    torch.testing.assert_close(dec.step(tokens, g_state)[0], dec.step(tokens, f_state)[0], atol=1e-5, rtol=1e-5)
    with pytest.raises(ValueError, match="another source's group"):
        dec.reorder(g_state, torch.tensor([3, 0, 1, 2, 4, 5]))


def _reference_attention(attn, q, memory, mask):
    """One query against its own memory, written out from the papers' formulas."""
    if isinstance(attn, AdditiveAttention):
        scores = attn.v(torch.tanh(attn.w_k(memory) + attn.w_q(q))).squeeze(-1)
    elif isinstance(attn, GeneralAttention):
        scores = attn.w(memory) @ q * attn.scale
    else:
        scores = memory @ q * attn.scale
    weights = scores.masked_fill(~mask, float("-inf")).softmax(-1)
    return weights @ memory, weights


@pytest.mark.parametrize("attention", [AdditiveAttention, DotAttention, GeneralAttention])
@pytest.mark.parametrize("group", [1, 3])
@torch.no_grad()
def test_rnn_attention_matches_its_formula_per_query_in_groups(attention, group):
    torch.manual_seed(0)
    attn = attention(query_dim=D, key_dim=D)
    memory, mask = torch.randn(2, 5, D), torch.tensor([[True] * 5, [True] * 2 + [False] * 3])
    query = torch.randn(2 * group, D)
    context, weights = attn(query, attn.prepare(memory), memory, mask, group)
    for row in range(2 * group):
        source = row // group
        want_c, want_w = _reference_attention(attn, query[row], memory[source], mask[source])
        torch.testing.assert_close(context[row], want_c, atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(weights[row], want_w, atol=1e-5, rtol=1e-5)


# --------------------------------------------------------------------------------------------
# bf16 decoding and int8 CPU quantisation
# --------------------------------------------------------------------------------------------
def _agreement(a, b) -> float:
    same = [strip(x) == strip(y) for x, y in zip(rows(a.tokens[:, 0]), rows(b.tokens[:, 0]))]
    return sum(same) / len(same)


MORE_SOURCES = SOURCES + [[3, 4, 5], [10, 9, 8, 7], [6, 6, 6, 6, 6], [7, 3], [5], [4, 8, 4, 8, 4, 8]]


def test_bf16_decoding_runs_the_decoder_in_bf16_and_mostly_agrees():
    model = make_model("transformer")
    src, mask = batch(MORE_SOURCES)
    seen = []
    hook = model.decoder.out.register_forward_hook(lambda mod, inp, out: seen.append(out.dtype))
    fp32 = Greedy(max_len=9)(model, src, mask)
    assert set(seen) == {torch.float32}
    seen.clear()
    bf16 = Greedy(max_len=9, dtype="bf16")(model, src, mask)
    hook.remove()
    assert set(seen) == {torch.bfloat16}
    assert bf16.scores.dtype == torch.float32
    assert _agreement(fp32, bf16) >= 0.7
    beam = BeamSearch(beam_size=3, max_len=9, dtype="bf16")(model, src, mask)
    assert torch.isfinite(beam.scores).all()
    with pytest.raises(ConfigError, match="decoding.dtype"):
        Greedy(dtype="fp16")


@pytest.mark.parametrize("kind", ["transformer", "gru"])
def test_int8_quantised_model_decodes_and_mostly_agrees(kind):
    model = make_model(kind)
    quantised = quantize_for_cpu(model)
    assert isinstance(model.decoder.out, torch.nn.Linear)  # the original is untouched
    assert type(quantised.decoder.out).__module__.startswith("torch.ao.nn.quantized")
    src, mask = batch(MORE_SOURCES)
    for strategy in (Greedy(max_len=9), BeamSearch(beam_size=3, max_len=9)):
        hyps = strategy(quantised, src, mask)
        assert torch.isfinite(hyps.scores).all()
        assert all(strip(h)[-1] == EOS for h in rows(hyps.tokens[:, 0]))
    # next-token choices along the fp32 greedy outputs: random (near-flat) models make this
    # the stable measure; whole sequences diverge after one flipped near-tie
    fp32 = Greedy(max_len=9)(model, src, mask).tokens[:, 0]
    tgt_in = torch.cat([torch.full((len(MORE_SOURCES), 1), BOS), fp32[:, :-1]], dim=1)
    with torch.no_grad():
        a, b = model(src, mask, tgt_in).argmax(-1), quantised(src, mask, tgt_in).argmax(-1)
    real = fp32 != PAD
    assert float(((a == b) & real).sum() / real.sum()) >= 0.85


@pytest.mark.skipif(not onednn_available(), reason="this PyTorch build has no oneDNN linear kernels")
@pytest.mark.parametrize("bias", [True, False])
def test_packed_linear_computes_the_linear_layer_in_fp32(bias):
    torch.manual_seed(0)
    linear = torch.nn.Linear(24, 40, bias=bias)
    packed = PackedLinear(linear)
    for x in (torch.randn(7, 24), torch.randn(5, 1, 24), torch.randn(2, 3, 24).transpose(0, 1)):
        with torch.no_grad():
            torch.testing.assert_close(packed(x), linear(x), atol=1e-5, rtol=1e-5)
    with pytest.raises(RuntimeError, match="fp32 only"), torch.autocast("cpu", dtype=torch.bfloat16):
        packed(torch.randn(2, 24))


@pytest.mark.skipif(not onednn_available(), reason="this PyTorch build has no oneDNN linear kernels")
@pytest.mark.parametrize("kind", ["transformer", "gru", "lstm"])
def test_onednn_packed_model_decodes_like_the_model(kind):
    model = make_model(kind)
    packed = for_serving(model, onednn=True)
    assert isinstance(model.decoder.out, torch.nn.Linear)  # the original is untouched
    assert not any(type(m) is torch.nn.Linear for m in packed.modules())
    src, mask = batch(MORE_SOURCES)
    for strategy in (Greedy(max_len=9), BeamSearch(beam_size=3, max_len=9, num_return=3)):
        ours, theirs = strategy(model, src, mask), strategy(packed, src, mask)
        assert torch.equal(ours.tokens, theirs.tokens)
        torch.testing.assert_close(ours.scores, theirs.scores, atol=1e-4, rtol=1e-5)


def test_serving_options_that_cannot_combine_are_refused_in_one_line():
    model = make_model("gru")
    with pytest.raises(ConfigError, match="int8=true and onednn=true"):
        for_serving(model, int8=True, onednn=True)
    with pytest.raises(ConfigError, match="onednn=true runs fp32 only"):
        for_serving(model, onednn=True, fp32=False)
    assert for_serving(model) is model


# --------------------------------------------------------------------------------------------
# the searches' reorder reuses the Transformer's cache buffers
# --------------------------------------------------------------------------------------------
@torch.no_grad()
def test_consumed_reorder_reuses_buffers_and_equals_the_copying_reorder():
    torch.manual_seed(0)
    dec = TransformerDecoder(VOCAB, d_model=D, layers=2, heads=2, ffn=32, dropout=0.0).eval()
    enc = random_enc().repeat_interleave(2)
    tokens = torch.randint(3, VOCAB, (6, 6), generator=torch.Generator().manual_seed(0))
    copying, consuming = dec.init_state(enc), dec.init_state(enc)
    seen = set()
    indices = [torch.tensor([1, 1, 2, 3, 5, 4]), torch.tensor([0, 0, 3, 2, 5, 5]), torch.tensor([1, 0, 4, 4])]
    rows = 6
    for t, index in enumerate(indices):
        a, copying = dec.step(tokens[:rows, t], copying)
        b, consuming = dec.step(tokens[:rows, t], consuming)
        torch.testing.assert_close(a, b)
        rows = index.numel()
        seen.add(consuming["self"][0][0].data_ptr())
        copying, consuming = dec.reorder(copying, index), dec.reorder_consumed(consuming, index)
    # after the first reorder the two buffers per layer alternate: nothing new is allocated
    assert consuming["self"][0][0].data_ptr() in seen
    torch.testing.assert_close(dec.step(tokens[:4, 3], copying)[0], dec.step(tokens[:4, 3], consuming)[0])
    # the copying reorder never hands out a spare another state could write into
    assert "spare" not in dec.reorder(consuming, torch.arange(4))


# --------------------------------------------------------------------------------------------
# attention backend and activation checkpointing
# --------------------------------------------------------------------------------------------
def _transformer(**switches):
    torch.manual_seed(0)
    enc = TransformerEncoder(VOCAB, d_model=D, layers=2, heads=2, ffn=32, dropout=0.1, pad_id=PAD, **switches)
    dec = TransformerDecoder(VOCAB, d_model=D, layers=2, heads=2, ffn=32, dropout=0.1, pad_id=PAD, **switches)
    return enc, dec


def _loss_and_grads(enc, dec, seed=0):
    src, mask = batch(SOURCES)
    tgt_in = torch.tensor([[BOS, 3, 4, 5, 6], [BOS, 8, 9, 9, 2], [BOS, 10, 3, 6, 6], [BOS, 7, 7, 0, 0]])
    enc.train(), dec.train()
    torch.manual_seed(seed)
    logits = dec(tgt_in, enc(src, mask))
    loss = logits.log_softmax(-1).mean()
    params = list(enc.parameters()) + list(dec.parameters())
    grads = torch.autograd.grad(loss, params)
    return logits, grads


@pytest.mark.parametrize("switches", [{"attention_backend": "sdpa"}, {"activation_checkpointing": True}])
def test_switches_give_the_default_outputs_and_gradients(switches):
    ref_logits, ref_grads = _loss_and_grads(*_transformer())
    logits, grads = _loss_and_grads(*_transformer(**switches))
    torch.testing.assert_close(logits, ref_logits, atol=1e-5, rtol=1e-4)
    for g, ref in zip(grads, ref_grads):
        torch.testing.assert_close(g, ref, atol=1e-5, rtol=1e-4)


@torch.no_grad()
def test_sdpa_backend_decodes_like_math():
    enc_m, dec_m = _transformer()
    enc_s, dec_s = _transformer(attention_backend="sdpa")
    src, mask = batch(SOURCES)
    outs = []
    for enc, dec in ((enc_m, dec_m), (enc_s, dec_s)):
        memory = enc.eval()(src, mask)
        dec.eval()
        outs.append(BeamSearch(beam_size=3, max_len=9).search(dec, memory, BOS, EOS, PAD))
    assert rows(outs[0].tokens) == rows(outs[1].tokens)
    torch.testing.assert_close(outs[0].scores, outs[1].scores, atol=1e-5, rtol=1e-5)


def test_checkpointing_stores_fewer_activations():
    """The switch really recomputes: fewer tensors are saved for the backward pass."""

    def saved(enc, dec):
        count = [0]

        def pack(t):
            count[0] += 1
            return t

        with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
            _loss_and_grads(enc, dec)
        return count[0]

    assert saved(*_transformer(activation_checkpointing=True)) < saved(*_transformer())


def test_unknown_attention_backend_is_refused():
    with pytest.raises(ConfigError, match="attention_backend"):
        TransformerEncoder(VOCAB, d_model=D, layers=1, heads=2, ffn=32, attention_backend="flash")


def test_encoder_output_shape_is_unchanged_by_switches():
    enc, _ = _transformer(attention_backend="sdpa", activation_checkpointing=True)
    src, mask = batch(SOURCES)
    out = enc.eval()(src, mask)
    assert isinstance(out, EncoderOutput) and out.memory.shape == (len(SOURCES), src.size(1), D)
