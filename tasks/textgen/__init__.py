"""Text generation (unconditional or prefix-conditioned): real sentences, and the SeqGAN
synthetic oracle (`encdec_tasks.textgen.synthetic`)."""

from encdec_tasks.textgen.adapter import TextGenTask

__all__ = ["TextGenTask"]
