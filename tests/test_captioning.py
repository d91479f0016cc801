"""Captioning: metrics against hand-computed values, the Karpathy JSON reader (bad images
included), the procedural scenes, the timm encoders, image sample tables and heatmaps."""

import json
import logging
import math

import numpy as np
import pytest
import torch

from encdec.errors import ConfigError, DataError
from encdec.modules.image_encoders import CNNEncoder, ViTEncoder, timm_data_config
from encdec.optim import param_groups
from encdec.task import ImageCell, SampleTable
from encdec_tasks.captioning.data import KarpathyCaptions
from encdec_tasks.captioning.metrics import SentenceCiderD, caption_scores, coco_tokens
from encdec_tasks.captioning.scenes import ProceduralScenes, SceneObject, captions


# -- metrics ------------------------------------------------------------------------------
def test_bleu_and_rouge_match_hand_computed_values():
    refs = [["a red square", "a blue circle"]]
    s = caption_scores(["a red circle"], refs)
    # unigrams a/red/circle all found (clipped over refs); closest ref length 3: no penalty
    assert s["bleu1"] == pytest.approx(100.0, abs=1e-3)
    # bigrams: "a red" found, "red circle" not -> sqrt(1 * 1/2)
    assert s["bleu2"] == pytest.approx(100 * math.sqrt(0.5), abs=1e-3)
    # ROUGE-L (beta 1.2): LCS 2 of 3 words with either ref -> P = R = 2/3 -> F = 2/3
    assert s["rouge_l"] == pytest.approx(100 * 2 / 3, abs=1e-3)


def test_cider_d_matches_hand_computed_value_and_the_sentence_reward():
    # two images, one reference each, no shared n-gram: every n-gram has idf log(2/1).
    # Image 1's hypothesis equals its reference: cosine 1 for 1..3-grams, 0 for 4-grams (none),
    # no length penalty -> 10 * mean(1, 1, 1, 0) = 7.5; image 2 scores 0. Corpus: 3.75 (x100).
    outputs, refs = ["red big circle", "tiny"], [["red big circle"], ["blue small square"]]
    assert caption_scores(outputs, refs)["cider_d"] == pytest.approx(375.0, abs=1e-6)
    # with the same corpus for document frequencies, the sentence scorer is the toolkit
    scorer = SentenceCiderD(refs)
    assert scorer.score(outputs[0], refs[0]) == pytest.approx(7.5, abs=1e-9)
    assert scorer.score(outputs[1], refs[1]) == 0.0
    from pycocoevalcap.cider.cider import Cider

    hyps = ["a small red circle and a big square", "a blue square", "two shapes"]
    corpus = [["a small red circle", "a red circle and a square"], ["a blue square on the left"], ["two shapes : a circle"]]
    _, per_image = Cider().compute_score(
        {i: [coco_tokens(r) for r in rs] for i, rs in enumerate(corpus)}, {i: [coco_tokens(h)] for i, h in enumerate(hyps)})
    mine = SentenceCiderD(corpus)
    assert [mine.score(h, r) for h, r in zip(hyps, corpus)] == pytest.approx(list(per_image), abs=1e-9)


def test_coco_tokens_lowercase_and_drop_ptb_punctuation():
    assert coco_tokens("Two shapes: a RED circle, and... a square.") == "two shapes a red circle and a square"
    assert coco_tokens("a man's hat") == "a man's hat"


# -- data ---------------------------------------------------------------------------------
def _write_karpathy(root, corrupt=True):
    from PIL import Image

    (root / "imgs" / "val2014").mkdir(parents=True)
    for i in range(3):
        Image.new("RGB", (20, 16), (40 * i, 0, 0)).save(root / "imgs" / "val2014" / f"ok{i}.jpg")
    (root / "imgs" / "val2014" / "broken.jpg").write_bytes(b"\xff\xd8 not really a jpeg")
    sent = lambda *w: {"tokens": list(w), "raw": " ".join(w).capitalize() + "."}  # noqa: E731
    images = [
        {"filepath": "val2014", "filename": "ok0.jpg", "split": "train", "cocoid": 7, "sentences": [sent("a", "dog"), sent("a", "pup")]},
        {"filepath": "val2014", "filename": "ok1.jpg", "split": "restval", "sentences": [{"raw": "A Cat."}]},
        {"filepath": "val2014", "filename": "broken.jpg", "split": "train", "sentences": [sent("bad")]},
        {"filepath": "val2014", "filename": "missing.jpg", "split": "train", "sentences": [sent("gone")]},
        {"filepath": "val2014", "filename": "ok2.jpg", "split": "test", "sentences": [sent("a", "bird")]},
    ]
    path = root / "dataset_coco.json"
    path.write_text(json.dumps({"images": images, "dataset": "coco"}))
    return path


