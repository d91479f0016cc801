"""Every config in conf/ composes, and every component config instantiates."""


import pytest
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import OmegaConf

import encdec.cli  # noqa: F401  (registers the first_set resolver)
from conftest import CONF_DIR

GROUPS = sorted(p.name for p in CONF_DIR.iterdir() if p.is_dir() and p.name not in {"hydra", "paths"})


def options(group: str) -> list[str]:
    return sorted(p.stem for p in (CONF_DIR / group).glob("*.yaml"))


def _compose(config_name: str, overrides: list[str]):
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = compose(config_name=config_name, overrides=overrides, return_hydra_config=True)
    HydraConfig.instance().set_config(cfg)  # as inside an app: ${hydra:...} resolves
    return cfg


@pytest.mark.parametrize("group,option", [(g, o) for g in GROUPS for o in options(g)])
def test_every_group_option_composes_into_train(group, option):
    cfg = _compose("train", [f"{group}={option}", "trainer.max_steps=100"])
    job_cfg = OmegaConf.masked_copy(cfg, [k for k in cfg if k != "hydra"])
    OmegaConf.to_container(job_cfg, resolve=True)  # every interpolation resolves
    assert cfg.hydra.run.dir and cfg.hydra.runtime.choices[group] == option


@pytest.mark.parametrize("app", ["eval", "predict"])
def test_eval_and_predict_configs_compose(app):
    cfg = _compose(app, ["run_dir=/tmp/some-run", "decoding=beam"])
    assert cfg.decoding.beam_size >= 1 and cfg.run_dir == "/tmp/some-run"


def test_decoding_options_live_only_in_the_decoding_group():
    """One source of truth: no other config file sets beam or length options."""
    keys = {"beam_size", "length_penalty", "no_repeat_ngram_size", "top_p", "top_k", "temperature"}
    for path in CONF_DIR.rglob("*.yaml"):
        if path.parent.name == "decoding":
            continue
        flat = OmegaConf.to_container(OmegaConf.load(path), resolve=False)
        text = OmegaConf.to_yaml(flat) if flat else ""
        assert not any(f"{k}:" in text for k in keys), f"{path} sets a decoding option"


@pytest.mark.parametrize("group", ["encoder", "decoder", "objective", "decoding"])
def test_component_configs_instantiate(group):
    from encdec.build import build_component

    for option in options(group):
        cfg = _compose("train", [f"{group}={option}"])
        if "model_dir" in cfg[group]:  # reads a local model folder: tests/test_pretrained_text.py builds one
            continue
        obj = build_component(cfg[group], group, vocab_size=50, pad_id=0)
        assert obj is not None


def test_unknown_component_key_names_the_key():
    from encdec.build import build_component
    from encdec.errors import ConfigError

    cfg = _compose("train", ["+encoder.layerz=2"])
    with pytest.raises(ConfigError, match=r"encoder\.layerz"):
        build_component(cfg.encoder, "encoder", vocab_size=50, pad_id=0)
