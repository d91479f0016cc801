"""encdec: one encoder-decoder core shared by every task adapter."""

from encdec.types import Batch, EncoderOutput

__all__ = ["Batch", "EncoderOutput"]
__version__ = "0.1.0"
