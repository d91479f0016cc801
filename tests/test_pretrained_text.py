"""The pretrained text encoder and its tokenizer, from a tiny random BERT folder written here
(no hub: HF_HUB_OFFLINE=1, local_files_only=True)."""

import math
import sys

import pytest
import torch
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from omegaconf import OmegaConf

import encdec.cli  # noqa: F401
from conftest import CONF_DIR
from encdec.errors import ConfigError
from encdec.model import EncoderDecoder
from encdec.modules.pretrained_text import PretrainedTextEncoder
from encdec.modules.transformer import TransformerDecoder
from encdec.optim import param_groups

transformers = pytest.importorskip("transformers")

WORDS = ["where", "is", "mary", "the", "kitchen", "went", "to", "garden", "who", "in", "yes", "no"]


@pytest.fixture(scope="module")
def bert_dir(tmp_path_factory):
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors

    path = tmp_path_factory.mktemp("tiny-bert")
    chars = "abcdefghijklmnopqrstuvwxyz0123456789"
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *chars, *".,?!'", *("##" + c for c in chars), *WORDS]
    tok = Tokenizer(models.WordPiece({w: i for i, w in enumerate(vocab)}, unk_token="[UNK]"))
    tok.normalizer = normalizers.BertNormalizer(lowercase=True)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.decoder = decoders.WordPiece()
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B:1 [SEP]:1", special_tokens=[("[CLS]", 2), ("[SEP]", 3)]
    )
    tok.save(str(path / "tokenizer.json"))
    config = transformers.BertConfig(vocab_size=len(vocab), hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                                     intermediate_size=64, max_position_embeddings=256)
    torch.manual_seed(0)
    transformers.BertModel(config).save_pretrained(str(path))
    return path


def test_loads_offline_and_returns_the_backbone_states(bert_dir):
    enc = PretrainedTextEncoder(str(bert_dir), dropout=0.0).eval()
    reference = transformers.BertModel.from_pretrained(str(bert_dir), local_files_only=True).eval()
    src = torch.tensor([[2, 60, 61, 3], [2, 62, 3, 0]])
    mask = src != 0
    out = enc(src, mask)
    expected = reference(input_ids=src, attention_mask=mask.long()).last_hidden_state
    assert torch.allclose(out.memory, expected, atol=1e-5)
    assert torch.equal(out.src_ids, src) and torch.equal(out.memory_mask, mask)
    assert PretrainedTextEncoder(str(bert_dir), d_model=16)(src, mask).memory.shape == (2, 4, 16)


def test_backbone_learning_rate_scale_and_freezing(bert_dir):
    def groups(freeze):
        enc = PretrainedTextEncoder(str(bert_dir), d_model=16, freeze=freeze, lr_scale=0.1)
        model = EncoderDecoder(enc, TransformerDecoder(30, d_model=16, layers=1, heads=2, ffn=32), 1, 2, 0)
        return enc, {g["lr_scale"]: {id(p) for p in g["params"]} for g in param_groups(model)}

    enc, by_scale = groups(freeze=False)
    assert set(by_scale) == {1.0, 0.1} and by_scale[0.1] == {id(p) for p in enc.backbone.parameters()}
    assert enc.backbone.training, "a fine-tuned backbone trains with its dropout"
    enc, by_scale = groups(freeze=True)
    assert set(by_scale) == {1.0} and not by_scale[1.0] & {id(p) for p in enc.backbone.parameters()}
    enc.train()
    assert not enc.backbone.training and enc.proj.training
    src = torch.tensor([[2, 60, 3]])
    assert enc(src, src != 0).memory.requires_grad  # through the projection only
    assert all(p.grad is None for p in enc.backbone.parameters())


def test_clear_errors(bert_dir, tmp_path, monkeypatch):
    with pytest.raises(ConfigError, match="encoder.model_dir=.*no config.json"):
        PretrainedTextEncoder(str(tmp_path))
    with pytest.raises(ConfigError, match="the task must use the encoder's tokenizer"):
        PretrainedTextEncoder(str(bert_dir), vocab_size=120)
    monkeypatch.setitem(sys.modules, "transformers", None)  # as if the extra were not installed
    with pytest.raises(ConfigError, match=r'pip install -e "\.\[pretrained\]"'):
        PretrainedTextEncoder(str(bert_dir))


def test_qa_reads_the_encoders_tokenizer_and_trains_with_copy(bert_dir, tmp_path):
    from encdec.build import build_adapter, build_model
    from encdec.decoding import Greedy
    from encdec.objectives import MLE
    from encdec_tasks.qa.fixtures import tiny_data_config

    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = compose("train", overrides=["experiment=qa_minilm", f"encoder.model_dir={bert_dir}", "model.d_model=16",
                                          "decoder.layers=1", "decoder.heads=2", "decoder.ffn=32"])
    assert cfg.task.adapter.tokenizer.pretrained == str(bert_dir), "the model folder is named once, in the encoder"
    cfg.data = OmegaConf.create(tiny_data_config(tmp_path / "data"))
    adapter = build_adapter(cfg)
    adapter.setup(tmp_path, stage="fit")
    assert (tmp_path / "tokenizer.json").exists()
    batch = adapter.collate(list(adapter.examples("train"))[:4])
    assert (batch.src[:, 0] == adapter.tok.bos_id).all(), "[CLS] question [SEP] context [SEP]"
    assert adapter.decode(batch.tgt_out[:1])[0] == adapter.references(batch)[0].answers[0].lower()
    model = build_model(cfg, adapter)
    loss, _ = MLE().loss(model, batch)
    assert math.isfinite(loss.item())
    loss.backward()
    assert Greedy(max_len=5)(model.eval(), batch.src, batch.src_mask).best().size(0) == 4


def test_translation_also_takes_the_encoders_tokenizer(bert_dir, tmp_path):
    from encdec.build import build_adapter
    from encdec_tasks.translation.fixtures import tiny_data_config

    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = compose("train", overrides=["task=translation", "encoder=pretrained_bert", f"encoder.model_dir={bert_dir}"])
    cfg.data = OmegaConf.create(tiny_data_config(tmp_path / "data"))
    adapter = build_adapter(cfg)
    adapter.setup(tmp_path, stage="fit")
    assert adapter.encoder_kwargs()["vocab_size"] == transformers.BertConfig.from_pretrained(str(bert_dir)).vocab_size
    batch = adapter.collate(list(adapter.examples("val"))[:2])
    assert adapter.decode(batch.tgt_out)[0] == adapter.references(batch)[0].lower()  # uncased WordPiece
