"""Image captioning: Karpathy-split JSON (COCO, Flickr8k/30k) or procedural scenes -> captions."""

from encdec_tasks.captioning.adapter import CaptioningTask

__all__ = ["CaptioningTask"]
