"""A deterministic procedural captioning set: rendered scenes of 1-4 objects with several
compositional reference captions each, written once into the cache in the Karpathy JSON +
image-folder layout and then read by the same reader as COCO or Flickr.

Objects sit in distinct cells of a 3x3 grid (with a little jitter), each with a shape,
colour and size; captions name them in reading order, by position and by relation
("a small red circle to the left of a large blue square").
"""

from __future__ import annotations

import hashlib
import json
import random
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path

from PIL import Image, ImageDraw

from encdec_tasks.captioning.data import KarpathyCaptions

SHAPES = ["circle", "square", "triangle"]
COLOURS = {"red": (220, 40, 40), "green": (40, 190, 60), "blue": (50, 90, 230), "yellow": (235, 215, 40), "white": (240, 240, 240)}
SIZES = {"small": 0.075, "large": 0.13}  # radius as a fraction of the image side
COLUMNS, ROWS = ["left", "center", "right"], ["top", "middle", "bottom"]
NUMBERS = ["one", "two", "three", "four"]
CELL_CENTRES = [0.21, 0.5, 0.79]  # away from the borders, which centre crops may trim


@dataclass
class SceneObject:
    shape: str
    colour: str
    size: str
    col: int
    row: int

    def phrase(self) -> str:
        return f"a {self.size} {self.colour} {self.shape}"

    def place(self) -> str:
        if (self.col, self.row) == (1, 1):
            return "in the center"
        if self.row == 1:
            return f"on the {COLUMNS[self.col]}"
        if self.col == 1:
            return f"at the {ROWS[self.row]}"
        return f"at the {ROWS[self.row]} {COLUMNS[self.col]}"


def _join(phrases: list[str]) -> str:
    return phrases[0] if len(phrases) == 1 else ", ".join(phrases[:-1]) + " and " + phrases[-1]


def _relation(a: SceneObject, b: SceneObject) -> str:
    if a.col != b.col:
        return f"{a.phrase()} to the {'left' if a.col < b.col else 'right'} of {b.phrase()}"
    return f"{a.phrase()} {'above' if a.row < b.row else 'below'} {b.phrase()}"


def captions(objects: list[SceneObject]) -> list[str]:
    """Five captions, the canonical one (left to right, then top to bottom) first."""
    ordered = sorted(objects, key=lambda o: (o.col, o.row))
    phrases = [o.phrase() for o in ordered]
    relation = _relation(ordered[0], ordered[1]) if len(ordered) > 1 else f"{phrases[0]} {ordered[0].place()}"
    if len(ordered) > 2:
        relation += " and " + _join(phrases[2:])
    noun = "shape" if len(ordered) == 1 else "shapes"
    return [
        _join(phrases),
        f"{NUMBERS[len(ordered) - 1]} {noun} : {_join(phrases)}",
        relation,
        _join(phrases[::-1]),
        _join([f"{o.phrase()} {o.place()}" for o in ordered]),
    ]


def random_scene(rng: random.Random, max_objects: int = 4) -> list[SceneObject]:
    cells = rng.sample([(c, r) for c in range(3) for r in range(3)], rng.randint(1, max_objects))
    return [SceneObject(rng.choice(SHAPES), rng.choice(list(COLOURS)), rng.choice(list(SIZES)), c, r) for c, r in cells]


def render(objects: list[SceneObject], size: int, rng: random.Random) -> Image.Image:
    shade = rng.randint(15, 70)
    img = Image.new("RGB", (size, size), (shade, shade, shade))
    draw = ImageDraw.Draw(img)
    jitter = 0.03 * size
    for o in objects:
        cx = CELL_CENTRES[o.col] * size + rng.uniform(-jitter, jitter)
        cy = CELL_CENTRES[o.row] * size + rng.uniform(-jitter, jitter)
        r = SIZES[o.size] * size
        fill = COLOURS[o.colour]
        if o.shape == "circle":
            draw.ellipse([cx - r, cy - r, cx + r, cy + r], fill=fill)
        elif o.shape == "square":
            s = 0.85 * r  # same visual weight as the circle
            draw.rectangle([cx - s, cy - s, cx + s, cy + s], fill=fill)
        else:
            draw.polygon([(cx, cy - r), (cx - r, cy + 0.8 * r), (cx + r, cy + 0.8 * r)], fill=fill)
    return img


def write_scenes(out_dir: Path, sizes: dict[str, int], image_size: int, seed: int, max_objects: int = 4,
                 captions_per_image: int = 5) -> Path:
    """Renders every split into `out_dir` (atomically: a half-written set is never read);
    returns the JSON path."""
    json_path = out_dir / "dataset_scenes.json"
    if json_path.exists():
        return json_path
    tmp = out_dir.with_name(out_dir.name + f".tmp{random.randrange(1 << 30)}")
    (tmp / "images").mkdir(parents=True)
    images, sent_id = [], 0
    for split, count in sizes.items():
        # one generator per split, so changing one split's size leaves the others unchanged
        rng = random.Random(f"{seed}-{split}")
        for i in range(count):
            objects = random_scene(rng, max_objects)
            name = f"{split}_{i:05d}.png"
            render(objects, image_size, rng).save(tmp / "images" / name)
            caps = captions(objects)[:captions_per_image]
            images.append({
                "filepath": "images", "filename": name, "imgid": len(images), "split": split,
                "sentences": [{"tokens": c.split(), "raw": c, "imgid": len(images), "sentid": sent_id + k} for k, c in enumerate(caps)],
                "objects": [asdict(o) for o in objects],
            })
            sent_id += len(caps)
    (tmp / json_path.name).write_text(json.dumps({"images": images, "dataset": "scenes"}))
    try:
        tmp.rename(out_dir)
    except OSError:  # another process finished first: use its copy
        shutil.rmtree(tmp, ignore_errors=True)
    return json_path


class ProceduralScenes(KarpathyCaptions):
    """The procedural set, generated on first use under `root/<parameters hash>/`."""

    def __init__(
        self,
        root: str,
        sizes: dict[str, int] | None = None,
        image_size: int = 64,
        seed: int = 0,
        max_objects: int = 4,
        captions_per_image: int = 5,
        on_bad_image: str = "skip",
    ):
        sizes = dict(sizes or {"train": 4000, "val": 200, "test": 200})
        params = json.dumps([sizes, image_size, seed, max_objects, captions_per_image, 1], sort_keys=True)
        self.out_dir = Path(root).expanduser() / f"scenes-{hashlib.sha1(params.encode()).hexdigest()[:10]}"
        self._spec = (sizes, image_size, seed, max_objects, captions_per_image)
        super().__init__(
            json_path=str(self.out_dir / "dataset_scenes.json"), image_root=str(self.out_dir),
            splits={s: [s] for s in sizes}, on_bad_image=on_bad_image,
        )

    def _load_json(self) -> list[dict]:
        if self._entries is None and not self.json_path.exists():
            sizes, image_size, seed, max_objects, per_image = self._spec
            self.out_dir.parent.mkdir(parents=True, exist_ok=True)
            write_scenes(self.out_dir, sizes, image_size, seed, max_objects, per_image)
        return super()._load_json()
