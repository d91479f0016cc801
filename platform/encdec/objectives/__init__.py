"""Training objectives: `loss(model, batch) -> (loss, logs)`, or, for objectives that need the
whole module (RL: the adapter's reward and the searches), `training_step(module, batch, i)`."""

from encdec.objectives.denoise import Denoise
from encdec.objectives.mle import MLE
from encdec.objectives.policy_gradient import PolicyGradient

__all__ = ["Denoise", "MLE", "PolicyGradient"]
