"""Decoding written once for every decoder, through `init_state` / `step` / `reorder` only."""

from encdec.decoding.search import BeamSearch, Greedy, Hypotheses, Sampling

__all__ = ["BeamSearch", "Greedy", "Hypotheses", "Sampling"]
