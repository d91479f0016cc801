"""optim.no_decay: weight decay groups by parameter name and module kind, lr_scale kept."""

from functools import partial

import pytest
import torch
from torch import nn

from encdec.errors import ConfigError
from encdec.optim import build_optimizer, constant, param_groups


class Toy(nn.Module):
    def __init__(self):
        super().__init__()
        self.embed = nn.Embedding(10, 4)
        self.proj = nn.Linear(4, 4)
        self.norm = nn.LayerNorm(4)
        self.backbone = nn.Sequential(nn.Linear(4, 4), nn.LayerNorm(4))
        self.backbone.lr_scale = 0.1
        self.frozen = nn.Linear(4, 4)
        self.frozen.requires_grad_(False)


def _names(model, group):
    ids = {id(p) for p in group["params"]}
    return sorted(n for n, p in model.named_parameters() if id(p) in ids)


def test_no_decay_groups_list_biases_and_norms_per_lr_scale():
    model = Toy()
    groups = param_groups(model, no_decay=["bias", "norm"])
    by_key = {(g["lr_scale"], g.get("weight_decay")): _names(model, g) for g in groups}
    assert by_key == {
        (1.0, None): ["embed.weight", "proj.weight"],
        (1.0, 0.0): ["norm.bias", "norm.weight", "proj.bias"],
        (0.1, None): ["backbone.0.weight"],
        (0.1, 0.0): ["backbone.0.bias", "backbone.1.bias", "backbone.1.weight"],
    }
    exempt = sorted(n for g in groups for n in g.get("no_decay_names", []))
    assert exempt == ["backbone.0.bias", "backbone.1.bias", "backbone.1.weight", "norm.bias", "norm.weight", "proj.bias"]


def test_the_optimizer_decays_only_the_other_groups_at_its_configured_rate():
    model = Toy()
    cfg = build_optimizer(param_groups(model, ["bias", "norm"]), partial(torch.optim.AdamW, lr=1.0, weight_decay=0.01), constant())
    decay = {(g["lr_scale"], g["weight_decay"]) for g in cfg["optimizer"].param_groups}
    assert decay == {(1.0, 0.01), (1.0, 0.0), (0.1, 0.01), (0.1, 0.0)}
    assert {g["lr"] for g in cfg["optimizer"].param_groups} == {1.0, 0.1}


def test_embedding_entry_matches_the_module_kind_and_an_empty_list_changes_nothing():
    model = Toy()
    exempt = {n for g in param_groups(model, ["embedding"]) for n in g.get("no_decay_names", [])}
    assert exempt == {"embed.weight"}
    assert [(g["lr_scale"], "weight_decay" in g) for g in param_groups(model)] == [(1.0, False), (0.1, False)]


def test_transformer_decoder_biases_and_layer_norms_are_exempt_tied_output_once():
    from encdec.modules.transformer import TransformerDecoder

    dec = TransformerDecoder(vocab_size=30, d_model=8, layers=1, heads=2, ffn=16, pad_id=0)
    groups = param_groups(dec, ["bias", "norm"])
    exempt = [n for g in groups for n in g.get("no_decay_names", [])]
    names = [n for n, _ in dec.named_parameters()]
    assert sorted(exempt) == sorted(n for n in names if n.endswith(".bias") or ".norm" in n or n.startswith("norm."))
    assert "embed.embed.weight" not in exempt and "layers.0.ffn.0.weight" not in exempt
    assert sum(len(g["params"]) for g in groups) == len(names)


@pytest.mark.parametrize("bad", ["bias", ["bias", ""], [3]])
def test_a_bad_no_decay_value_is_a_config_error(bad):
    with pytest.raises(ConfigError, match="optim.no_decay"):
        param_groups(Toy(), bad)


@pytest.mark.parametrize("override,message", [
    ("optim.no_decay=bias", "optim.no_decay='bias' is out of range: use a list of names"),
    ("keep_last_checkpoints=-1", "keep_last_checkpoints=-1 is out of range"),
    ("best_checkpoint.mode=up", "best_checkpoint.mode='up' is out of range"),
    ("best_checkpoint.monitor=val/loss", "best_checkpoint.mode=None: say min or max for best_checkpoint.monitor=val/loss"),
])
def test_recipe_keys_are_checked_before_any_work(override, message):
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from hydra.core.hydra_config import HydraConfig
    from omegaconf import open_dict

    import encdec.cli  # noqa: F401  (registers the resolvers)
    from conftest import CONF_DIR
    from encdec.validation import validate_train_config

    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = compose(config_name="train", overrides=["data.root=/unused", override], return_hydra_config=True)
    HydraConfig.instance().set_config(cfg)
    choices = dict(cfg.hydra.runtime.choices)
    with open_dict(cfg):
        del cfg["hydra"]
    with pytest.raises(ConfigError) as info:
        validate_train_config(cfg, CONF_DIR, choices)
    assert message in str(info.value) and "\n" not in str(info.value)
