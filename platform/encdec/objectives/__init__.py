"""Training objectives: `loss(model, batch) -> (loss, logs)`."""

from encdec.objectives.mle import MLE

__all__ = ["MLE"]
