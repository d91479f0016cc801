#!/usr/bin/env python
"""Speed: our ViT encoder + Transformer decoder against Hugging Face VisionEncoderDecoderModel
(ViTModel + GPT-2 decoder with cross-attention) at the same dimensions, on CPU, one process.

Both sides: 64 px images, 16 px patches (16 patch tokens + class token), encoder width 192,
4 layers, 3 heads, MLP 768 (timm vit_tiny_patch16_224 with depth 4 / HF ViTConfig); decoder
width 192, 2 layers, 3 heads, FFN 768, residual dropout 0.1, no attention dropout; the
procedural scenes' caption vocabulary; random init; fp32; the same thread count.

(a) Training: images/s over pre-collated batches of 32 (image, caption) pairs (the same
    pixels and token ids for both sides; forward + cross-entropy + backward + grad-clip 1.0 +
    AdamW step).
      ours: EncoderDecoder(ViTEncoder, TransformerDecoder), MLE(0.0).loss
      HF:   VisionEncoderDecoderModel(pixel_values, labels) (its own loss; pads -> -100)
(b) Greedy decoding: images/s for batches of 50 test images, max 30 tokens, eval mode.
      ours: Greedy(max_len=30) / HF: generate(max_new_tokens=30, num_beams=1, do_sample=False)
    "fixed length" bans EOS until the last step on both sides (ours min_len=29, HF
    min_new_tokens=29): exactly 30 tokens per image, the like-for-like row; "free" lets each
    side stop at its own EOS (random-ish weights: lengths differ, tokens/s is reported too).

Rounds are interleaved (which side goes first alternates); medians over rounds, ratio ours/HF.

    python bench/speed_captioning.py --threads 1
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def build_ours(vocab: int, ids: dict):
    from encdec.model import EncoderDecoder
    from encdec.modules.image_encoders import ViTEncoder
    from encdec.modules.transformer import TransformerDecoder

    enc = ViTEncoder("vit_tiny_patch16_224", d_model=192, img_size=64, layers=4, heads=3, dropout=0.0)
    dec = TransformerDecoder(vocab, d_model=192, layers=2, heads=3, ffn=768, dropout=0.1, pad_id=ids["pad_id"])
    return EncoderDecoder(enc, dec, **ids)


def build_hf(vocab: int, ids: dict):
    from transformers import GPT2Config, GPT2LMHeadModel, ViTConfig, ViTModel, VisionEncoderDecoderModel

    vit = ViTModel(ViTConfig(image_size=64, patch_size=16, hidden_size=192, num_hidden_layers=4, num_attention_heads=3,
                             intermediate_size=768, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0), add_pooling_layer=False)
    gpt = GPT2LMHeadModel(GPT2Config(vocab_size=vocab, n_positions=64, n_embd=192, n_layer=2, n_head=3, n_inner=768,
                                     resid_pdrop=0.1, embd_pdrop=0.1, attn_pdrop=0.0, add_cross_attention=True,
                                     bos_token_id=ids["bos_id"], eos_token_id=ids["eos_id"], pad_token_id=ids["pad_id"]))
    model = VisionEncoderDecoderModel(encoder=vit, decoder=gpt)
    model.config.decoder_start_token_id = ids["bos_id"]
    model.config.pad_token_id = ids["pad_id"]
    model.config.eos_token_id = ids["eos_id"]
    model.generation_config.decoder_start_token_id = ids["bos_id"]
    model.generation_config.pad_token_id = ids["pad_id"]
    model.generation_config.eos_token_id = ids["eos_id"]
    return model


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--steps", type=int, default=8)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--dec-batches", type=int, default=2)
    args = p.parse_args()
    os.environ["HF_HUB_OFFLINE"] = "1"
    import torch

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    from encdec.decoding import Greedy
    from encdec.objectives import MLE
    from encdec_tasks.captioning.adapter import CaptioningTask
    from encdec_tasks.captioning.scenes import ProceduralScenes

    cache = Path(os.environ.get("ENCDEC_CACHE_DIR", Path.home() / ".cache" / "encdec")) / "data"
    data = ProceduralScenes(str(cache), sizes={"train": 4000, "val": 200, "test": 200}, image_size=64)
    task = CaptioningTask(data, image_model="vit_tiny_patch16_224", image_size=64, tokenizer={"vocab_size": 200})
    task.setup(Path(tempfile.mkdtemp()), "fit")
    ids, vocab = task.special_ids(), task.tok.vocab_size
    train = list(task.examples("train"))
    g = torch.Generator().manual_seed(0)
    order = torch.randperm(len(train), generator=g).tolist()
    n_batches = args.warmup + args.steps
    batches = [task.collate([train[i] for i in order[b * 32 : (b + 1) * 32]]) for b in range(n_batches)]
    test = list(task.examples("test"))
    dec_batches = [task.collate(test[b * 50 : (b + 1) * 50]).src for b in range(args.dec_batches)]

    ours, hf = build_ours(vocab, ids), build_hf(vocab, ids)
    count = lambda m: sum(p.numel() for p in m.parameters()) / 1e6  # noqa: E731
    print(f"parameters: ours {count(ours):.2f}M, HF {count(hf):.2f}M", flush=True)
    mle = MLE(0.0)
    opt = {"ours": torch.optim.AdamW(ours.parameters(), lr=1e-4), "hf": torch.optim.AdamW(hf.parameters(), lr=1e-4)}

    def ours_loss(b):
        return mle.loss(ours, b)[0]

    def hf_loss(b):
        labels = b.tgt_out.masked_fill(b.tgt_out == ids["pad_id"], -100)
        return hf(pixel_values=b.src, labels=labels).loss

    def train_rate(name, model, loss_fn) -> float:
        model.train()
        for i, b in enumerate(batches):
            if i == args.warmup:
                start = time.perf_counter()
            loss = loss_fn(b)
            opt[name].zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt[name].step()
        return args.steps * 32 / (time.perf_counter() - start)

    def out_tokens(tokens, eos):
        return sum((row.tolist() + [eos]).index(eos) + 1 for row in tokens)

    def decode_rate(name, fixed: bool) -> tuple[float, float]:
        with torch.no_grad():
            start, toks = time.perf_counter(), 0
            for src in dec_batches:
                if name == "ours":
                    ours.eval()
                    out = Greedy(max_len=30, max_len_a=0, min_len=29 if fixed else 0)(ours, src, None).best()
                else:
                    hf.eval()
                    out = hf.generate(pixel_values=src, max_new_tokens=30, min_new_tokens=29 if fixed else 0,
                                      num_beams=1, do_sample=False)[:, 1:]
                toks += out_tokens(out, ids["eos_id"])
            dt = time.perf_counter() - start
        n = sum(len(s) for s in dec_batches)
        return n / dt, toks / dt

    results: dict[str, list[float]] = {}
    add = lambda k, v: results.setdefault(k, []).append(v)  # noqa: E731
    for r in range(args.rounds):
        sides = [("ours", ours, ours_loss), ("hf", hf, hf_loss)]
        for name, model, fn in sides if r % 2 == 0 else sides[::-1]:
            add(f"train/{name}", train_rate(name, model, fn))
        for fixed in (True, False):
            for name in ("ours", "hf") if r % 2 == 0 else ("hf", "ours"):
                ips, tps = decode_rate(name, fixed)
                add(f"{'fixed' if fixed else 'free'}/{name}", ips)
                add(f"{'fixed' if fixed else 'free'}_tok/{name}", tps)
        print(f"round {r + 1}: " + ", ".join(f"{k} {v[-1]:.1f}" for k, v in results.items()), flush=True)

    med = {k: statistics.median(v) for k, v in results.items()}
    print(f"\nthreads={args.threads} rounds={args.rounds} steps={args.steps} (python {sys.version.split()[0]}, "
          f"torch {torch.__version__})")
    print("| measure | ours | HF VisionEncoderDecoder | ours / HF |")
    print("|---|---|---|---|")
    for key, label in [("train", "training images/s (batch 32)"), ("fixed", "greedy decoding images/s, fixed 30 tokens"),
                       ("free", "greedy decoding images/s, free length"), ("free_tok", "greedy decoding tokens/s, free length")]:
        o, h = med[f"{key}/ours"], med[f"{key}/hf"]
        print(f"| {label} | {o:.1f} | {h:.1f} | {o / h:.2f}x |")


if __name__ == "__main__":
    main()
