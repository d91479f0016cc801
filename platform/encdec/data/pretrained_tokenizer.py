"""The tokenizer of a pretrained model folder (tokenizer.json, Hugging Face `tokenizers`).

Same interface as SubwordTokenizer (pad/bos/eos/unk ids, encode, decode, save), so a task
can switch to a pretrained encoder's vocabulary by config alone. BERT-style specials map to
the four roles: [PAD] pad, [CLS] bos, [SEP] eos (and separator), [UNK] unk.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterable

from tokenizers import Tokenizer

from encdec.data.tokenizer import SubwordTokenizer, read_tokenizer_file
from encdec.errors import ConfigError

ROLES = {"pad": ("[PAD]", "<pad>"), "bos": ("[CLS]", "<s>"), "eos": ("[SEP]", "</s>"), "unk": ("[UNK]", "<unk>")}


class PretrainedTokenizer(SubwordTokenizer):
    def __init__(self, tokenizer: Tokenizer, source: str = "tokenizer.json"):
        self.tok = tokenizer
        ids = {}
        for role, names in ROLES.items():
            found = [tokenizer.token_to_id(n) for n in names if tokenizer.token_to_id(n) is not None]
            if not found:
                raise ConfigError(f"{source}: no {role} token (looked for {' / '.join(names)})")
            ids[role] = found[0]
        self.pad_id, self.bos_id, self.eos_id, self.unk_id = ids["pad"], ids["bos"], ids["eos"], ids["unk"]
        self.sep_id = self.eos_id
        masks = [tokenizer.token_to_id(n) for n in ("[MASK]", "<mask>") if tokenizer.token_to_id(n) is not None]
        self.mask_id = masks[0] if masks else None  # what denoising pre-training writes over
        # source-side truncation and padding are the task's business (and logged there)
        self.tok.no_truncation()
        self.tok.no_padding()

    @classmethod
    def from_model_dir(cls, model_dir: str | Path, key: str = "task.adapter.tokenizer.pretrained") -> "PretrainedTokenizer":
        path = Path(model_dir).expanduser() / "tokenizer.json"
        if not path.is_file():
            raise ConfigError(
                f"{key}={model_dir}: no tokenizer.json in that folder (a Hugging Face model folder "
                "saved with a fast tokenizer is needed)"
            )
        return cls(read_tokenizer_file(path), str(path))

    @classmethod
    def load(cls, path: str | Path) -> "PretrainedTokenizer":
        return cls(read_tokenizer_file(path), str(path))

    def decode(self, ids: Iterable[int]) -> str:
        return self.decode_batch([list(ids)])[0]
