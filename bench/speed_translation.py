#!/usr/bin/env python
"""Speed: our Transformer against Hugging Face BART at the same dimensions, on CPU.

Both sides: d_model 256, 3+3 layers, 4 heads, FFN 1024, dropout 0.1, one joint BPE
vocabulary (8000, trained by our SubwordTokenizer; ids pad 0, bos 1, eos 2, unk 3), random
init, attention/activation dropout as our modules default them (BART's config is given the
same values), same thread count, one process.

(a) Training throughput, non-pad target tokens/s (target = y + EOS on both sides), with the
    data pipeline inside the timed region (next(batch) + forward + loss + backward + grad-clip
    1.0 + AdamW step), fp32 and bf16 autocast:
      ours: TranslationTask.examples('train') -> TokenBudgetBatchSampler(max_tokens=4096)
            -> DataLoader(collate=adapter.collate); EncoderDecoder(TransformerEncoder,
            TransformerDecoder, share_embeddings=True); MLE(0.1).loss.
      HF:   pre-tokenised {input_ids, labels} -> DataLoader(shuffle=True, batch_size=B,
            DataCollatorForSeq2Seq(model=...)); BartForConditionalGeneration; label-smoothed
            (0.1) cross-entropy on the logits, as HF Trainer does with labels popped.
      B (sentences) is chosen so that HF's mean target tokens per batch matches ours.
(b) Decoding, batch 32 test_2016_flickr sources, max 64 output tokens, fp32, eval mode:
      ours: Greedy(max_len=64) / BeamSearch(beam_size=4, length_penalty=1.0, max_len=64)
      HF:   model.generate(max_new_tokens=64, num_beams=1|4, do_sample=False,
            early_stopping=True, length_penalty=1.0)
    Output tokens = generated tokens up to and including the first EOS. Decoding runs after
    all training rounds, on the weights they left (a few dozen AdamW steps per side), so the
    two models stop at different, arbitrary lengths ("free" rows). The "fixed length" rows
    ban EOS until the last step on both sides (ours min_len=63, HF min_new_tokens=63):
    exactly 64 tokens per sentence each, the like-for-like comparison.
    --stopping picks when a beam stops, on both sides: early (default, fairseq; HF
    early_stopping=True), heuristic (HF early_stopping=False), exact (HF "never").
    --decode-dtype bf16 runs our decoder steps under bf16 autocast; --int8 decodes with our
    model after quantize_for_cpu (int8 dynamic linear layers). Both are ours-only options.

Rounds are interleaved (the side that goes first alternates); the table reports medians
over rounds and the ratio ours/HF.

    python bench/speed_translation.py                 # full run (all cores)
    python bench/speed_translation.py --quick --threads 1
"""

from __future__ import annotations

import argparse
import os
import platform as _platform
import shlex
import statistics
import sys
import tempfile
import time
from contextlib import nullcontext
from pathlib import Path


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="smoke test: 1 round, 2 steps, 1 decoding batch")
    p.add_argument("--threads", type=int, default=os.cpu_count(), help="torch intra-op threads (both sides)")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--steps", type=int, default=10, help="timed training steps per configuration per round")
    p.add_argument("--warmup", type=int, default=2, help="untimed training steps before each timed block")
    p.add_argument("--dec-batches", type=int, default=3, help="decoding batches (of --dec-batch-size) per round")
    p.add_argument("--dec-batch-size", type=int, default=32)
    p.add_argument("--max-len", type=int, default=64, help="max output tokens when decoding")
    p.add_argument("--beam", type=int, default=4)
    p.add_argument("--stopping", choices=["early", "heuristic", "exact"], default="early",
                   help="beam stopping rule, mapped to HF's early_stopping")
    p.add_argument("--decode-dtype", choices=["fp32", "bf16"], default="fp32", help="ours: decoding.dtype")
    p.add_argument("--int8", action="store_true", help="ours: decode with quantize_for_cpu(model)")
    p.add_argument("--max-tokens", type=int, default=4096, help="our token budget per batch")
    p.add_argument("--data-root", default=os.environ.get("ENCDEC_DATA_DIR", "/work/shared/datasets"))
    p.add_argument("--precisions", default="fp32,bf16")
    p.add_argument("--skip-train", action="store_true")
    p.add_argument("--skip-decode", action="store_true")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--profile", action="store_true",
                   help="after the table, torch.profiler top ops per side: 2 training steps per precision, "
                        "one fixed-length greedy and beam batch")
    args = p.parse_args()
    if args.quick:
        args.rounds, args.steps, args.warmup, args.dec_batches = 1, 2, 1, 1
    return args


