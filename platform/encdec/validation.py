"""Check a composed training config before any expensive work (reading data, training a
tokenizer, building a model): unknown keys (`+key=` included), wrong types, out-of-range
values and impossible pairings each stop the run with one line naming the key."""

from __future__ import annotations

import inspect
import math
import typing
from pathlib import Path
from typing import Any, Iterable

from hydra.utils import get_method, instantiate
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from encdec.errors import ConfigError

# Component groups whose keys are the keyword arguments of their `_target_`.
COMPONENTS = ("data", "task.adapter", "encoder", "decoder", "objective", "decoding", "optim.optimizer", "optim.schedule")


def _target(cfg: DictConfig, key: str):
    try:
        return get_method(cfg._target_)
    except Exception as exc:
        raise ConfigError(f"{key}._target_={cfg.get('_target_')!r} cannot be imported: {exc}") from None


def accepted_parameters(target: Any) -> tuple[dict[str, inspect.Parameter], bool]:
    """Named parameters a callable accepts, following `**kwargs` up a class hierarchy
    (BeamSearch(**kwargs) -> Search(max_len, ...)); takes_all when no class names them all."""
    signatures = (
        [(c.__init__, inspect.signature(c.__init__)) for c in inspect.getmro(target) if "__init__" in vars(c) and c is not object]
        if inspect.isclass(target)
        else [(target, inspect.signature(target))]
    )
    params: dict[str, inspect.Parameter] = {}
    takes_all = True
    for fn, sig in signatures:
        hints = _type_hints(fn)
        named = {
            k: p.replace(annotation=hints.get(k, inspect.Parameter.empty))
            for k, p in sig.parameters.items()
            if p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL) and k != "self"
        }
        params = {**named, **params}
        if not any(p.kind is p.VAR_KEYWORD for p in sig.parameters.values()):
            takes_all = False
            break
    return params, takes_all


def _type_hints(fn) -> dict[str, Any]:
    try:
        return typing.get_type_hints(fn)
    except Exception:  # unresolvable forward references: no type checks for that callable
        return {}


def _matches(value: Any, annotation: Any) -> bool:
    """Whether a plain config value (int, float, str, bool, None, list, dict) can stand for
    `annotation`; anything this cannot judge counts as a match."""
    if annotation is inspect.Parameter.empty or annotation is Any:
        return True
    origin = typing.get_origin(annotation)
    if origin is typing.Union or str(origin) == "<class 'types.UnionType'>":
        return any(_matches(value, a) for a in typing.get_args(annotation))
    if origin is typing.Literal:
        return value in typing.get_args(annotation)
    if annotation is type(None):
        return value is None
    if annotation is bool:
        return isinstance(value, bool)
    if annotation is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if annotation is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if annotation is str:
        return isinstance(value, str)
    if origin in (list, tuple, typing.Sequence) or annotation in (list, tuple):
        return isinstance(value, (list, tuple))
    if origin is dict or annotation is dict:
        return isinstance(value, dict)
    return True


def _type_name(annotation: Any) -> str:
    text = getattr(annotation, "__name__", None) or str(annotation)
    return text.replace("typing.", "").replace("NoneType", "null")


def check_known_keys(names: Iterable[Any], target: Any, key: str) -> None:
    """Every name (a config key under `key`) is a parameter of `target`."""
    params, takes_all = accepted_parameters(target)
    unknown = [f"{key}.{n}" for n in names if not str(n).startswith("_") and not takes_all and n not in params]
    if unknown:
        raise ConfigError(
            f"unknown key{'s' if len(unknown) > 1 else ''} {', '.join(unknown)} for "
            f"{getattr(target, '__name__', target)}; valid keys: {', '.join(params)}"
        )


def check_keys(values: dict, target: Any, key: str, ignore: Iterable[str] = ()) -> None:
    """Every key is a parameter of `target` and its value fits the parameter's type."""
    check_known_keys([n for n in values if n not in ignore], target, key)
    params, _ = accepted_parameters(target)
    for name, value in values.items():
        if str(name).startswith("_") or name in ignore or name not in params:
            continue
        if isinstance(value, dict) and "_target_" in value:
            continue  # a nested component, built by its owner
        if not _matches(value, params[name].annotation):
            raise ConfigError(
                f"{key}.{name}={value!r} is not a valid {_type_name(params[name].annotation)}"
            )


def _get(values: dict, dotted: str) -> Any:
    for part in dotted.split("."):
        if not isinstance(values, dict) or part not in values:
            return None
        values = values[part]
    return values


