"""A Transformer exported to CTranslate2 decodes exactly as ours does.

A tiny Transformer is trained briefly on the toy reverse task (far enough that every greedy
and beam output ends with EOS before the length cap, where the two engines differ by design:
ours forces EOS at the cap, CTranslate2 keeps the best token), exported with the spec API,
and decoded by both engines on the same inputs: the greedy outputs and the whole beam-4 n-best
lists must match token for token. Scores: CTranslate2 bans pad before its softmax, ours
after it (the toy model gives pad ~0.5% per step), so its scores are checked against our
model's log-probabilities of the same hypotheses with pad left out of every softmax.
"""

from __future__ import annotations

import pytest
import torch

ctranslate2 = pytest.importorskip("ctranslate2")

from conftest import tiny_train_args  # noqa: E402
from encdec.decoding import BeamSearch, Greedy  # noqa: E402
from encdec.errors import ConfigError  # noqa: E402
from encdec.export import ctranslate2 as export  # noqa: E402
from toy import BOS, EOS, NUM_SYMBOLS, PAD, make_batch, make_model, train  # noqa: E402

VOCAB = ["<pad>", "<s>", "</s>", "<unk>"] + [f"s{i}" for i in range(NUM_SYMBOLS)]
MAX_LEN = 20


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """Tiny models: more threads only wait on each other."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def trained():
    """Half trained (120 steps): every output ends with EOS, and beams still disagree."""
    torch.manual_seed(0)
    model = make_model("transformer", "transformer", d_model=32, layers=2)
    train(model, "reverse", steps=120, lr=5e-3, warmup=30, check_every=0, test_size=10)
    return model.eval()


@pytest.fixture(scope="module")
def inputs():
    batch = make_batch("reverse", 12, torch.Generator().manual_seed(7))
    tokens = [[VOCAB[i] for i in row[mask].tolist()] for row, mask in zip(batch.src, batch.src_mask)]
    return batch, tokens


def converted(model, path, compute_type="float32"):
    export.save(model, VOCAB, VOCAB, path)
    return ctranslate2.Translator(str(path), device="cpu", compute_type=compute_type, intra_threads=1)


def ours_rows(tokens: torch.Tensor) -> list[list[int]]:
    """Each hypothesis up to and including its EOS (all of ours must have one)."""
    rows = []
    for row in tokens.tolist():
        assert EOS in row, "a hypothesis hit the length cap: train the toy model longer"
        rows.append(row[: row.index(EOS) + 1])
    return rows


def ct2_rows(hypotheses: list[list[str]]) -> list[list[int]]:
    index = {t: i for i, t in enumerate(VOCAB)}
    return [[index[t] for t in h] for h in hypotheses]


@torch.no_grad()
def scores_without_pad(model, batch, sentence: int, hypotheses: list[list[int]], length_penalty: float) -> list[float]:
    """Our model's summed log-probabilities of `hypotheses` (ending in EOS) for one source, pad
    left out of every softmax, divided by length**length_penalty: CTranslate2's score."""
    n, width = len(hypotheses), max(map(len, hypotheses))
    tgt_in = torch.full((n, width), PAD)
    for i, h in enumerate(hypotheses):
        tgt_in[i, : len(h)] = torch.tensor([BOS] + h[:-1])
    src, mask = batch.src[sentence : sentence + 1], batch.src_mask[sentence : sentence + 1]
    logits = model(src.expand(n, -1), mask.expand(n, -1), tgt_in).float()
    logprobs = logits.index_fill(-1, torch.tensor([PAD]), float("-inf")).log_softmax(-1)
    return [
        float(logprobs[i, torch.arange(len(h)), torch.tensor(h)].sum()) / len(h) ** length_penalty
        for i, h in enumerate(hypotheses)
    ]


def test_greedy_equals_ours_token_for_token(trained, inputs, tmp_path):
    batch, tokens = inputs
    search = Greedy(max_len=MAX_LEN)
    with torch.no_grad():
        ours = search(trained, batch.src, batch.src_mask)
    theirs = converted(trained, tmp_path / "ct2").translate_batch(
        tokens, **export.translate_options(search, VOCAB[PAD]), return_scores=True
    )
    rows = ours_rows(ours.best())
    assert [ct2_rows(r.hypotheses)[0] for r in theirs] == rows
    # greedy scores are plain sums (translate_options gives length_penalty 0)
    expected = [scores_without_pad(trained, batch, i, [row], 0.0)[0] for i, row in enumerate(rows)]
    assert [r.scores[0] for r in theirs] == pytest.approx(expected, abs=1e-4)


