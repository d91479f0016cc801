"""The SeqGAN synthetic-oracle benchmark as a task adapter."""

from encdec_tasks.textgen.synthetic.adapter import OracleTextGenTask

__all__ = ["OracleTextGenTask"]
