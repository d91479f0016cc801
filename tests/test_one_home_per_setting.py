"""One home per setting: every experiment preset (and every task and objective on its own)
sets a generation length only in `decoding` (elsewhere it is an interpolation of decoding's),
translation's length rule `max_len_a` only in translation's task config, the monitored metric
only in the task (no preset repeats it), and gives one name one meaning."""

import re

import pytest
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.utils import get_method
from omegaconf import OmegaConf

from conftest import CONF_DIR
from encdec.build import build_component, run_decoding
from encdec.errors import ConfigError
from encdec.testing import compose_train

EXPERIMENTS = sorted(p.stem for p in (CONF_DIR / "experiment").glob("*.yaml"))
TASKS = sorted(p.stem for p in (CONF_DIR / "task").glob("*.yaml"))
OBJECTIVES = sorted(p.stem for p in (CONF_DIR / "objective").glob("*.yaml"))
DECODINGS = sorted(p.stem for p in (CONF_DIR / "decoding").glob("*.yaml"))

# the keys of a search's length rules (decoding/search.py: Search)
LENGTH_KEYS = ("max_len", "min_len", "max_len_a", "max_len_b")
# keys that share a length key's name but mean something else (not a generation length)
OTHER_MEANINGS = {
    "encoder.max_len": "SASRec's position table: the longest item history it reads",
}


def _presets() -> dict[str, object]:
    presets = {f"experiment={e}": [f"experiment={e}"] for e in EXPERIMENTS}
    presets.update({f"task={t}": [f"task={t}"] for t in TASKS})
    presets.update({f"objective={o}": [f"objective={o}"] for o in OBJECTIVES})
    presets.update({f"decoding={d}": [f"decoding={d}"] for d in DECODINGS})
    return presets


@pytest.fixture(scope="module")
def composed():
    return {name: compose_train(overrides) for name, overrides in _presets().items()}


def _leaves(node, path=()):
    if isinstance(node, dict):
        for key, value in node.items():
            yield from _leaves(value, (*path, str(key)))
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from _leaves(value, (*path, str(i)))
    else:
        yield ".".join(path), node


def _raw(cfg) -> dict:
    return OmegaConf.to_container(cfg, resolve=False)


def test_generation_lengths_are_set_in_decoding_and_interpolated_elsewhere(composed):
    wrong = []
    for name, cfg in composed.items():
        for key, value in _leaves(_raw(cfg)):
            leaf = key.rsplit(".", 1)[-1]
            if leaf not in LENGTH_KEYS or key.startswith("decoding.") or key in OTHER_MEANINGS:
                continue
            if key == "task.max_len_a":
                continue  # the task's own length rule: test_max_len_a_has_one_literal_home
            if value != f"${{decoding.{leaf}}}":
                wrong.append(f"{name}: {key}={value!r} (use ${{decoding.{leaf}}})")
            elif OmegaConf.select(cfg, key) != OmegaConf.select(cfg, f"decoding.{leaf}"):
                wrong.append(f"{name}: {key} resolves to another value than decoding.{leaf}")
    assert not wrong, "generation lengths set outside decoding:\n" + "\n".join(wrong)


def test_the_seqgan_presets_generate_at_the_decoding_length(composed):
    """The oracle: 20 tokens then EOS (decoding.max_len=21, min_len=20); the objective's samples
    and the textgen adapter's training cut follow decoding, with the EOS counted once."""
    cfg = composed["experiment=seqgan_oracle_seqgan"]
    objective = build_component(cfg.objective, "objective")
    assert (objective.length, objective.min_len) == (20, 20) == (cfg.data.seq_len, cfg.decoding.min_len)
    textgen = composed["experiment=textgen_multi30k_seqgan"]
    assert textgen.decoding.max_len == textgen.task.adapter.max_len == textgen.objective.max_len == 33
    assert build_component(textgen.objective, "objective").length == 32


def test_max_len_a_has_one_literal_home(composed):
    literal = re.compile(r"^\s*max_len_a:\s*[-+0-9.]", re.M)
    files = sorted(str(p.relative_to(CONF_DIR)) for p in CONF_DIR.rglob("*.yaml") if literal.search(p.read_text()))
    assert files == ["task/translation.yaml"]
    for name, cfg in composed.items():
        rule = OmegaConf.select(cfg, "decoding.max_len_a")
        translation = cfg.task.adapter._target_.endswith("TranslationTask")
        assert rule == (1.5 if translation else 0) or cfg.decoding._target_.endswith("TopKRanking"), name


