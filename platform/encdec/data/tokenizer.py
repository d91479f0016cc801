"""The earlier name of `encdec.data.vocabulary` (imports of SubwordTokenizer keep working)."""

from encdec.data.vocabulary import MASK, SPECIALS, Vocabulary as SubwordTokenizer, read_tokenizer_file  # noqa: F401