def _schema(conf_dir: Path) -> dict:
    """train.yaml itself: the keys a run may have outside the config groups."""
    schema = OmegaConf.to_container(OmegaConf.load(Path(conf_dir) / "train.yaml"), resolve=False)
    schema.pop("defaults", None)
    return schema


def _train_groups(conf_dir: Path) -> set[str]:
    """The config groups train.yaml's defaults list composes (task, logger, callbacks...)."""
    groups = set()
    for entry in OmegaConf.load(Path(conf_dir) / "train.yaml").get("defaults", []):
        if not OmegaConf.is_dict(entry):  # `_self_`
            continue
        for key in entry:
            groups.add(str(key).removeprefix("override ").lstrip("/").split("@")[0].split("/")[0])
    return groups


def _check_known(values: dict, schema: dict, groups: set[str]) -> None:
    for name in values:
        if name in groups or name == "hydra":
            continue
        if name not in schema:
            known = ", ".join(sorted(set(schema) | groups))
            raise ConfigError(f"unknown key {name} (a +{name}=... override?); valid top-level keys: {known}")
        if isinstance(schema[name], dict) and isinstance(values[name], dict):
            for sub in values[name]:
                if sub not in schema[name]:
                    raise ConfigError(
                        f"unknown key {name}.{sub}; valid keys under {name}: {', '.join(schema[name])}"
                    )


# old name -> new name of renamed keys: a command line, experiment or resumed run that still
# uses the old name stops with the new one
RENAMED = {
    # `num_samples` is the number of sample-table rows; the RL objectives' count per source was
    # renamed so one name has one meaning
    "objective.num_samples": "objective.samples_per_source",
    # a switch, not a rate like model.dropout
    "objective.dropout": "objective.keep_dropout",
}


def _check_renamed(cfg: DictConfig) -> None:
    for old, new in RENAMED.items():
        if OmegaConf.select(cfg, old, default="__absent__", throw_on_missing=False) != "__absent__":
            raise ConfigError(f"{old} is now called {new}: rename it (on the command line, in the experiment yaml or in a resumed run's config.yaml)")


# (key, test, what a valid value is)
RANGES = [
    ("loader.max_tokens", lambda v: isinstance(v, int) and v >= 1, "an integer >= 1"),
    ("loader.max_sentences", lambda v: v is None or (isinstance(v, int) and v >= 1), "null or an integer >= 1"),
    ("loader.eval_max_tokens", lambda v: v is None or (isinstance(v, int) and v >= 1), "null or an integer >= 1"),
    ("loader.num_workers", lambda v: isinstance(v, int) and v >= 0, "an integer >= 0"),
    ("model.d_model", lambda v: v is None or (isinstance(v, int) and v >= 1), "an integer >= 1"),
    ("model.dropout", lambda v: isinstance(v, (int, float)) and 0 <= v < 1, "a number in [0, 1)"),
    ("model.compile", lambda v: isinstance(v, bool), "true or false"),
    ("model.float32_matmul_precision", lambda v: v in ("highest", "high", "medium"), "highest, high or medium"),
    ("num_samples", lambda v: isinstance(v, int) and v >= 0, "an integer >= 0"),
    ("task.max_len_a", lambda v: isinstance(v, (int, float)) and not isinstance(v, bool) and v >= 0, "a number >= 0 (0: no cap)"),
    ("checkpoint_every_n_steps", lambda v: v is None or (isinstance(v, int) and v >= 1), "null or an integer >= 1"),
    ("checkpoint_every_minutes", lambda v: v is None or (isinstance(v, (int, float)) and v > 0), "null or minutes > 0"),
    ("keep_last_checkpoints", lambda v: isinstance(v, int) and not isinstance(v, bool) and v >= 0, "an integer >= 0"),
    ("best_checkpoint.mode", lambda v: v in (None, "min", "max"), "min, max or null"),
    ("optim.no_decay", lambda v: isinstance(v, list) and all(isinstance(w, str) and w for w in v), "a list of names, e.g. [bias, norm]"),
    ("nonfinite.max_skipped", lambda v: isinstance(v, int) and v >= 0, "an integer >= 0"),
    ("trainer.max_steps", lambda v: isinstance(v, int) and v >= -1 and v != 0, "-1 (no limit) or an integer >= 1"),
    ("trainer.max_epochs", lambda v: v is None or (isinstance(v, int) and v >= -1 and v != 0), "-1, null or an integer >= 1"),
    ("trainer.accumulate_grad_batches", lambda v: isinstance(v, int) and v >= 1, "an integer >= 1"),
    ("trainer.gradient_clip_val", lambda v: v is None or (isinstance(v, (int, float)) and v >= 0), "null or a number >= 0"),
]


