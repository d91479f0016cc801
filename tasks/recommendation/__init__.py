"""Next-item recommendation: a user's item history in, ranked next items out."""

from encdec_tasks.recommendation.adapter import RecommendationTask

__all__ = ["RecommendationTask"]
