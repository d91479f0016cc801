"""`init_from=<run dir or checkpoint>`, for every task: the new run starts from that run's
weights with that run's vocabulary (its tokenizer files are copied into the new run instead
of training new ones) and its model sizes (taken from its config.yaml), so none of them has
to be repeated on the command line. A size or tokenizer option the command line does give
must agree with that run; any difference of vocabulary is caught by its spec's fingerprint."""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path
from typing import Iterable

from omegaconf import DictConfig, OmegaConf

from encdec.checkpointing import load_init_weights, read_checkpoint, resolve_init_from
from encdec.data.vocabulary import SPEC_FILE, SPEC_KEY, check_vocabulary
from encdec.errors import ConfigError

log = logging.getLogger(__name__)

#: run-wide keys that shape the weights
MODEL_SIZE_KEYS = ("model.d_model", "model.share_embeddings")
#: encoder / decoder keys that shape the weights, taken when both runs use the same class
COMPONENT_SIZE_KEYS = (
    "d_model", "layers", "heads", "ffn", "hidden_size", "hidden", "max_len", "cell",
    "model_name", "img_size", "patch_size", "tie_embeddings", "copy",
)
#: keys that no longer exist -> what does their job now
REMOVED_KEYS = {
    "task.adapter.tokenizer.from_run": "init_from=<run> brings that run's vocabulary (and model sizes) by itself",
}
_ABSENT = object()


def _override_keys(overrides: Iterable[str]) -> list[str]:
    """The keys of command-line overrides (`key=value`, `+key=value`, `~key`)."""
    return [o.split("=", 1)[0].lstrip("+~") for o in overrides]


def refuse_removed_keys(overrides: Iterable[str]) -> None:
    """A command-line override of a key that no longer exists: one line saying what replaced it."""
    for key in _override_keys(overrides):
        if key in REMOVED_KEYS:
            raise ConfigError(f"{key} no longer exists: {REMOVED_KEYS[key]}")


def _source_run(init_from: str) -> Path | None:
    """The run directory an init_from checkpoint belongs to (None: a checkpoint on its own)."""
    run = resolve_init_from(init_from).parent.parent
    return run if (run / "config.yaml").is_file() else None


def _inherited_keys(cfg: DictConfig, saved: DictConfig) -> list[str]:
    keys = list(MODEL_SIZE_KEYS)
    for group in ("encoder", "decoder"):
        if OmegaConf.select(saved, f"{group}._target_") == OmegaConf.select(cfg, f"{group}._target_"):
            keys += [f"{group}.{k}" for k in COMPONENT_SIZE_KEYS]
    if OmegaConf.select(saved, "task.adapter._target_") == OmegaConf.select(cfg, "task.adapter._target_"):
        tokenizer = OmegaConf.select(saved, "task.adapter.tokenizer") or {}
        # `pretrained` follows the encoder's model folder, which is no size
        keys += [f"task.adapter.tokenizer.{k}" for k in tokenizer if k != "pretrained"]
    return [
        k for k in keys
        if OmegaConf.select(saved, k, default=_ABSENT) is not _ABSENT and OmegaConf.select(cfg, k, default=_ABSENT) is not _ABSENT
    ]


def adopt_source_config(cfg: DictConfig, overrides: Iterable[str]) -> None:
    """Sets, in `cfg`, the model sizes and tokenizer options of the init_from run, except those
    the command line gave (`overrides`, Hydra's task overrides); a given value that differs
    from that run's is a ConfigError naming the key and both values."""
    run = _source_run(cfg.init_from)
    if run is None:
        return
    saved = OmegaConf.load(run / "config.yaml")
    given = set(_override_keys(o for o in overrides if "=" in o))
    taken = []
    for key in _inherited_keys(cfg, saved):
        theirs, mine = OmegaConf.select(saved, key), OmegaConf.select(cfg, key)
        if key not in given:
            OmegaConf.update(cfg, key, theirs, merge=False)
            taken.append(f"{key}={theirs}")
        elif mine != theirs:
            raise ConfigError(
                f"{key}={mine} but init_from={cfg.init_from} has {key}={theirs}: its weights and vocabulary "
                f"need that run's value; leave {key} out (init_from brings it)"
            )
    log.info("init_from: %s, as in %s", ", ".join(taken), run)


def copy_vocabulary_files(init_from: str, run_dir: Path) -> None:
    """The init_from run's vocabulary files, into `run_dir`: the task loads them instead of
    training its own, so token ids mean the same in both runs."""
    source = _source_run(init_from)
    if source is None or source.resolve() == Path(run_dir).resolve():
        return
    spec_file = source / SPEC_FILE
    if spec_file.is_file():
        names = {s["file"] for s in json.loads(spec_file.read_text(encoding="utf-8")).values() if s.get("file")}
    else:  # a run written before vocabulary specs
        names = {p.name for p in source.glob("*tokenizer*.json")} | ({"items.json"} & {p.name for p in source.iterdir()})
    for name in sorted(names):
        shutil.copyfile(source / name, Path(run_dir) / name)
    if names:
        log.info("init_from: vocabulary %s from %s", ", ".join(sorted(names)), source)


def load_init_from(model, adapter, init_from: str) -> tuple[list[str], list[str]]:
    """Checks the task's vocabularies against the init_from checkpoint's spec (one written
    before specs has its run's files, copied), then loads its weights."""
    checkpoint = read_checkpoint(resolve_init_from(init_from))
    check_vocabulary(checkpoint.get(SPEC_KEY), adapter.vocabularies(), f"init_from={init_from}",
                     "leave the task.adapter.tokenizer options out so init_from brings that run's vocabulary")
    return load_init_weights(model, init_from, checkpoint)
