"""Captioned images in the Karpathy-split JSON layout (COCO, Flickr8k, Flickr30k) + an image folder.

`dataset_coco.json` / `dataset_flickr8k.json` / `dataset_flickr30k.json` hold
{"images": [{"filepath"?, "filename", "split", "sentences": [{"tokens", "raw"}, ...]}, ...]};
an image lives at <image_root>/<filepath>/<filename> (Flickr files have no filepath).
Images that are missing, corrupt or unreadable are reported with their path, then skipped or
stop the run (`on_bad_image: skip|error`), before training starts, never mid-epoch.
"""

from __future__ import annotations

import logging
import urllib.request
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

from PIL import Image

from encdec.data.text_files import read_json, require_examples
from encdec.errors import ConfigError, DataError

log = logging.getLogger(__name__)

# Karpathy's splits and the public image archives (used only when the files are absent and
# `download` names one of these; Flickr30k's images need a request form, so no URL).
SPLITS_ZIP = "https://cs.stanford.edu/people/karpathy/deepimagesent/caption_datasets.zip"
IMAGE_ZIPS = {
    "coco": ["http://images.cocodataset.org/zips/train2014.zip", "http://images.cocodataset.org/zips/val2014.zip"],
    "flickr8k": ["https://github.com/jbrownlee/Datasets/releases/download/Flickr8k/Flickr8k_Dataset.zip"],
}
BAD_IMAGE_POLICIES = ("skip", "error")


@dataclass
class CaptionedImage:
    path: Path
    captions: list[str]
    image_id: str


def check_policy(on_bad_image: str) -> str:
    if on_bad_image not in BAD_IMAGE_POLICIES:
        raise ConfigError(f"data.on_bad_image must be one of {BAD_IMAGE_POLICIES}, got {on_bad_image!r}")
    return on_bad_image


def load_image(path: Path) -> Image.Image:
    """The RGB image at `path`; DataError naming the path when it cannot be decoded."""
    try:
        with Image.open(path) as im:
            return im.convert("RGB")
    except FileNotFoundError:
        raise DataError(f"{path}: image file not found") from None
    except (OSError, ValueError, Image.DecompressionBombError) as exc:
        raise DataError(f"{path}: unreadable image ({exc})") from None


def image_problem(path: Path) -> str | None:
    """Why `path` is not a usable image (missing, truncated, not an image), or None.

    PIL's verify() checks the file's structure without decoding every pixel, so a whole
    COCO split is checked in seconds; a file that still fails to decode later is handled
    by the adapter under the same policy.
    """
    if not path.is_file():
        return "file not found"
    try:
        with Image.open(path) as im:
            im.verify()
    except Exception as exc:  # PIL raises many types for bad files
        return f"unreadable ({type(exc).__name__}: {exc})"
    return None


def drop_bad_images(items: list[CaptionedImage], on_bad_image: str, where: str) -> list[CaptionedImage]:
    bad = [(it, why) for it in items for why in [image_problem(it.path)] if why]
    if not bad:
        return items
    listing = "; ".join(f"{it.path}: {why}" for it, why in bad[:5]) + (f"; ... ({len(bad) - 5} more)" if len(bad) > 5 else "")
    if on_bad_image == "error":
        raise DataError(f"{where}: {len(bad)} bad image(s): {listing}. Fix or remove them, or set data.on_bad_image=skip")
    log.warning("%s: skipping %d bad image(s) of %d: %s", where, len(bad), len(items), listing)
    for it, why in bad:
        log.debug("skipped %s: %s", it.path, why)
    bad_paths = {id(it) for it, _ in bad}
    return [it for it in items if id(it) not in bad_paths]


def _caption(sentence: Any, where: str) -> str:
    if not isinstance(sentence, dict):
        raise DataError(f"{where}: a sentence is not an object with 'tokens' or 'raw' (Karpathy split format)")
    tokens, raw = sentence.get("tokens"), sentence.get("raw", "")
    if tokens and not (isinstance(tokens, list) and all(isinstance(t, str) for t in tokens)):
        raise DataError(f"{where}: a sentence's 'tokens' is not a list of strings")
    if not isinstance(raw, str):
        raise DataError(f"{where}: a sentence's 'raw' is not a string")
    text = " ".join(tokens).strip() if tokens else raw.strip().lower()
    if not text:
        raise DataError(f"{where}: a sentence with neither tokens nor raw text")
    return text


