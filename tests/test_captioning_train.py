"""Captioning learns: both timm encoders overfit a handful of procedural scenes to their exact
captions, and the whole CLI flow (train -> eval -> predict on a folder of images) works."""

import json
import shutil

import pytest
import torch

from conftest import run_cli
from encdec.decoding import Greedy
from encdec.errors import DataError
from encdec.model import EncoderDecoder
from encdec.modules.image_encoders import CNNEncoder, ViTEncoder
from encdec.modules.rnn import RNNDecoder
from encdec.objectives import MLE
from encdec_tasks.captioning.adapter import CaptioningTask
from encdec_tasks.captioning.attention_maps import AttentionMaps
from encdec_tasks.captioning.scenes import ProceduralScenes


@pytest.fixture(scope="module")
def six_scenes(tmp_path_factory):
    root = tmp_path_factory.mktemp("scenes")
    # one caption per image: the canonical, left-to-right one
    data = ProceduralScenes(str(root), sizes={"train": 6, "val": 6}, image_size=32, seed=3, captions_per_image=1, max_objects=2)
    return root, data


@pytest.mark.parametrize("encoder", ["cnn", "vit"])
def test_encoder_overfits_scenes_to_exact_captions(encoder, six_scenes):
    root, data = six_scenes
    torch.manual_seed(0)
    if encoder == "cnn":
        enc = CNNEncoder("test_resnet", d_model=48, img_size=32, dropout=0.0, model_kwargs={"output_stride": 8})
    else:
        enc = ViTEncoder("test_vit", d_model=48, img_size=32, patch_size=8, layers=2, dropout=0.0)
    task = CaptioningTask(data, image_model=enc.model_name, image_size=32, tokenizer={"vocab_size": 60})
    run = root / f"run_{encoder}"
    run.mkdir()
    task.setup(run, "fit")
    batch = task.collate(list(task.examples("train")))
    model = EncoderDecoder(enc, RNNDecoder(task.tok.vocab_size, d_model=48, hidden_size=96, cell="lstm", dropout=0.0,
                                           pad_id=task.tok.pad_id), **task.special_ids())
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    targets = [refs[0] for refs in task.references(batch)]
    for step in range(1, 201):  # both get there in under 100 steps; checked every 10
        loss, _ = MLE().loss(model, batch)
        opt.zero_grad()
        loss.backward()
        opt.step()
        if step % 10 == 0:
            outputs = task.decode(Greedy(max_len=30, max_len_a=0)(model.eval(), batch.src, None).best())
            model.train()
            if outputs == targets:
                break
    model.eval()
    assert outputs == targets and len(set(targets)) >= 5  # (two scenes share a caption)
    if encoder == "cnn":  # per-word attention heatmaps over the feature-map grid
        table = AttentionMaps(num_images=2, tile=64, columns=4).table(model, task, batch)
        first = table.rows[0][0].pixels
        ids = Greedy(max_len=30, max_len_a=0)(model, batch.src[:1], None).best()[0].tolist()
        pieces = ids.index(model.eos_id) + 1  # one tile per generated piece, <end> included
        rows, cols = -(-pieces // 4), min(pieces, 4)
        assert first.shape[0] >= rows * 64 and first.shape[1] >= cols * 64 and first.shape[2] == 3
        assert table.rows[0][1] == outputs[0]


def test_cli_train_eval_predict_on_a_folder(tmp_path):
    data_root, run = tmp_path / "data", tmp_path / "run"
    common = [
        "task=captioning", "data=scenes", f"data.root={data_root}", "data.sizes={train: 16, val: 4, test: 4}",
        "data.image_size=32", "encoder=cnn", "encoder.model_name=test_resnet", "encoder.img_size=32",
        "decoder=lstm", "decoder.hidden_size=32", "model.d_model=32", "model.share_embeddings=false",
        "task.adapter.tokenizer.vocab_size=60", "logger=csv", "callbacks=captioning", "~callbacks.progress",
        "decoding.max_len=12", "loader.max_sentences=16", "trainer=debug",
        "trainer.max_steps=6", f"hydra.run.dir={run}",
    ]
    run_cli("train", *common)
    test = json.loads((run / "metrics/test.json").read_text())
    assert set(test) >= {"cider_d", "bleu1", "bleu4", "rouge_l"}
    assert "COCO caption toolkit" in test["cider_d"]["protocol"] and "test split" in test["bleu4"]["protocol"]
    md = next((run / "samples").glob("val_samples_step*.md")).read_text()
    assert "| image | output | references | file |" in md and "![image](" in md
    assert list((run / "samples").glob("val_attention_step*/0_0.png")), "attention heatmaps written"

    proc = run_cli("evaluate", f"run_dir={run}", "split=val", "decoding=beam", "decoding.beam_size=2",
                   "decoding.max_len=12", "progress=false")
    assert "val/cider_d:" in proc.stdout

    folder = tmp_path / "photos"
    folder.mkdir()
    for src in sorted((data_root).rglob("test_*.png"))[:3]:
        shutil.copy(src, folder / src.name)
    out = tmp_path / "captions.tsv"
    run_cli("predict", f"run_dir={run}", f"input={folder}", f"output={out}", "decoding.max_len=12")
    lines = out.read_text().splitlines()
    assert [line.split("\t")[0] for line in lines] == sorted(p.name for p in folder.iterdir())
    assert all(len(line.split("\t")) == 2 for line in lines)

    # a bad file among the inputs is named (the CLI prints a DataError as one `error:` line)
    (folder / "zz_broken.png").write_bytes(b"not a png")
    from encdec.run_dir import load_run

    _, adapter, _ = load_run(run, "last", stage="predict")
    with pytest.raises(DataError, match="zz_broken.png: unreadable image"):
        adapter.parse_inputs(sorted(str(p) for p in folder.iterdir()))