def test_karpathy_reader_skips_bad_images_with_their_paths(tmp_path, caplog):
    path = _write_karpathy(tmp_path)
    data = KarpathyCaptions(str(path), str(tmp_path / "imgs"), on_bad_image="skip")
    with caplog.at_level(logging.WARNING):
        train = data.read("train")
    assert [(it.path.name, it.captions, it.image_id) for it in train] == [
        ("ok0.jpg", ["a dog", "a pup"], "7"), ("ok1.jpg", ["a cat."], "1")]  # restval joins train
    assert "broken.jpg" in caplog.text and "missing.jpg" in caplog.text and "skipping 2 bad image(s)" in caplog.text
    assert [it.captions for it in data.read("test")] == [["a bird"]]


def test_karpathy_reader_stops_on_bad_images_when_asked(tmp_path):
    path = _write_karpathy(tmp_path)
    data = KarpathyCaptions(str(path), str(tmp_path / "imgs"), on_bad_image="error")
    with pytest.raises(DataError, match=r"2 bad image\(s\):.*broken\.jpg: unreadable.*missing\.jpg: file not found"):
        data.read("train")
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(DataError, match=r"bad\.json, line 1: not valid JSON"):
        KarpathyCaptions(str(tmp_path / "bad.json"), str(tmp_path)).read("train")
    with pytest.raises(ConfigError, match="on_bad_image"):
        KarpathyCaptions(str(path), str(tmp_path), on_bad_image="ignore")


def test_a_file_that_breaks_after_the_check_is_skipped_in_the_batch(tmp_path, caplog):
    from encdec_tasks.captioning.adapter import CaptioningTask

    data = ProceduralScenes(str(tmp_path), sizes={"train": 4, "val": 2, "test": 2}, image_size=32)
    task = CaptioningTask(data, image_model="test_resnet", image_size=32, tokenizer={"vocab_size": 60})
    (tmp_path / "run").mkdir()
    task.setup(tmp_path / "run", "fit")
    examples = list(task.examples("train"))[::5][:3]  # three images (five captions each)
    examples[1]["path"].write_bytes(b"garbage")  # corrupted after the reader checked it
    with caplog.at_level(logging.WARNING):
        batch = task.collate(examples)
    assert len(batch) == 2 and str(examples[1]["path"]) in caplog.text
    data.on_bad_image = "error"
    with pytest.raises(DataError, match=str(examples[1]["path"].name)):
        task.collate(examples)


def test_scene_captions_are_compositional_and_the_set_deterministic(tmp_path):
    objs = [SceneObject("square", "blue", "large", 2, 0), SceneObject("circle", "red", "small", 0, 1)]
    assert captions(objs) == [
        "a small red circle and a large blue square",
        "two shapes : a small red circle and a large blue square",
        "a small red circle to the left of a large blue square",
        "a large blue square and a small red circle",
        "a small red circle on the left and a large blue square at the top right",
    ]
    a = ProceduralScenes(str(tmp_path / "a"), sizes={"train": 5, "test": 3}, image_size=24)
    b = ProceduralScenes(str(tmp_path / "b"), sizes={"train": 5, "test": 3}, image_size=24)
    ra, rb = a.read("train"), b.read("train")
    assert [it.captions for it in ra] == [it.captions for it in rb]
    assert all(x.path.read_bytes() == y.path.read_bytes() for x, y in zip(ra, rb))
    doc = json.loads(a.json_path.read_text())  # the standard layout the real sets use
    assert {im["split"] for im in doc["images"]} == {"train", "test"} and len(doc["images"][0]["sentences"]) == 5