def _check_optimizer(cfg: DictConfig) -> None:
    """Build the optimiser and schedule on a dummy parameter: the optimiser's own argument
    checks (negative learning rate, betas...) then speak before any work is done."""
    import torch

    try:
        opt = instantiate(cfg.optim.optimizer)(params=[torch.zeros(1, requires_grad=True)])
        lr = opt.param_groups[0]["lr"]
    except (ValueError, TypeError) as exc:
        raise ConfigError(f"optim.optimizer: {exc}") from None
    if not (isinstance(lr, (int, float)) and math.isfinite(lr) and lr > 0):
        raise ConfigError(f"optim.optimizer.lr={lr} must be a number > 0")
    try:
        factors = [instantiate(cfg.optim.schedule)(step) for step in (0, 1, 10, 1000)]
    except (ValueError, TypeError, ZeroDivisionError) as exc:
        raise ConfigError(f"optim.schedule: {exc}") from None
    if not all(isinstance(f, (int, float)) and math.isfinite(f) and f >= 0 for f in factors):
        raise ConfigError(f"optim.schedule gives learning-rate factors {factors} at steps 0, 1, 10, 1000; they must be finite and >= 0")


def _check_compiler(cfg: DictConfig) -> None:
    """model.compile=true on a CPU: torch.compile's inductor backend builds C++ kernels, so a
    compiler must be there (looked up as inductor does: $CXX, else g++) before any work."""
    import torch

    accelerator = cfg.trainer.get("accelerator", "auto")
    on_cpu = accelerator == "cpu" or (accelerator == "auto" and not torch.cuda.is_available())
    if not (cfg.model.get("compile") and on_cpu):
        return
    from torch._inductor.cpp_builder import get_cpp_compiler
    from torch._inductor.exc import InvalidCxxCompiler

    try:
        get_cpp_compiler()
    except InvalidCxxCompiler as exc:
        first_line = str(exc).splitlines()[0]
        raise ConfigError(
            f"model.compile=true needs a C++ compiler on a CPU ({first_line}): install g++ or set CXX, "
            "or set model.compile=false"
        ) from None


def _check_pairing(cfg: DictConfig, choices: dict) -> None:
    """An encoder declares what it reads (`reads`), a task what its sources are
    (`source_kind`); a pairing that cannot work is refused here, not mid-batch."""
    encoder, adapter = _target(cfg.encoder, "encoder"), _target(cfg.task.adapter, "task.adapter")
    reads, gives = getattr(encoder, "reads", "tokens"), getattr(adapter, "source_kind", "tokens")
    if reads not in ("anything", gives):
        raise ConfigError(
            f"encoder={choices.get('encoder') or encoder.__name__} reads {reads} but "
            f"task={choices.get('task') or adapter.__name__} gives {gives}: "
            f"pick an encoder for {gives} (see conf/encoder/)"
        )


def validate_train_config(cfg: DictConfig, conf_dir: str | Path, choices: dict) -> None:
    """`choices`: the config group options of this run (Hydra's runtime.choices)."""
    _check_renamed(cfg)
    try:
        values = OmegaConf.to_container(cfg, resolve=True, throw_on_missing=True)
    except OmegaConfBaseException as exc:
        key = getattr(exc, "full_key", None)
        msg = str(exc).splitlines()[0]
        raise ConfigError(f"{key}: {msg}" if key else msg) from None
    # a group given several options (logger=[csv,tensorboard]) has no entry in the choices
    _check_known(values, _schema(conf_dir), {g.split("/")[0] for g in choices} | _train_groups(conf_dir))
    for key in COMPONENTS:
        node = OmegaConf.select(cfg, key)
        if node is not None:
            check_keys(_get(values, key), _target(node, key), key)
    for group in ("logger", "callbacks"):
        for name, node in (cfg.get(group) or {}).items():
            if node is not None:
                check_keys(values[group][name], _target(node, f"{group}.{name}"), f"{group}.{name}")
    import pytorch_lightning as pl

    check_keys(values.get("trainer") or {}, pl.Trainer, "trainer")
    for key, ok, what in RANGES:
        value = _get(values, key)
        if OmegaConf.select(cfg, key, default="__absent__") != "__absent__" and not ok(value):
            raise ConfigError(f"{key}={value!r} is out of range: use {what}")
    _check_optimizer(cfg)
    _check_compiler(cfg)
    _check_pairing(cfg, dict(choices))
    from encdec.build import checkpoint_monitor  # (build imports this module)

    checkpoint_monitor(cfg, _target(cfg.task.adapter, "task.adapter"))  # a mode for another metric
