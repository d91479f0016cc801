"""The captioning adapter's image cache: each image is decoded and resized once per process,
batches hold the same numbers as timm's transform, the MiB budget holds, 0 turns it off, a
random (training) transform is never cached, and bad images keep their policy."""

import logging
import pickle
import random
from collections import Counter

import pytest
import torch
from timm.data import create_transform

from encdec.errors import ConfigError, DataError
from encdec.modules.image_encoders import timm_data_config
from encdec_tasks.captioning import image_cache
from encdec_tasks.captioning.adapter import CaptioningTask
from encdec_tasks.captioning.data import load_image
from encdec_tasks.captioning.fixtures import tiny_data_config
from encdec_tasks.captioning.scenes import ProceduralScenes

IMAGES, CAPTIONS = 6, 5
# 28 px from 32 px scenes: the transform resizes and crops, so the cached pixels are not the files'
MODEL, SIZE = "test_resnet", 28


@pytest.fixture(scope="module")
def scenes_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("scenes")
    config = {k: v for k, v in tiny_data_config(root, {"train": IMAGES, "val": 2, "test": 2}, CAPTIONS).items()
              if k != "_target_"}
    ProceduralScenes(**config).read("train")  # written once for the module
    return config


def make_task(scenes_root, tmp_path, **options) -> CaptioningTask:
    task = CaptioningTask(ProceduralScenes(**scenes_root), image_model=MODEL, image_size=SIZE,
                          tokenizer={"vocab_size": 60}, **options)
    run = tmp_path / f"run{len(list(tmp_path.iterdir()))}"
    run.mkdir()
    task.setup(run, "fit")
    return task


def epochs(task, count=2, batch_size=8):
    """Training batches as the trainer reads them: every (image, caption) pair once an epoch, shuffled."""
    examples = list(task.examples("train"))
    for epoch in range(count):
        order = random.Random(epoch).sample(examples, len(examples))
        yield [task.collate(order[i:i + batch_size]) for i in range(0, len(order), batch_size)]


@pytest.fixture
def opened(monkeypatch):
    """Counter of the image files decoded (path -> times) through the cache's load_image."""
    counts = Counter()

    def counting_load_image(path):
        counts[str(path)] += 1
        return load_image(path)

    monkeypatch.setattr(image_cache, "load_image", counting_load_image)
    return counts


def test_cached_batches_hold_timm_transform_pixels_and_equal_uncached_batches(scenes_root, tmp_path):
    cached, uncached = make_task(scenes_root, tmp_path), make_task(scenes_root, tmp_path, image_cache_mb=0)
    for cached_epoch, uncached_epoch in zip(epochs(cached), epochs(uncached)):
        for a, b in zip(cached_epoch, uncached_epoch):
            # the reference: timm's whole transform (resize, crop, ToTensor, Normalize) image by image
            timm_pixels = torch.stack([cached.transform(load_image(path)) for path in a.meta["path"]])
            assert a.src.dtype == b.src.dtype == torch.float32 and a.src.shape == (len(a), 3, SIZE, SIZE)
            assert torch.allclose(a.src, timm_pixels, atol=1e-6) and torch.allclose(b.src, timm_pixels, atol=1e-6)
            assert torch.equal(a.tgt_in, b.tgt_in) and a.meta == b.meta
    stored = list(cached.images.entries.values())
    assert len(stored) == IMAGES and all(p.dtype == torch.uint8 and p.shape == (3, SIZE, SIZE) for p in stored)
    assert len(uncached.images) == 0


def test_each_image_is_decoded_once_across_two_epochs(scenes_root, tmp_path, opened):
    task = make_task(scenes_root, tmp_path)
    for _ in epochs(task, count=2):
        pass
    assert len(opened) == IMAGES and set(opened.values()) == {1}
    # a copy made for a DataLoader worker process starts empty instead of carrying the pixels along
    assert len(pickle.loads(pickle.dumps(task.images))) == 0 and len(task.images) == IMAGES


def test_zero_turns_the_cache_off(scenes_root, tmp_path, opened):
    task = make_task(scenes_root, tmp_path, image_cache_mb=0)
    for _ in epochs(task, count=2):
        pass
    # every caption of every image in both epochs decodes its file again
    assert len(opened) == IMAGES and set(opened.values()) == {2 * CAPTIONS} and len(task.images) == 0
    with pytest.raises(ConfigError, match=r"task\.adapter\.image_cache_mb=-1.*>= 0"):
        make_task(scenes_root, tmp_path, image_cache_mb=-1)


def test_the_budget_holds_and_images_beyond_it_are_decoded_at_every_read(scenes_root, tmp_path, opened, caplog):
    image_bytes = 3 * SIZE * SIZE  # uint8
    task = make_task(scenes_root, tmp_path, image_cache_mb=3.5 * image_bytes / 2**20)
    with caplog.at_level(logging.INFO, logger=image_cache.__name__):
        for _ in epochs(task, count=2):
            pass
    assert len(task.images) == 3 and task.images.nbytes == 3 * image_bytes <= task.images.budget
    cached = set(task.images.entries)
    assert {path for path, n in opened.items() if n == 1} == cached
    assert all(n == 2 * CAPTIONS for path, n in opened.items() if path not in cached)
    assert caplog.text.count("image cache full at 3 images") == 1


def test_a_random_training_transform_is_never_cached(scenes_root, tmp_path, opened, caplog):
    config = timm_data_config(MODEL, SIZE)
    augmenting = create_transform(**config, is_training=True)
    with pytest.raises(ValueError, match="RandomResizedCropAndInterpolation.*other pixels"):
        image_cache.split_at_normalize(augmenting)
    task = make_task(scenes_root, tmp_path)
    with caplog.at_level(logging.WARNING, logger=image_cache.__name__):
        task.images = image_cache.ImageCache(augmenting, budget_mb=64)
    assert "images are not cached" in caplog.text and task.images.budget == 0
    for epoch in epochs(task, count=2):
        assert all(batch.src.dtype == torch.float32 and batch.src.shape[1:] == (3, SIZE, SIZE) for batch in epoch)
    assert len(task.images) == 0 and set(opened.values()) == {2 * CAPTIONS}


def test_a_bad_image_keeps_its_policy_and_is_never_cached(scenes_root, tmp_path, caplog):
    task = make_task(scenes_root, tmp_path)
    examples = list(task.examples("train"))[::CAPTIONS][:3]  # three images
    bad = examples[1]["path"]
    original = bad.read_bytes()
    try:
        bad.write_bytes(b"garbage")  # corrupted after the reader checked it
        with caplog.at_level(logging.WARNING):
            for _ in range(2):
                batch = task.collate(examples)
                assert len(batch) == 2 and batch.meta["path"] == [str(examples[0]["path"]), str(examples[2]["path"])]
        assert caplog.text.count(f"skipping {bad}") == 2 and str(bad) not in task.images.entries
        task.data.on_bad_image = "error"
        with pytest.raises(DataError, match=f"{bad.name}.*data.on_bad_image=skip"):
            task.collate(examples)
    finally:
        bad.write_bytes(original)
