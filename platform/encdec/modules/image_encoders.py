"""Image encoders from timm: a CNN's last feature map or a ViT's patch tokens become the memory.

`timm.create_model(name, pretrained=False, ...)` is the one way to get a backbone; any timm
model name works (`encoder.model_name`), architecture options go through `model_kwargs`.
The pixels these encoders read are prepared with `input_transform`, built from timm's own
data config for the same model (input size, resize/crop, mean/std), so a task adapter and the
encoder agree on preprocessing by naming the same `model_name` / `img_size`.
"""

from __future__ import annotations

from typing import Any, Callable

import timm
import torch
from timm.data import create_transform, resolve_data_config
from torch import Tensor, nn

from encdec.errors import ConfigError
from encdec.types import EncoderOutput


def timm_data_config(model_name: str, img_size: int | None = None) -> dict[str, Any]:
    """timm's data config of `model_name` (mean/std, interpolation, crop), at `img_size` pixels
    when given: a ViT built with img_size=64 still reports its pretrained 224 otherwise."""
    if not timm.is_model(timm.models.parse_model_name(model_name)[1]):
        raise ConfigError(f"encoder.model_name={model_name!r} is not a timm model (see timm.list_models())")
    pretrained_cfg = timm.get_pretrained_cfg(model_name)
    args = {"input_size": (3, img_size or 224, img_size or 224)} if img_size or pretrained_cfg is None else {}
    return resolve_data_config(args, pretrained_cfg=pretrained_cfg.to_dict() if pretrained_cfg else None)


def input_transform(model_name: str, img_size: int | None = None) -> Callable:
    """PIL image -> normalised float tensor [3, H, W], as timm evaluates `model_name`.

    The evaluation transform serves training too: random flips and crops would break
    captions that name positions ("to the left of").
    """
    return create_transform(**timm_data_config(model_name, img_size), is_training=False)


def _create_backbone(model_name: str, pretrained: bool, checkpoint_path: str | None, **kwargs) -> nn.Module:
    try:
        return timm.create_model(
            model_name, pretrained=pretrained, checkpoint_path=checkpoint_path or "",
            num_classes=0, global_pool="", **kwargs,
        )
    except (RuntimeError, OSError, ValueError, TypeError) as exc:
        if pretrained and not isinstance(exc, TypeError):
            # offline, timm's hub download fails deep inside huggingface_hub: say what to do
            raise ConfigError(
                f"encoder.pretrained=true: no pretrained weights for {model_name!r} could be loaded "
                f"({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}). Without a reachable "
                "model hub, use encoder.pretrained=false (random init), or point "
                "encoder.checkpoint_path at a local weights file"
            ) from None
        if checkpoint_path:
            raise ConfigError(f"encoder.checkpoint_path={checkpoint_path}: cannot load ({exc})") from None
        raise ConfigError(f"encoder: timm cannot build {model_name!r} with {kwargs}: {exc}") from None