ARGS = parse_args()
os.environ.setdefault("OMP_NUM_THREADS", str(ARGS.threads))
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from torch.utils.data import DataLoader  # noqa: E402

torch.set_num_threads(ARGS.threads)
try:
    torch.set_num_interop_threads(1)
except RuntimeError:
    pass

import transformers  # noqa: E402
from transformers import (  # noqa: E402
    BartConfig,
    BartForConditionalGeneration,
    DataCollatorForSeq2Seq,
    PreTrainedTokenizerFast,
)

from encdec.data.bucketing import TokenBudgetBatchSampler  # noqa: E402
from encdec.decoding import BeamSearch, Greedy  # noqa: E402
from encdec.decoding.quantize import quantize_for_cpu  # noqa: E402
from encdec.model import EncoderDecoder  # noqa: E402
from encdec.modules.transformer import TransformerDecoder, TransformerEncoder  # noqa: E402
from encdec.objectives import MLE  # noqa: E402
from encdec_tasks.translation import TranslationTask  # noqa: E402
from encdec_tasks.translation.data import Multi30k  # noqa: E402

transformers.logging.set_verbosity_error()

D_MODEL, LAYERS, HEADS, FFN, DROPOUT = 256, 3, 4, 1024, 0.1
LR, CLIP = 5e-4, 1.0


def log(msg: str) -> None:
    print(msg, flush=True)


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return _platform.processor() or "unknown CPU"


def amp(precision: str):
    return torch.autocast("cpu", dtype=torch.bfloat16) if precision == "bf16" else nullcontext()


def infinite(loader: DataLoader):
    """Batches forever; a new epoch (new iterator, new shuffle) when one runs out."""
    epoch = 0
    while True:
        sampler = loader.batch_sampler
        if hasattr(sampler, "set_epoch"):
            sampler.set_epoch(epoch)
        yield from loader
        epoch += 1


def out_lengths(tokens: torch.Tensor, eos: int) -> torch.Tensor:
    """Per row: tokens up to and including the first EOS (the whole row when there is none)."""
    is_eos = tokens == eos
    first = is_eos.int().argmax(1)
    return torch.where(is_eos.any(1), first + 1, torch.full_like(first, tokens.size(1)))


