"""int8 dynamic quantisation of a trained model for CPU serving.

Every `nn.Linear` gets int8 weights (per-tensor scale) and quantises its input on the fly per
batch (dynamic: no calibration data). Embeddings, norms and attention matmuls stay fp32. A
decoder with tied input/output embeddings keeps its fp32 embedding and gets an int8 copy of
the output projection.

`torch.ao.quantization.quantize_dynamic` is the eager-mode API PyTorch still ships (deprecated
in favour of torchao's `quantize_`, which needs an extra package and targets torch.compile);
it runs on the fbgemm / onednn CPU kernels with no extra install.
"""

from __future__ import annotations

import copy
import warnings

import torch
from torch import nn


def quantize_for_cpu(model: nn.Module) -> nn.Module:
    """A copy of `model` (left untouched) with int8 dynamic-quantised linear layers, in eval
    mode on the CPU, for decoding only (no training, no GPU)."""
    model = copy.deepcopy(model).to("cpu").eval()
    with warnings.catch_warnings():
        # the deprecation notices of the eager-mode API and of quantised tensor creation
        warnings.filterwarnings("ignore", category=UserWarning, module=r"torch\.ao\..*")
        warnings.filterwarnings("ignore", category=DeprecationWarning)
        warnings.filterwarnings("ignore", message=".*quantize.*deprecated.*")
        return torch.ao.quantization.quantize_dynamic(model, {nn.Linear}, dtype=torch.qint8, inplace=True)