class _TimmImageEncoder(nn.Module):
    """Backbone -> [B, S, C] features -> Linear to d_model -> LayerNorm (memory).

    freeze_backbone: backbone weights get requires_grad=False (left out of the optimiser)
      and its normalisation layers stay in eval mode.
    backbone_lr_scale: the backbone's learning rate relative to the peak (optim.param_groups
      reads the `lr_scale` attribute); the projection trains at the full rate.
    The summary (mean over positions) initialises recurrent decoders.
    """
    reads = "pixels"  # what its `src` holds: checked against the task before any work

    def __init__(
        self,
        model_name: str,
        d_model: int = 256,
        img_size: int | None = None,
        pretrained: bool = False,
        checkpoint_path: str | None = None,
        freeze_backbone: bool = False,
        backbone_lr_scale: float = 1.0,
        dropout: float = 0.1,
        model_kwargs: dict[str, Any] | None = None,
    ):
        super().__init__()
        timm_data_config(model_name, img_size)  # an unknown model name fails here, clearly
        self.model_name, self.img_size = model_name, img_size
        self.backbone = _create_backbone(model_name, pretrained, checkpoint_path, **self._backbone_kwargs(img_size, model_kwargs or {}))
        self.backbone.lr_scale = backbone_lr_scale
        self.freeze_backbone = freeze_backbone
        if freeze_backbone:
            self.backbone.requires_grad_(False)
        self.proj = nn.Linear(self.backbone.num_features, d_model)
        self.norm = nn.LayerNorm(d_model)
        self.drop = nn.Dropout(dropout)

    def _backbone_kwargs(self, img_size: int | None, model_kwargs: dict[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in model_kwargs.items() if v is not None}

    def train(self, mode: bool = True) -> "_TimmImageEncoder":
        super().train(mode)
        if self.freeze_backbone:
            self.backbone.eval()  # frozen BatchNorm keeps its running statistics
        return self

    def features(self, images: Tensor) -> tuple[Tensor, tuple[int, int] | None]:
        """[B, S, C] features and their (H, W) grid, if they form one."""
        raise NotImplementedError

    def forward(self, src: Tensor, src_mask: Tensor | None = None) -> EncoderOutput:
        feats, grid = self.features(src)
        memory = self.drop(self.norm(self.proj(feats)))
        mask = torch.ones(memory.shape[:2], dtype=torch.bool, device=memory.device)
        return EncoderOutput(memory=memory, memory_mask=mask, summary=memory.mean(dim=1), grid=grid)


class CNNEncoder(_TimmImageEncoder):
    """A timm CNN's last feature map [B, C, H, W] as H*W memory vectors (row-major).

    img_size only sets the preprocessing size (CNNs take any size); a finer grid comes from
    model_kwargs.output_stride (e.g. 16) on models that support it.
    """

    def features(self, images: Tensor) -> tuple[Tensor, tuple[int, int]]:
        fmap = self.backbone.forward_features(images)
        if fmap.dim() != 4:
            raise ConfigError(
                f"encoder=cnn: {self.model_name!r} returns features of shape {tuple(fmap.shape)}, "
                "not a [B, C, H, W] map; use encoder=vit for token models"
            )
        return fmap.flatten(2).transpose(1, 2), (fmap.size(2), fmap.size(3))


class ViTEncoder(_TimmImageEncoder):
    """A timm ViT's patch tokens (class/register tokens dropped) as the memory.

    layers / heads / ffn: optional overrides of the timm model's depth, number of heads and
    MLP width (named like the Transformer encoder's keys); null keeps the model's own.
    """

    def __init__(self, model_name: str, *args, layers: int | None = None, heads: int | None = None,
                 ffn: int | None = None, patch_size: int | None = None, **kwargs):
        self._arch = {"depth": layers, "num_heads": heads, "patch_size": patch_size, "ffn": ffn}
        super().__init__(model_name, *args, **kwargs)

    def _backbone_kwargs(self, img_size: int | None, model_kwargs: dict[str, Any]) -> dict[str, Any]:
        kwargs = {k: v for k, v in self._arch.items() if v is not None and k != "ffn"}
        if img_size:
            kwargs["img_size"] = img_size
        if self._arch["ffn"] is not None:
            width = timm.create_model(self.model_name, pretrained=False, **{**kwargs, "depth": 1}).num_features
            kwargs["mlp_ratio"] = self._arch["ffn"] / width
        return {**kwargs, **{k: v for k, v in model_kwargs.items() if v is not None}}

    def features(self, images: Tensor) -> tuple[Tensor, tuple[int, int] | None]:
        tokens = self.backbone.forward_features(images)
        if tokens.dim() != 3:
            raise ConfigError(
                f"encoder=vit: {self.model_name!r} returns features of shape {tuple(tokens.shape)}, "
                "not [B, tokens, C]; use encoder=cnn for feature-map models"
            )
        patches = tokens[:, getattr(self.backbone, "num_prefix_tokens", 0):]
        grid = getattr(getattr(self.backbone, "patch_embed", None), "grid_size", None)
        if grid is None or grid[0] * grid[1] != patches.size(1):
            return patches, None
        return patches, (int(grid[0]), int(grid[1]))
