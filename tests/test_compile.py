"""model.compile=true (torch.compile of the teacher-forced forward) and
model.float32_matmul_precision: the same outputs as the eager model, checkpoints without
compile's names, decoding unchanged, a one-line error without a C++ compiler."""

import copy
import pickle
from types import SimpleNamespace

import pytest
import torch
import torch._dynamo
from torch._dynamo.utils import counters

from conftest import CONF_DIR, run_cli, tiny_train_args
from encdec.decoding import BeamSearch
from encdec.errors import ConfigError
from encdec.model import EncoderDecoder
from encdec.modules.transformer import TransformerDecoder, TransformerEncoder

PAD, BOS, EOS, VOCAB = 0, 1, 2, 40


def _model() -> EncoderDecoder:
    torch.manual_seed(0)
    dims = dict(vocab_size=VOCAB, d_model=16, layers=1, heads=2, ffn=32, dropout=0.0, pad_id=PAD)
    return EncoderDecoder(TransformerEncoder(**dims), TransformerDecoder(**dims), BOS, EOS, PAD, share_embeddings=True)


def _batch(n: int, src_len: int, tgt_len: int, seed: int):
    g = torch.Generator().manual_seed(seed)
    src = torch.randint(3, VOCAB, (n, src_len), generator=g)
    src[0, src_len - 2:] = PAD  # one padded source
    tgt_in = torch.randint(3, VOCAB, (n, tgt_len), generator=g)
    tgt_in[:, 0] = BOS
    return src, src != PAD, tgt_in


def _loss_and_grads(model: EncoderDecoder, batch):
    logits = model(*batch)
    loss = logits.log_softmax(-1).mean()
    return logits, torch.autograd.grad(loss, list(model.parameters()))


def test_the_compiled_forward_is_one_graph_equal_to_the_eager_one_and_decodes_alike():
    torch._dynamo.reset()
    counters.clear()
    eager = _model().train()
    compiled = copy.deepcopy(eager)
    compiled.compile_forward()
    assert compiled.state_dict().keys() == eager.state_dict().keys()
    assert not any("_orig_mod" in k for k in compiled.state_dict())

    batch = _batch(4, 7, 6, seed=0)
    ref_logits, ref_grads = _loss_and_grads(eager, batch)
    logits, grads = _loss_and_grads(compiled, batch)
    # the whole forward (encoder, decoder, every layer) compiled as one graph: no graph break
    assert counters["stats"]["unique_graphs"] == 1
    torch.testing.assert_close(logits, ref_logits, atol=1e-5, rtol=1e-4)
    for g, ref in zip(grads, ref_grads):
        torch.testing.assert_close(g, ref, atol=1e-5, rtol=1e-4)

    # decoding (encode + the decoder's cached steps) is not the forward: it runs as before
    src, mask, _ = _batch(3, 8, 2, seed=2)
    with torch.no_grad():
        out = [BeamSearch(beam_size=2, max_len=7)(m.eval(), src, mask) for m in (eager, compiled)]
    assert torch.equal(out[0].tokens, out[1].tokens)
    torch.testing.assert_close(out[0].scores, out[1].scores)
    assert counters["stats"]["unique_graphs"] == 1, "decoding compiled nothing"


def test_the_forward_is_compiled_in_the_process_that_trains():
    """A ddp_spawn launch pickles the module into its workers, which drops a compiled forward;
    the callback compiles it again in each worker, when fitting starts."""
    from encdec.compiling import CompileForward

    model = _model()
    model.compile_forward()
    shipped = pickle.loads(pickle.dumps(model))
    assert model._compiled_call_impl is not None and shipped._compiled_call_impl is None
    trainer = SimpleNamespace(is_global_zero=True)
    CompileForward().setup(trainer, SimpleNamespace(model=shipped), "test")
    assert shipped._compiled_call_impl is None, "only fitting compiles"
    CompileForward().setup(trainer, SimpleNamespace(model=shipped), "fit")
    assert shipped._compiled_call_impl is not None


def test_a_compiled_run_trains_and_its_checkpoint_evaluates_uncompiled(tiny_corpus, tmp_path):
    """3 steps over batches of several shapes (a recompile with dynamic sizes) and a compiled
    validation (eval mode, inference_mode) at the epoch end."""
    run_dir = tmp_path / "run"
    proc = run_cli("train", *tiny_train_args(tiny_corpus, run_dir, "model.compile=true", "trainer.max_steps=3",
                                             "test_after_training=false"))
    assert "model.compile=true: the forward pass is compiled" in proc.stderr + proc.stdout
    ckpt = torch.load(run_dir / "checkpoints/last.ckpt", weights_only=True)
    assert ckpt["global_step"] == 3
    assert ckpt["state_dict"] and not [k for k in ckpt["state_dict"] if "_orig_mod" in k]
    # encdec-eval builds the model from the saved config, uncompiled, and loads it strictly
    proc = run_cli("evaluate", f"run_dir={run_dir}", "checkpoint=last", "split=test", "progress=false")
    assert "test/sacrebleu:" in proc.stdout and "Traceback" not in proc.stderr


def _validate(overrides: list[str]) -> None:
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from hydra.core.hydra_config import HydraConfig
    from omegaconf import open_dict

    import encdec.cli  # noqa: F401  (registers the resolvers)
    from encdec.validation import validate_train_config

    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = compose(config_name="train", overrides=overrides, return_hydra_config=True)
    HydraConfig.instance().set_config(cfg)
    choices = dict(cfg.hydra.runtime.choices)
    with open_dict(cfg):
        del cfg["hydra"]
    validate_train_config(cfg, CONF_DIR, choices)


def test_compile_on_a_cpu_without_a_cpp_compiler_stops_with_one_line(monkeypatch):
    from torch._inductor import config as inductor_config

    _validate(["model.compile=true", "trainer.accelerator=cpu"])  # this machine has one
    monkeypatch.setattr(inductor_config.cpp, "cxx", (None, "/nonexistent/g++"))
    with pytest.raises(ConfigError) as info:
        _validate(["model.compile=true", "trainer.accelerator=cpu"])
    message = str(info.value)
    assert message.startswith("model.compile=true needs a C++ compiler") and "\n" not in message
    assert "model.compile=false" in message
    _validate(["model.compile=false", "trainer.accelerator=cpu"])  # only a compiled run needs it


@pytest.mark.parametrize("override,message", [
    ("model.compile=yes", "model.compile='yes' is out of range: use true or false"),
    ("model.float32_matmul_precision=low", "model.float32_matmul_precision='low' is out of range"),
])
def test_a_wrong_compile_or_matmul_precision_value_names_the_key(override, message):
    with pytest.raises(ConfigError, match=message.replace("(", r"\(")):
        _validate([override])


@pytest.mark.parametrize("precision", ["medium", "high"])
def test_float32_matmul_precision_is_set_where_the_model_is_built(precision, tmp_path):
    from encdec.build import build_adapter, build_model
    from encdec.testing import tiny_task_config

    cfg = tiny_task_config("translation", tmp_path / "data", overrides=[f"model.float32_matmul_precision={precision}"])
    adapter = build_adapter(cfg)
    (tmp_path / "run").mkdir()
    adapter.setup(tmp_path / "run", stage="fit")
    before = torch.get_float32_matmul_precision()
    try:
        build_model(cfg, adapter)
        assert torch.get_float32_matmul_precision() == precision
    finally:
        torch.set_float32_matmul_precision(before)