def test_beam_4_n_best_equals_ours(trained, inputs, tmp_path):
    batch, tokens = inputs
    # CTranslate2 stops a sentence once beam_size hypotheses have ended: our stopping=early
    search = BeamSearch(beam_size=4, length_penalty=1.0, num_return=4, stopping="early", max_len=MAX_LEN)
    with torch.no_grad():
        ours = search(trained, batch.src, batch.src_mask)
    theirs = converted(trained, tmp_path / "ct2").translate_batch(
        tokens, **export.translate_options(search, VOCAB[PAD]), return_scores=True
    )
    for sentence, result in enumerate(theirs):
        rows = ours_rows(ours.tokens[sentence])
        assert ct2_rows(result.hypotheses) == rows, f"sentence {sentence}"
        assert result.scores == pytest.approx(scores_without_pad(trained, batch, sentence, rows, 1.0), abs=1e-4)
    # the beam does something here: some sentence's best output is not the greedy one
    with torch.no_grad():
        greedy = ours_rows(Greedy(max_len=MAX_LEN)(trained, batch.src, batch.src_mask).best())
    assert any(ours_rows(ours.tokens[i])[0] != g for i, g in enumerate(greedy))


def test_int8_compute_type_decodes_the_same_directory(trained, inputs, tmp_path):
    batch, tokens = inputs
    search = Greedy(max_len=MAX_LEN)
    with torch.no_grad():
        ours = ours_rows(search(trained, batch.src, batch.src_mask).best())
    theirs = converted(trained, tmp_path / "ct2", compute_type="int8").translate_batch(
        tokens, **export.translate_options(search, VOCAB[PAD])
    )
    rows = [ct2_rows(r.hypotheses)[0] for r in theirs]
    assert all(row[-1] == EOS for row in rows)
    # int8 weights change the numbers, not the model: most outputs stay the same
    assert sum(a == b for a, b in zip(rows, ours)) >= len(ours) // 2


def test_refuses_what_it_cannot_convert(trained, tmp_path):
    with pytest.raises(ConfigError, match="decoder=transformer"):
        export.transformer_spec(make_model("transformer", "gru+additive", d_model=32), VOCAB, VOCAB)
    with pytest.raises(ConfigError, match="duplicate"):
        export.transformer_spec(trained, VOCAB, VOCAB[:-1] + ["s0"])
    export.save(trained, VOCAB, VOCAB, tmp_path / "ct2")
    with pytest.raises(ConfigError, match="already exists"):
        export.save(trained, VOCAB, VOCAB, tmp_path / "ct2")


def test_a_run_directory_exports_with_its_tokenizer(tiny_corpus, tmp_path):
    import encdec

    run_dir = tmp_path / "run"
    encdec.train(tiny_train_args(tiny_corpus, run_dir, "trainer.max_steps=2", "loader.max_tokens=512",
                                 "test_after_training=false"))
    out = export.export_run(run_dir, tmp_path / "ct2", checkpoint="last")
    run = encdec.load_run(run_dir, checkpoint="last")
    vocab = export.read_vocabulary(out)
    assert vocab == export.tokenizer_vocabulary(run.adapter.tgt_tok)
    assert export.read_vocabulary(out, "source") == export.tokenizer_vocabulary(run.adapter.src_tok)

    # a barely trained model's outputs say little (one token repeated), so its numbers are
    # compared: CTranslate2's log-probabilities of reference translations, teacher-forced,
    # against our model's
    tok = run.adapter.tgt_tok
    sources = ["Der hund läuft im park.", "Die katze sitzt im garten."]
    targets = [tok.encode(t) for t in ["The dog runs in the park.", "The cat sits in the garden."]]
    batch = run.adapter.collate(run.adapter.parse_inputs(sources))
    tgt_in = torch.full((len(targets), max(map(len, targets)) + 1), tok.pad_id)
    for i, t in enumerate(targets):
        tgt_in[i, : len(t) + 1] = torch.tensor([tok.bos_id] + t)
    with torch.no_grad():
        logprobs = run.model.eval()(batch.src, batch.src_mask, tgt_in).float().log_softmax(-1)
    ours = [logprobs[i, torch.arange(len(t) + 1), torch.tensor(t + [tok.eos_id])].tolist() for i, t in enumerate(targets)]
    pieces = [[vocab[i] for i in row[mask].tolist()] for row, mask in zip(batch.src, batch.src_mask)]
    translator = ctranslate2.Translator(str(out), device="cpu", intra_threads=1)
    theirs = translator.score_batch(pieces, [[vocab[i] for i in t] for t in targets])
    for mine, scored in zip(ours, theirs):  # one log-probability per target token and EOS
        assert scored.log_probs == pytest.approx(mine, abs=1e-4)

    # and greedy decoding over the real vocabulary: the first `cap` tokens (the model may never
    # end a sentence; ours runs one step longer, where it would force EOS)
    cap = 12
    with torch.no_grad():
        best = Greedy(max_len=cap + 1)(run.model, batch.src, batch.src_mask).best()[:, :cap].tolist()
    best = [row[: row.index(tok.eos_id) + 1] if tok.eos_id in row else row for row in best]
    decoded = translator.translate_batch(pieces, **export.translate_options(Greedy(max_len=cap), vocab[tok.pad_id]))
    index = {t: i for i, t in enumerate(vocab)}
    assert [[index[t] for t in r.hypotheses[0]] for r in decoded] == best
