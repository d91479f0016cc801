"""Rewards for policy-gradient objectives.

A reward is a plain function `(sources, outputs, references) -> list[float]`, one value per
output, over the adapter's decoded outputs (strings, item lists...). The default is the task
adapter's own `reward` (its metric at sentence level); several can be mixed by weight:

    objective:
      rewards:
        - {_target_: encdec.objectives.rewards.Weighted, weight: 0.5}        # adapter.reward
        - {_target_: encdec.objectives.rewards.Weighted, weight: 0.5,
           fn: {_target_: encdec_tasks.translation.rewards.sentence_chrf, _partial_: true}}
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

from encdec.errors import ConfigError

RewardFn = Callable[[list[Any], list[Any], list[Any]], list[float]]


class Weighted:
    """`weight * fn(...)`; `fn=None` stands for the task adapter's `reward`, filled in by
    `bind` once the objective knows its adapter."""

    def __init__(self, fn: RewardFn | None = None, weight: float = 1.0, name: str | None = None):
        self.fn, self.weight = fn, float(weight)
        self.name = name or ("task" if fn is None else getattr(fn, "__name__", None) or getattr(getattr(fn, "func", None), "__name__", "reward"))

    def bind(self, adapter: Any) -> "Weighted":
        if self.fn is None:
            return Weighted(adapter.reward, self.weight, self.name)
        return self


def as_weighted(rewards: Sequence[Any] | None) -> list[Weighted]:
    """Config `objective.rewards` -> list of Weighted (None: the adapter's reward alone)."""
    if rewards is None or len(rewards) == 0:
        return [Weighted()]
    out = []
    for i, r in enumerate(rewards):
        if isinstance(r, Weighted):
            out.append(r)
        elif callable(r):
            out.append(Weighted(r))
        else:
            raise ConfigError(
                f"objective.rewards[{i}] is {r!r}; expected a callable reward or "
                "{_target_: encdec.objectives.rewards.Weighted, fn: ..., weight: ...}"
            )
    return out


def mix(rewards: Sequence[Weighted], sources: list, outputs: list, references: list) -> tuple[list[float], dict[str, list[float]]]:
    """Weighted sum of every reward, plus each reward's own values (for logging)."""
    total = [0.0] * len(outputs)
    parts: dict[str, list[float]] = {}
    for r in rewards:
        values = [float(v) for v in r.fn(sources, outputs, references)]
        if len(values) != len(outputs):
            raise ValueError(f"reward {r.name} returned {len(values)} values for {len(outputs)} outputs")
        parts[r.name] = values
        total = [t + r.weight * v for t, v in zip(total, values)]
    return total, parts