def _image_path(entry: Any, image_root: Path, where: str) -> Path:
    """Where an entry's image lives; DataError when the entry is not of the Karpathy shape."""
    if not isinstance(entry.get("filename"), str) or not entry["filename"].strip():
        raise DataError(f"{where}: needs a 'filename' string and a non-empty 'sentences' list")
    if not isinstance(entry.get("sentences"), list) or not entry["sentences"]:
        raise DataError(f"{where}: needs a 'filename' string and a non-empty 'sentences' list")
    if not isinstance(entry.get("filepath", ""), str):
        raise DataError(f"{where}: 'filepath' is not a string")
    return image_root / entry.get("filepath", "") / entry["filename"]


class KarpathyCaptions:
    """Reader of one Karpathy-split JSON file and its image folder.

    splits: our split -> the JSON's split names (train usually takes `restval` too).
    max_images: optional cap per split (quick runs on COCO).
    download: 'coco' | 'flickr8k' | null: fetch the splits and images when absent.
    """
    kind = "captioned_images"

    def __init__(
        self,
        json_path: str,
        image_root: str,
        splits: dict[str, Sequence[str]] | None = None,
        on_bad_image: str = "skip",
        max_images: int | None = None,
        download: str | None = None,
    ):
        self.json_path, self.image_root = Path(json_path).expanduser(), Path(image_root).expanduser()
        splits = splits or {"train": ["train", "restval"], "val": ["val"], "test": ["test"]}
        self.splits = {k: [v] if isinstance(v, str) else list(v) for k, v in splits.items()}
        self.on_bad_image = check_policy(on_bad_image)
        self.max_images, self.download = max_images, download
        self._entries: list[dict] | None = None
        self._read: dict[str, list[CaptionedImage]] = {}

    def _load_json(self) -> list[dict]:
        if self._entries is None:
            if not self.json_path.exists() and self.download:
                fetch(self.download, self.json_path, self.image_root)
            if not self.json_path.exists():
                raise DataError(
                    f"{self.json_path}: Karpathy split file not found; put dataset_<name>.json there "
                    f"(from {SPLITS_ZIP}), set data.json_path, or set ENCDEC_DATA_DIR"
                )
            doc = read_json(self.json_path)
            if not isinstance(doc, dict) or not isinstance(doc.get("images"), list):
                raise DataError(f"{self.json_path}: expected an object with an 'images' list (Karpathy split format)")
            self._entries = doc["images"]
        return self._entries

    def read(self, split: str) -> list[CaptionedImage]:
        if split not in self._read:
            if split not in self.splits:
                raise ConfigError(f"data.splits has no {split!r} entry (has {sorted(self.splits)})")
            wanted = set(self.splits[split])
            items = []
            for index, entry in enumerate(self._load_json()):
                where = f"{self.json_path}, images[{index}]"
                if not isinstance(entry, dict) or not isinstance(entry.get("split"), str):
                    raise DataError(f"{where}: expected an object with a 'split' string (Karpathy split format)")
                if entry["split"] not in wanted:
                    continue
                path = _image_path(entry, self.image_root, where)
                image_id = str(entry.get("cocoid", entry.get("imgid", index)))
                items.append(CaptionedImage(path, [_caption(s, where) for s in entry["sentences"]], image_id))
                if self.max_images and len(items) >= self.max_images:
                    break
            require_examples(items, self.json_path, split, f"no image has split {' or '.join(map(repr, sorted(wanted)))}")
            items = drop_bad_images(items, self.on_bad_image, f"{self.json_path} ({split} split)")
            require_examples(items, self.json_path, split, f"every image was missing or unreadable under {self.image_root}")
            self._read[split] = items
        return self._read[split]


def fetch(name: str, json_path: Path, image_root: Path) -> None:  # pragma: no cover - needs a network
    """Download Karpathy's split files and the image archive(s) of `name`, unpacked in place."""
    if name not in IMAGE_ZIPS:
        raise ConfigError(f"data.download={name!r}: only {sorted(IMAGE_ZIPS)} can be downloaded (Flickr30k needs a request form)")
    json_path.parent.mkdir(parents=True, exist_ok=True)
    image_root.mkdir(parents=True, exist_ok=True)
    for url, dest in [(SPLITS_ZIP, json_path.parent)] + [(u, image_root) for u in IMAGE_ZIPS[name]]:
        archive = dest / url.rsplit("/", 1)[1]
        log.info("downloading %s", url)
        try:
            urllib.request.urlretrieve(url, archive.with_suffix(".part"))
        except OSError as exc:
            raise DataError(f"cannot download {url} ({exc}); without a network, put the files under {dest}") from None
        archive.with_suffix(".part").replace(archive)
        with zipfile.ZipFile(archive) as zf:
            zf.extractall(dest)
        archive.unlink()
