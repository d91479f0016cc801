"""Trained models written out in other inference engines' formats (optional packages)."""
