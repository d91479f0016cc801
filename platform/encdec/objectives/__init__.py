"""Training objectives. Each derives from `Objective` (`loss(model, batch, ctx) -> (loss,
logs)`) or, when it steps its own optimisers, `ManualObjective` (see `objectives.base`)."""

from encdec.objectives.base import ManualObjective, Objective, StepContext, StepResult
from encdec.objectives.denoise import Denoise
from encdec.objectives.mle import MLE
from encdec.objectives.policy_gradient import PolicyGradient

__all__ = ["Denoise", "MLE", "ManualObjective", "Objective", "PolicyGradient", "StepContext", "StepResult"]
