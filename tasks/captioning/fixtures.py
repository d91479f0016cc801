"""A tiny procedural captioning set in the Karpathy JSON + image-folder layout, for tests and
smoke runs (the adapter contract test calls `tiny_data_config`)."""

from __future__ import annotations

from pathlib import Path

TINY_SIZES = {"train": 24, "val": 6, "test": 6}


def tiny_data_config(root: str | Path, sizes: dict[str, int] | None = None, captions_per_image: int = 5) -> dict:
    """`data` config (Hydra style) of a tiny procedural set generated under `root`."""
    return {
        "_target_": "encdec_tasks.captioning.scenes.ProceduralScenes",
        "root": str(root),
        "sizes": dict(sizes or TINY_SIZES),
        "image_size": 32,
        "captions_per_image": captions_per_image,
    }


# a tiny ViT (its layers/heads/ffn keys take the shared tiny-model overrides) at 32 px
TINY_TASK_OVERRIDES = [
    "encoder=vit",
    "encoder.model_name=test_vit",
    "encoder.img_size=32",
    "encoder.patch_size=8",
    "task.adapter.tokenizer.vocab_size=80",
    "model.share_embeddings=false",  # an image encoder has no token embedding to share
]
