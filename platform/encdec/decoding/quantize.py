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

from encdec.errors import ConfigError


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


class PackedLinear(nn.Module):
    """An `nn.Linear` for CPU inference whose fp32 weight is prepacked once into oneDNN's
    blocked layout. PyTorch's eager fp32 linear calls MKL, which on non-Intel CPUs runs its
    AVX2 kernels even where AVX-512 is there; oneDNN uses the CPU's widest path (about 2-3x
    the GEMM rate on an AVX-512 AMD CPU, bench/RESULTS.md). Still fp32: results differ from
    nn.Linear by summation order only. The ops are the ones torch.compile's CPU freezing
    pass emits (`torch.ops.mkldnn`), called here without compiling."""

    def __init__(self, linear: nn.Linear, batch_hint: int = 128):
        super().__init__()
        self.in_features, self.out_features = linear.in_features, linear.out_features
        weight = linear.weight.detach().float().contiguous()
        self.register_buffer("packed", torch.ops.mkldnn._reorder_linear_weight(weight, batch_hint), persistent=False)
        bias = None if linear.bias is None else linear.bias.detach().float().contiguous()
        self.register_buffer("bias", bias, persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dtype != torch.float32 or torch.is_autocast_enabled("cpu"):
            raise RuntimeError("onednn packed linear layers run fp32 only (decoding.dtype=fp32)")
        return torch.ops.mkldnn._linear_pointwise(x.contiguous(), self.packed, self.bias, "none", [], "")


def onednn_available() -> bool:
    return torch.backends.mkldnn.is_available() and hasattr(torch.ops.mkldnn, "_linear_pointwise")


def pack_for_cpu(model: nn.Module) -> nn.Module:
    """A copy of `model` (left untouched) in eval mode on the CPU whose `nn.Linear` layers are
    PackedLinear (fp32, oneDNN), for decoding only. Tied weights get a packed copy each; the
    embedding they share stays as it is."""
    model = copy.deepcopy(model).to("cpu").eval()
    for parent in list(model.modules()):
        for name, child in list(parent.named_children()):
            if type(child) is nn.Linear:
                setattr(parent, name, PackedLinear(child))
    return model


def for_serving(model: nn.Module, int8: bool = False, onednn: bool = False, fp32: bool = True) -> nn.Module:
    """The model encdec-eval / encdec-predict decode with: as trained, int8 (`int8=true`) or
    with oneDNN-packed fp32 linear layers (`onednn=true`, which needs fp32 throughout)."""
    if int8 and onednn:
        raise ConfigError("int8=true and onednn=true both replace the linear layers: choose one")
    if onednn and not fp32:
        raise ConfigError("onednn=true runs fp32 only: set decoding.dtype=fp32 (and precision=32-true) or onednn=false")
    if onednn:
        if not onednn_available():
            raise ConfigError("onednn=true: this PyTorch build has no oneDNN linear kernels; leave onednn=false")
        return pack_for_cpu(model)
    return quantize_for_cpu(model) if int8 else model