# -- encoders -----------------------------------------------------------------------------
def test_cnn_feature_map_becomes_grid_memory_and_backbone_options_reach_the_optimiser():
    enc = CNNEncoder("test_resnet", d_model=16, img_size=64, backbone_lr_scale=0.1, model_kwargs={"output_stride": 16})
    out = enc(torch.randn(2, 3, 64, 64))
    assert out.grid == (4, 4) and out.memory.shape == (2, 16, 16) and out.memory_mask.all()
    assert out.index_select(torch.tensor([1, 1, 0])).grid == (4, 4), "the grid survives beam expansion"
    assert torch.allclose(out.summary, out.memory.mean(1))
    groups = {g["lr_scale"]: g["params"] for g in param_groups(enc)}
    assert set(groups) == {1.0, 0.1} and len(groups[1.0]) == 4  # projection + norm at full rate
    frozen = CNNEncoder("test_resnet", d_model=16, freeze_backbone=True).train()
    assert [g["lr_scale"] for g in param_groups(frozen)] == [1.0] and not frozen.backbone.training


def test_vit_patch_tokens_become_memory_without_the_class_token():
    enc = ViTEncoder("test_vit", d_model=16, img_size=32, patch_size=8, layers=1, heads=2, ffn=32)
    out = enc(torch.randn(2, 3, 32, 32))
    assert out.grid == (4, 4) and out.memory.shape == (2, 16, 16)
    assert len(enc.backbone.blocks) == 1 and enc.backbone.blocks[0].mlp.fc1.out_features == 32
    assert timm_data_config("test_vit", 32)["input_size"] == (3, 32, 32)


def test_pretrained_weights_fail_fast_offline_and_unknown_models_are_named():
    with pytest.raises(ConfigError, match="encoder.pretrained=true: no pretrained weights for 'test_resnet'.*pretrained=false"):
        CNNEncoder("test_resnet", pretrained=True)
    with pytest.raises(ConfigError, match="'resnet_does_not_exist' is not a timm model"):
        CNNEncoder("resnet_does_not_exist")


# -- seeing it ----------------------------------------------------------------------------
def test_image_sample_tables_reach_tensorboard_and_files(tmp_path):
    from pytorch_lightning.loggers import TensorBoardLogger

    from encdec.reporting import log_samples

    tb = TensorBoardLogger(str(tmp_path), name="tb")
    pixels = np.zeros((8, 10, 3), dtype=np.uint8)
    pixels[:, :5, 0] = 255
    table = SampleTable(["image", "output"], [[ImageCell(pixels), "a red thing"]])
    log_samples([tb], "val/samples", table, 3, tmp_path)
    tb.experiment.flush()
    # the event file holds an image summary under the row's tag, PNG-encoded (reading it back
    # through tensorboard's EventAccumulator costs seconds of imports)
    events = b"".join(p.read_bytes() for p in (tmp_path / "tb").rglob("events.out.tfevents.*"))
    assert b"val/samples/image" in events and b"\x89PNG" in events
    md = (tmp_path / "samples" / "val_samples_step3.md").read_text()
    assert "![image](val_samples_step3/0_0.png)" in md and "a red thing" in md
    from PIL import Image

    assert np.array_equal(np.asarray(Image.open(tmp_path / "samples" / "val_samples_step3" / "0_0.png")), pixels)


def test_image_tables_become_wandb_images(tmp_path):
    import wandb
    from pytorch_lightning.loggers import WandbLogger

    from encdec.reporting import log_samples

    class Recording(WandbLogger):  # records the table instead of starting a wandb run
        def log_table(self, key, columns=None, data=None, dataframe=None, step=None):
            self.logged = (key, columns, data, step)

    logger = Recording(offline=True, save_dir=str(tmp_path))
    table = SampleTable(["image", "output"], [[ImageCell(np.zeros((4, 4, 3), dtype=np.uint8)), "a thing"]])
    log_samples([logger], "val/samples", table, 5, tmp_path)
    key, columns, data, step = logger.logged
    assert (key, columns, step) == ("val/samples", ["image", "output"], 5)
    assert isinstance(data[0][0], wandb.Image) and data[0][1] == "a thing"


def test_captioning_without_an_image_encoder_says_which_to_pick():
    from encdec_tasks.captioning.adapter import CaptioningTask

    with pytest.raises(ConfigError, match="encoder=cnn or encoder=vit"):
        CaptioningTask(data=None, image_model=None)