def test_no_preset_repeats_the_tasks_monitored_metric(composed):
    for name, cfg in composed.items():
        own = get_method(cfg.task.adapter._target_).monitor
        for key in ("optimized_metric", "best_checkpoint.monitor"):
            chosen = OmegaConf.select(cfg, key)
            assert chosen is None or chosen != own, f"{name}: {key}={chosen} repeats the task's monitor; leave it null"


def test_one_name_one_meaning(composed):
    """`num_samples` is the sample-table rows (top level); the RL objectives' count per source
    has its own name, and the two never appear in each other's place. Every `dropout` is a rate
    (the RL objectives' switch is `keep_dropout`)."""
    for name, cfg in composed.items():
        keys = [key for key, _ in _leaves(_raw(cfg))]
        assert [k for k in keys if k.rsplit(".", 1)[-1] == "num_samples"] == ["num_samples"], name
        assert all(k == "objective.samples_per_source" for k in keys if k.endswith("samples_per_source")), name
        for key in (k for k in keys if k.rsplit(".", 1)[-1] == "dropout"):
            rate = OmegaConf.select(cfg, key)
            assert isinstance(rate, (int, float)) and not isinstance(rate, bool) and 0 <= rate < 1, f"{name}: {key}={rate!r}"


def _eval_decoding(*overrides: str):
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = compose("eval", overrides=["run_dir=/unused", *overrides])
    GlobalHydra.instance().clear()
    return cfg.decoding


def _saved(overrides: list[str]):
    """The parts of a run's saved config.yaml (written resolved) that eval reads here."""
    cfg = compose_train(overrides)
    return OmegaConf.create({k: OmegaConf.to_container(cfg[k], resolve=True) for k in ("task", "decoding")})


@pytest.mark.parametrize("decoding", ["greedy", "beam", "sampling"])
def test_eval_resolves_the_length_rule_from_the_runs_task(decoding):
    """encdec-eval / -predict compose their own decoding; its max_len_a comes from the run's
    saved task (new runs), or from the run's saved decoding (runs saved before the move)."""
    chosen = _eval_decoding(f"decoding={decoding}")
    translation, captioning = _saved(["task=translation"]), _saved(["experiment=captioning_scenes_cnn"])
    assert run_decoding(chosen, translation).max_len_a == 1.5
    assert run_decoding(chosen, captioning).max_len_a == 0
    old = _saved(["task=translation"])
    del old.task["max_len_a"]  # as saved before: the rule only in the run's decoding
    assert old.decoding.max_len_a == 1.5 and run_decoding(chosen, old).max_len_a == 1.5
    built = build_component(run_decoding(_eval_decoding(f"decoding={decoding}", "decoding.max_len=7"), old), "decoding")
    assert (built.max_len, built.max_len_a) == (7, 1.5)


@pytest.mark.parametrize("old,new,value", [
    ("objective.num_samples", "objective.samples_per_source", 4),
    ("objective.dropout", "objective.keep_dropout", "false"),
])
def test_the_old_name_of_a_renamed_key_names_the_new_one(old, new, value):
    from hydra.core.hydra_config import HydraConfig
    from omegaconf import open_dict

    import encdec.cli  # noqa: F401  (registers the resolvers)
    from encdec.validation import validate_train_config

    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = compose("train", overrides=["objective=rloo", f"+{old}={value}"], return_hydra_config=True)
    HydraConfig.instance().set_config(cfg)
    choices = dict(cfg.hydra.runtime.choices)
    with open_dict(cfg):
        del cfg["hydra"]
    GlobalHydra.instance().clear()
    with pytest.raises(ConfigError) as info:
        validate_train_config(cfg, CONF_DIR, choices)
    message = str(info.value)
    assert f"{old} is now called {new}" in message and "\n" not in message


def test_early_stopping_watches_the_metric_best_ckpt_follows(tmp_path):
    """callbacks=early_stopping names no metric: it follows the task's monitor (or
    best_checkpoint.monitor), as checkpoints/best.ckpt does; one that names its own keeps it."""
    import pytorch_lightning as pl

    from encdec.build import build_trainer

    def stopper(*overrides):
        cfg = compose_train(["callbacks=early_stopping", "~callbacks.progress", "trainer.accelerator=cpu", *overrides])
        trainer = build_trainer(cfg, tmp_path, [], "val/sacrebleu", "max")
        return next(c for c in trainer.callbacks if isinstance(c, pl.callbacks.EarlyStopping))

    assert (stopper().monitor, stopper().mode) == ("val/sacrebleu", "max")
    own = stopper("+callbacks.early_stopping.monitor=val/loss")
    assert (own.monitor, own.mode) == ("val/loss", "min")