# ---------------------------------------------------------------------------------------------
# the two sides
# ---------------------------------------------------------------------------------------------
class Ours:
    name = "ours"

    def __init__(self, adapter: TranslationTask, max_tokens: int, seed: int):
        self.adapter = adapter
        ids = adapter.special_ids()
        vocab = adapter.tgt_tok.vocab_size
        torch.manual_seed(seed)
        dims = dict(vocab_size=vocab, d_model=D_MODEL, layers=LAYERS, heads=HEADS, ffn=FFN, dropout=DROPOUT)
        self.model = EncoderDecoder(
            TransformerEncoder(**dims), TransformerDecoder(**dims),
            ids["bos_id"], ids["eos_id"], ids["pad_id"], share_embeddings=True,
        )
        # the platform's own defaults for the other two dropouts (BART's config mirrors them)
        layer = self.model.encoder.layers[0]
        self.attention_dropout = float(layer.attn.dropout)
        self.activation_dropout = float(next(m.p for m in layer.ffn if isinstance(m, torch.nn.Dropout)))
        self.objective = MLE(0.1)
        self.opt = torch.optim.AdamW(self.model.parameters(), lr=LR)
        examples = adapter.examples("train")
        self.sampler = TokenBudgetBatchSampler(
            [adapter.length(e) for e in examples], max_tokens=max_tokens, shuffle=True, seed=seed
        )
        self.loader = DataLoader(examples, batch_sampler=self.sampler, collate_fn=adapter.collate, num_workers=0)
        self.batches = infinite(self.loader)
        self.eos, self.pad = ids["eos_id"], ids["pad_id"]

    def epoch_target_tokens_per_batch(self) -> tuple[float, float]:
        """(mean non-pad target tokens, mean sentences) per batch over one epoch of the sampler."""
        examples = self.adapter.examples("train")
        batches = self.sampler._batches()
        toks = [sum(len(examples[i]["tgt"]) + 1 for i in b) for b in batches]
        return statistics.fmean(toks), statistics.fmean(len(b) for b in batches)

    def train_step(self, precision: str) -> tuple[int, int, int]:
        batch = next(self.batches)
        with amp(precision):
            loss, logs = self.objective.loss(self.model, batch)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.model.parameters(), CLIP)
        self.opt.step()
        self.opt.zero_grad(set_to_none=True)
        return int(logs["ntokens"]), batch.tgt_out.numel(), len(batch)

    def decode_inputs(self, examples: list) -> tuple[torch.Tensor, torch.Tensor]:
        b = self.adapter.collate(examples)
        return b.src, b.src_mask

    def decode(self, src, src_mask, beam: int, max_len: int, fixed: bool) -> torch.Tensor:
        # fixed: EOS banned until the last step, which forces it -> exactly max_len tokens
        kw = {"max_len": max_len, "min_len": max_len - 1 if fixed else 0, "dtype": ARGS.decode_dtype}
        search = (
            Greedy(**kw) if beam == 1
            else BeamSearch(beam_size=beam, length_penalty=1.0, stopping=ARGS.stopping, **kw)
        )
        return search(self.decoding_model(), src, src_mask).best()

    def decoding_model(self):
        """The model decoding uses; with --int8 its quantised copy, made on the first call
        (decoding runs after all training rounds, so the weights no longer change)."""
        if not ARGS.int8:
            return self.model
        if getattr(self, "_int8", None) is None:
            self._int8 = quantize_for_cpu(self.model)
        return self._int8


HF_EARLY_STOPPING = {"early": True, "heuristic": False, "exact": "never"}


class HF:
    name = "HF"

    def __init__(self, adapter: TranslationTask, batch_size: int, seed: int, attention_dropout: float,
                 activation_dropout: float):
        tok = adapter.tgt_tok
        self.config = BartConfig(
            vocab_size=tok.vocab_size, d_model=D_MODEL,
            encoder_layers=LAYERS, decoder_layers=LAYERS,
            encoder_attention_heads=HEADS, decoder_attention_heads=HEADS,
            encoder_ffn_dim=FFN, decoder_ffn_dim=FFN, max_position_embeddings=256,
            pad_token_id=tok.pad_id, bos_token_id=tok.bos_id, eos_token_id=tok.eos_id,
            decoder_start_token_id=tok.bos_id, forced_eos_token_id=None, dropout=DROPOUT,
            attention_dropout=attention_dropout, activation_dropout=activation_dropout,
        )
        torch.manual_seed(seed)
        self.model = BartForConditionalGeneration(self.config)
        self.opt = torch.optim.AdamW(self.model.parameters(), lr=LR)
        self.tokenizer = PreTrainedTokenizerFast(
            tokenizer_object=adapter.src_tok.tok, pad_token="<pad>", bos_token="<s>", eos_token="</s>", unk_token="<unk>"
        )
        # what `dataset.map(tokenize)` gives an HF user: source ids, labels = target ids + EOS
        # (the same token sequences our collate builds)
        self.dataset = [
            {"input_ids": e["src"].tolist(), "labels": e["tgt"].tolist() + [tok.eos_id]}
            for e in adapter.examples("train")
        ]
        self.collator = DataCollatorForSeq2Seq(self.tokenizer, model=self.model, padding=True, return_tensors="pt")
        gen = torch.Generator().manual_seed(seed)
        self.loader = DataLoader(
            self.dataset, batch_size=batch_size, shuffle=True, collate_fn=self.collator, num_workers=0, generator=gen
        )
        self.batches = infinite(self.loader)
        self.eos, self.pad = tok.eos_id, tok.pad_id
        self.vocab = tok.vocab_size

    def train_step(self, precision: str) -> tuple[int, int, int]:
        batch = dict(next(self.batches))
        labels = batch.pop("labels")
        with amp(precision):
            logits = self.model(**batch).logits
            loss = F.cross_entropy(
                logits.float().view(-1, self.vocab), labels.view(-1), ignore_index=-100, label_smoothing=0.1
            )
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.model.parameters(), CLIP)
        self.opt.step()
        self.opt.zero_grad(set_to_none=True)
        return int((labels != -100).sum()), labels.numel(), labels.size(0)

    def decode_inputs(self, examples: list) -> tuple[torch.Tensor, torch.Tensor]:
        padded = self.tokenizer.pad([{"input_ids": e["src"].tolist()} for e in examples], return_tensors="pt")
        return padded["input_ids"], padded["attention_mask"]

    def decode(self, input_ids, attention_mask, beam: int, max_len: int, fixed: bool) -> torch.Tensor:
        # fixed: EOS suppressed for the first max_len - 1 tokens -> exactly max_len tokens
        out = self.model.generate(
            input_ids=input_ids, attention_mask=attention_mask, max_new_tokens=max_len,
            num_beams=beam, do_sample=False, length_penalty=1.0,
            **({"min_new_tokens": max_len - 1} if fixed else {}),
            **({"early_stopping": HF_EARLY_STOPPING[ARGS.stopping]} if beam > 1 else {}),
        )
        return out[:, 1:]  # drop decoder_start_token


