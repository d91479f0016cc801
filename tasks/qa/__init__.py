"""Question answering: SQuAD JSON (v1.1/v2.0) and a generated bAbI-like set."""

from encdec_tasks.qa.adapter import QAReference, QATask

__all__ = ["QATask", "QAReference"]
