"""Data plumbing shared by every task: tokenizers, length bucketing, the DataModule."""
