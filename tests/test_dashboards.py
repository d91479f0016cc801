"""What TensorBoard and wandb show of a run: read back from the files a tiny run wrote.

TensorBoard: the config (hparams with the monitored metric, and a text page), each
evaluation's protocol at its step, sample tables, captioning image grids with captions as
text and attention heatmaps. wandb (offline): config, summary, history and tables, read
from the run's .wandb transaction log.
"""

import json
import re
import struct
from pathlib import Path

import numpy as np
import pytest

from conftest import run_cli, tiny_train_args

DASHBOARD_ARGS = ["logger=default", "callbacks=default", "trainer.log_every_n_steps=1", "trainer.max_steps=6"]


def _without(args, *prefixes):
    return [a for a in args if not a.startswith(prefixes)]


@pytest.fixture(scope="module")
def translation_run(tiny_corpus, tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("dash") / "translation"
    run_cli("train", *_without(tiny_train_args(tiny_corpus, run_dir), "logger=", "callbacks="), *DASHBOARD_ARGS)
    return run_dir


@pytest.fixture(scope="module")
def captioning_run(tmp_path_factory):
    base = tmp_path_factory.mktemp("dash_captioning")
    run_dir = base / "run"
    run_cli(
        "train", "task=captioning", "data=scenes", f"data.root={base / 'data'}",
        "data.sizes={train: 16, val: 4, test: 4}", "data.image_size=32", "encoder=cnn",
        "encoder.model_name=test_resnet", "encoder.img_size=32", "decoder=lstm", "decoder.hidden_size=32",
        "model.d_model=32", "model.share_embeddings=false", "task.adapter.tokenizer.vocab_size=60",
        "callbacks=captioning", "logger=default", "decoding.max_len=8",
        "loader.max_sentences=16", "trainer=debug", "trainer.max_steps=2", "trainer.val_check_interval=2", f"hydra.run.dir={run_dir}",
    )
    return run_dir


def _events(run_dir: Path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(run_dir / "tensorboard"), size_guidance={"tensors": 0, "images": 0, "scalars": 0})
    acc.Reload()
    return acc


def _texts(acc, tag: str) -> dict[int, str]:
    return {e.step: e.tensor_proto.string_val[0].decode() for e in acc.Tensors(f"{tag}/text_summary")}


def test_tensorboard_holds_config_protocols_and_samples_of_every_evaluation(translation_run):
    from tensorboard.plugins.hparams import plugin_data_pb2

    acc = _events(translation_run)
    # hparams: the resolved config, with the monitored metric as the experiment's metric
    content = acc.PluginTagToContent("hparams")
    experiment = plugin_data_pb2.HParamsPluginData.FromString(content["_hparams_/experiment"]).experiment
    assert [m.name.tag for m in experiment.metric_infos] == ["val/sacrebleu"]
    session = plugin_data_pb2.HParamsPluginData.FromString(content["_hparams_/session_start_info"]).session_start_info
    assert session.hparams["model.d_model"].number_value == 32
    assert session.hparams["decoder.layers"].number_value == 1
    # the config as a readable text page
    config = _texts(acc, "config")[0]
    assert "Checkpoints keep the best `val/sacrebleu`" in config and "    d_model: 32" in config
    # each evaluation: metrics, protocol and samples at the same step
    val_steps = [e.step for e in acc.Scalars("val/sacrebleu")]
    assert len(val_steps) == 3
    protocols = _texts(acc, "val/protocol")
    # at the trainer's global step; Lightning files the scalars of that evaluation one lower
    assert sorted(protocols) == [s + 1 for s in sorted(val_steps)]
    assert all(re.search(r"^- \*\*sacrebleu\*\* = [\d.]+: .*nrefs:1", t, re.M) for t in protocols.values())
    samples = _texts(acc, "val/samples")
    assert sorted(samples) == sorted(protocols)
    assert all(t.startswith("| source | reference | output |") for t in samples.values())
    assert "test/protocol/text_summary" in acc.Tags()["tensors"]
    assert {"train/loss", "val/loss", "test/sacrebleu"} <= set(acc.Tags()["scalars"])


def test_captioning_images_are_a_legible_grid_with_captions_as_text(captioning_run):
    from PIL import Image
    import io

    acc = _events(captioning_run)
    grid = acc.Images("val/samples/image")[-1]
    pixels = np.asarray(Image.open(io.BytesIO(grid.encoded_image_string)))
    assert pixels.shape[0] >= 192, "32-pixel scenes enlarged to a size a person can see"
    text = list(_texts(acc, "val/samples").values())[-1]
    assert "| image | output | references | file |" in text and "| #1 |" in text and "| #4 |" in text
    assert re.search(r"\| #1 \| [^|]* \| [a-z]+ [a-z ]+", text), "generated and reference captions as text"
    # one card per heatmap figure: a stack of them would be shrunk to fit TensorBoard's card
    cards = sorted(t for t in acc.Tags()["images"] if t.startswith("val/attention/"))
    assert cards == [f"val/attention/attention_{n}" for n in range(1, 5)]
    attention = acc.Images("val/attention/attention_1")[-1]
    assert attention.height >= 160 and attention.width <= 480, "one figure about as wide as a TensorBoard card"
    assert "| attention | output |" in list(_texts(acc, "val/attention").values())[-1]


# -- wandb --------------------------------------------------------------------------------
def wandb_records(run_dir: Path):
    """Records of a run's .wandb file: a LevelDB-style log (a 7-byte file header, then
    32 KiB blocks of chunks with a crc32/length/type header) of wandb protobuf Records."""
    from wandb.proto import wandb_internal_pb2

    (path,) = run_dir.glob("wandb/offline-run-*/run-*.wandb")
    data = path.read_bytes()
    assert data[:4] == b":W&B"
    pos, buf, block = 7, b"", 32768
    while pos + 7 <= len(data):
        if block - pos % block < 7:  # block trailer too short for a header: padding
            pos += block - pos % block
            continue
        _, length, kind = struct.unpack("<IHB", data[pos : pos + 7])
        if kind == 0:
            break
        buf += data[pos + 7 : pos + 7 + length]
        pos += 7 + length
        if kind in (1, 4):  # a full record, or the last chunk of one
            record = wandb_internal_pb2.Record()
            record.ParseFromString(buf)
            buf = b""
            yield record


def _keys(items):
    return {i.key or "/".join(i.nested_key) for i in items}


def test_wandb_offline_run_holds_config_summary_history_and_tables(translation_run):
    records = list(wandb_records(translation_run))
    config = {u.key: json.loads(u.value_json) for r in records if r.HasField("config") for u in r.config.update}
    assert config["model"]["d_model"] == 32 and config["decoder"]["layers"] == 1
    summary = set().union(*(_keys(r.summary.update) for r in records if r.HasField("summary")))
    assert {"val/sacrebleu_protocol", "test/sacrebleu_protocol", "val/sacrebleu", "test/sacrebleu"} <= summary
    history = [{i.key or "/".join(i.nested_key): i.value_json for i in r.history.item} for r in records if r.HasField("history")]
    assert sum("val/sacrebleu" in h for h in history) == 3, "a metric history wandb plots as a line"
    tables = [json.loads(h["val/samples/_type"]) for h in history if "val/samples/_type" in h]
    assert tables == ["table-file"] * 3, "a samples table at each evaluation"
    assert sum(json.loads(h.get("val/protocol/_type", "null")) == "table-file" for h in history) == 3


def test_wandb_captioning_table_has_image_cells(captioning_run):
    # a table with wandb.Image cells is logged as a run_table artifact holding the images
    artifacts = [r.artifact for r in wandb_records(captioning_run) if r.HasField("artifact")]
    tables = [a for a in artifacts if a.type == "run_table" and "valsamples" in a.name]
    assert tables, [a.name for a in artifacts]
    paths = [c.path for c in tables[-1].manifest.contents]
    assert "val/samples.table.json" in paths
    assert sum(p.startswith("media/images/") and p.endswith(".png") for p in paths) == 4
