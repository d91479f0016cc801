"""encdec: one encoder-decoder core shared by every task adapter.

`encdec.train`, `encdec.evaluate` and `encdec.load_run` (see encdec.api) run the apps from
Python; they are imported on first use, so `import encdec` stays light."""

from encdec.types import Batch, EncoderOutput

__all__ = ["Batch", "EncoderOutput", "train", "evaluate", "load_run"]
__version__ = "0.1.0"


def __getattr__(name: str):
    if name in ("train", "evaluate", "load_run", "compose"):
        from encdec import api

        return getattr(api, name)
    raise AttributeError(f"module 'encdec' has no attribute {name!r}")