# ---------------------------------------------------------------------------------------------
# measurements
# ---------------------------------------------------------------------------------------------
def time_training(side, precision: str, warmup: int, steps: int) -> dict:
    side.model.train()
    for _ in range(warmup):
        side.train_step(precision)
    tokens = slots = sents = 0
    t0 = time.perf_counter()
    for _ in range(steps):
        n, s, b = side.train_step(precision)
        tokens, slots, sents = tokens + n, slots + s, sents + b
    dt = time.perf_counter() - t0
    return {"tok_s": tokens / dt, "slots_s": slots / dt, "tokens_per_batch": tokens / steps, "sents_per_batch": sents / steps,
            "pad_frac": 1 - tokens / slots, "sec": dt}


def time_decoding(side, inputs: list, beam: int, max_len: int, fixed: bool) -> dict:
    side.model.eval()
    if hasattr(side, "decoding_model"):
        side.decoding_model()  # an --int8 copy is made outside the timed region
    tokens = sents = 0
    t0 = time.perf_counter()
    for src, mask in inputs:
        out = side.decode(src, mask, beam, max_len, fixed)
        tokens += int(out_lengths(out, side.eos).sum())
        sents += out.size(0)
    dt = time.perf_counter() - t0
    return {"tok_s": tokens / dt, "sent_s": sents / dt, "avg_len": tokens / sents, "sec": dt}


def med(rows: list[dict], key: str) -> float:
    return statistics.median(r[key] for r in rows)


def main() -> None:
    args = ARGS
    command = "OMP_NUM_THREADS={} python bench/speed_translation.py {}".format(
        os.environ["OMP_NUM_THREADS"], " ".join(shlex.quote(a) for a in sys.argv[1:])
    ).rstrip()
    log(f"# {command}")
    log(f"# {cpu_name()}, {os.cpu_count()} logical CPUs, torch {torch.__version__} "
        f"({torch.get_num_threads()} threads), transformers {transformers.__version__}")

    t0 = time.perf_counter()
    adapter = TranslationTask(Multi30k(root=args.data_root, download=False))
    run_dir = tempfile.mkdtemp(prefix="speed_translation_")
    adapter.setup(run_dir, "fit")
    ids = adapter.special_ids()
    assert (ids["pad_id"], ids["bos_id"], ids["eos_id"], adapter.tgt_tok.unk_id) == (0, 1, 2, 3), ids
    train = adapter.examples("train")
    test = adapter.examples("test")
    log(f"tokenizer: joint BPE, {adapter.tgt_tok.vocab_size} pieces; {len(train)} train pairs, "
        f"{len(test)} test; setup {time.perf_counter() - t0:.1f}s")

    ours = Ours(adapter, args.max_tokens, args.seed)
    ours_tok_per_batch, ours_sents_per_batch = ours.epoch_target_tokens_per_batch()
    mean_tgt = statistics.fmean(len(e["tgt"]) + 1 for e in train)
    hf_bs = max(1, round(ours_tok_per_batch / mean_tgt))
    hf = HF(adapter, hf_bs, args.seed, ours.attention_dropout, ours.activation_dropout)
    n_ours = sum(p.numel() for p in ours.model.parameters())
    n_hf = sum(p.numel() for p in hf.model.parameters())
    attn_impl = hf.model.config._attn_implementation
    log(f"ours: {n_ours/1e6:.2f}M params; one epoch = {len(ours.sampler)} batches, "
        f"mean {ours_tok_per_batch:.0f} target tokens / {ours_sents_per_batch:.1f} sentences per batch "
        f"(max_tokens={args.max_tokens})")
    log(f"HF:   {n_hf/1e6:.2f}M params; attn_implementation={attn_impl}; batch_size={hf_bs} sentences "
        f"(mean target length {mean_tgt:.2f} incl. EOS -> {hf_bs * mean_tgt:.0f} target tokens per batch); "
        f"dropout={hf.config.dropout} attention_dropout={hf.config.attention_dropout} "
        f"activation_dropout={hf.config.activation_dropout} activation={hf.config.activation_function}")
    sides = [ours, hf]
    precisions = [p for p in args.precisions.split(",") if p]

    train_rows: dict[tuple[str, str], list[dict]] = {}
    dec_rows: dict[tuple[str, int, bool], list[dict]] = {}
    dec_inputs: dict[str, list] = {}
    bs = args.dec_batch_size
    chunks = [list(test[i * bs:(i + 1) * bs]) for i in range(args.dec_batches)]
    for side in sides:
        dec_inputs[side.name] = [side.decode_inputs(c) for c in chunks]
    for (a, am), (b, bm) in zip(dec_inputs["ours"], dec_inputs["HF"]):
        assert torch.equal(a, b) and torch.equal(am.bool(), bm.bool()), "decoding inputs differ"
    modes = [(beam, fixed) for fixed in (False, True) for beam in sorted({1, args.beam})]

    if not args.skip_train:
        for r in range(args.rounds):
            order = sides if r % 2 == 0 else sides[::-1]
            for precision in precisions:
                for side in order:
                    row = time_training(side, precision, args.warmup, args.steps)
                    train_rows.setdefault((side.name, precision), []).append(row)
                    log(f"round {r} train {precision:4s} {side.name:4s}: {row['tok_s']:8.0f} tgt tok/s  "
                        f"({row['tokens_per_batch']:.0f} tgt tok, {row['sents_per_batch']:.0f} sents/batch, "
                        f"pad {row['pad_frac']:.1%}, {row['sec']:.1f}s)")

    # decoding runs on the weights the training rounds left (frozen from here on)
    if not args.skip_decode:
        for side in sides:  # one untimed batch per side and mode
            for beam, fixed in modes:
                time_decoding(side, dec_inputs[side.name][:1], beam, args.max_len, fixed)
        for r in range(args.rounds):
            order = sides if r % 2 == 0 else sides[::-1]
            for beam, fixed in modes:
                for side in order:
                    row = time_decoding(side, dec_inputs[side.name], beam, args.max_len, fixed)
                    dec_rows.setdefault((side.name, beam, fixed), []).append(row)
                    log(f"round {r} decode beam={beam} {'fixed' if fixed else 'free '} {side.name:4s}: "
                        f"{row['tok_s']:8.0f} out tok/s  {row['sent_s']:6.1f} sent/s  "
                        f"avg len {row['avg_len']:.1f}  ({row['sec']:.1f}s)")

    # -- the table ---------------------------------------------------------------------------
    lines = [
        "",
        f"Command: `{command}`  ",
        f"Hardware: {cpu_name()}, {os.cpu_count()} logical CPUs; {torch.get_num_threads()} torch threads on both "
        f"sides; torch {torch.__version__}, transformers {transformers.__version__}; "
        f"{args.rounds} interleaved rounds, medians.  ",
        f"Models: ours {n_ours/1e6:.2f}M params (pre-norm, ReLU, sinusoidal positions, tied embeddings, plain "
        f"matmul attention); BART {n_hf/1e6:.2f}M params (post-norm, GELU, learned positions, tied embeddings, "
        f"attn_implementation={attn_impl}); dropout {DROPOUT} on residuals and embeddings, attention/activation "
        f"dropout {ours.attention_dropout}/{ours.activation_dropout} on both sides.  ",
    ]
    if train_rows:
        o = train_rows[("ours", precisions[0])]
        h = train_rows[("HF", precisions[0])]
        lines.append(
            f"Training batches: ours TokenBudgetBatchSampler(max_tokens={args.max_tokens}): "
            f"{med(o, 'sents_per_batch'):.0f} sentences, {med(o, 'tokens_per_batch'):.0f} target tokens, "
            f"{med(o, 'pad_frac'):.0%} target padding per batch (epoch mean {ours_tok_per_batch:.0f} target tokens); "
            f"HF shuffled batch_size={hf_bs}: {med(h, 'tokens_per_batch'):.0f} target tokens, "
            f"{med(h, 'pad_frac'):.0%} target padding; {args.warmup} warm-up + {args.steps} timed steps "
            f"per configuration per round, data loading included.  "
        )
    if dec_rows:
        lines.append(
            f"Decoding: {args.dec_batches} batches x {bs} test_2016_flickr sources per round, fp32, max "
            f"{args.max_len} output tokens; output tokens = up to and including EOS. Random-init models stop at "
            f"arbitrary, different lengths (free rows: compare the avg. lengths before the rates), so the "
            f"fixed-length rows ban EOS until token {args.max_len} on both sides (ours min_len={args.max_len - 1}, "
            f"HF min_new_tokens={args.max_len - 1}): equal work per sentence, the like-for-like comparison. "
            f"Weights: those the training rounds left "
            f"({0 if args.skip_train else args.rounds * len(precisions) * (args.warmup + args.steps)} AdamW steps "
            f"per side from random init)."
        )
    lines += ["", "| workload | ours | HF BART | ours / HF |", "|---|---:|---:|---:|"]
    for precision in precisions:
        if ("ours", precision) in train_rows:
            o, h = med(train_rows[("ours", precision)], "tok_s"), med(train_rows[("HF", precision)], "tok_s")
            lines.append(f"| train {precision}, target tok/s | {o:,.0f} | {h:,.0f} | **{o / h:.2f}x** |")
            o, h = med(train_rows[("ours", precision)], "slots_s"), med(train_rows[("HF", precision)], "slots_s")
            lines.append(f"| train {precision}, padded target positions/s (diagnostic) | {o:,.0f} | {h:,.0f} | {o / h:.2f}x |")
    for beam, fixed in modes:
        if ("ours", beam, fixed) in dec_rows:
            label = ("greedy" if beam == 1 else f"beam {beam}") + (f", fixed length {args.max_len}" if fixed else "")
            o, h = dec_rows[("ours", beam, fixed)], dec_rows[("HF", beam, fixed)]
            lines.append(f"| {label}, output tok/s | {med(o, 'tok_s'):,.0f} | {med(h, 'tok_s'):,.0f} | "
                         f"**{med(o, 'tok_s') / med(h, 'tok_s'):.2f}x** |")
            lines.append(f"| {label}, sentences/s | {med(o, 'sent_s'):,.1f} | {med(h, 'sent_s'):,.1f} | "
                         f"{med(o, 'sent_s') / med(h, 'sent_s'):.2f}x |")
            lines.append(f"| {label}, avg. output length | {med(o, 'avg_len'):.1f} | {med(h, 'avg_len'):.1f} | |")
    log("\n".join(lines))
    if args.profile:
        profile(sides, precisions, dec_inputs, args)


def profile(sides, precisions, dec_inputs, args) -> None:
    from torch.profiler import ProfilerActivity
    from torch.profiler import profile as torch_profile

    def show(title: str, prof) -> None:
        log(f"\n## profile: {title}; top ops by self CPU time")
        log(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=18))

    for side in sides:
        for precision in precisions:
            side.model.train()
            side.train_step(precision)
            with torch_profile(activities=[ProfilerActivity.CPU]) as prof:
                for _ in range(2):
                    side.train_step(precision)
            show(f"{side.name} train {precision}, 2 steps", prof)
        side.model.eval()
        for beam in sorted({1, args.beam}):
            with torch_profile(activities=[ProfilerActivity.CPU]) as prof:
                side.decode(*dec_inputs[side.name][0], beam, args.max_len, True)
            show(f"{side.name} decode beam={beam}, fixed length {args.max_len}, 1 batch", prof)


if __name__ == "__main__":
    main()
