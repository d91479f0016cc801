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
    model after quantize_for_cpu (int8 dynamic linear layers); --onednn with pack_for_cpu
    (fp32 linear layers on oneDNN prepacked weights, encdec-eval/predict `onednn=true`). All
    three are ours-only options.
(c) --ct2 adds CTranslate2 as two more decoding sides: our model, with the weights the
    training rounds left, converted by encdec.export.ctranslate2 (its spec API) and loaded
    twice, compute_type float32 ("CT2") and int8 ("CT2 int8", weights quantised at load),
    intra_threads = --threads, inter_threads 1. Same source tokens (our ids as vocabulary
    pieces), translate_batch on the whole batch with the options that reproduce our search
    (encdec.export.ctranslate2.translate_options): beam_size 1 | 4, length_penalty 1.0,
    min_decoding_length 0, max_decoding_length 64; fixed length: min = max = 64 (EOS banned
    throughout, 64 tokens per sentence, the same work as ours' 63 + forced EOS). CTranslate2
    always stops a beam as fairseq does (patience 1 = --stopping early). Before timing, one
    untimed batch per mode logs how many CT2 fp32 outputs equal ours (fixed-length beam
    outputs differ by design: CTranslate2 renormalises the distribution after banning EOS,
    ours does not, and ours ends on a forced EOS).
    --run-dir decodes a trained run instead (its tokenizer and weights, ours and CT2; HF stays
    random-init, so only the fixed-length rows compare with it): the free rows then stop where
    the trained model ends its sentences, on both engines alike.

Rounds are interleaved (the side that goes first alternates); the table reports medians
over rounds and the ratio ours/HF.

    python bench/speed_translation.py                 # full run (all cores)
    python bench/speed_translation.py --quick --threads 1
    python bench/speed_translation.py --skip-train --ct2      # decoding: ours / HF / CTranslate2
    python bench/speed_translation.py --ct2 --run-dir bench/runs/multi30k_transformer
"""

from __future__ import annotations

import argparse
import gc
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
    p.add_argument("--onednn", action="store_true", help="ours: decode with pack_for_cpu(model) (fp32, oneDNN linear layers)")
    p.add_argument("--ct2", action="store_true",
                   help="decoding also by CTranslate2 (our model converted; compute types float32 and int8)")
    p.add_argument("--run-dir", default=None,
                   help="decode a trained encdec-train run (its tokenizer and weights) on our and the CT2 sides; "
                        "implies --skip-train; HF BART stays random-init at the bench's dimensions")
    p.add_argument("--checkpoint", default="best", help="with --run-dir: best | last | averaged | a .ckpt path")
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
    if args.run_dir:
        args.skip_train = True  # the trained weights are what decodes
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
from encdec.decoding.quantize import for_serving  # noqa: E402
from encdec.export import ctranslate2 as ct2_export  # noqa: E402
from encdec.model import EncoderDecoder  # noqa: E402
from encdec.modules.transformer import TransformerDecoder, TransformerEncoder  # noqa: E402
from encdec.objectives import MLE  # noqa: E402
from encdec.run_dir import load_run  # noqa: E402
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
        """The model decoding uses; with --int8 its quantised copy, with --onednn its copy with
        oneDNN-packed fp32 linear layers, made on the first call (decoding runs after all
        training rounds, so the weights no longer change)."""
        if not (ARGS.int8 or ARGS.onednn):
            return self.model
        if getattr(self, "_serving", None) is None:
            self._serving = for_serving(self.model, int8=ARGS.int8, onednn=ARGS.onednn)
        return self._serving


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


class CT2:
    """Our model converted to CTranslate2, decoded by `Translator.translate_batch`."""

    def __init__(self, ours: Ours, compute_type: str, model_dir: Path, threads: int):
        import ctranslate2

        self.ctranslate2, self.ours, self.model_dir = ctranslate2, ours, model_dir
        self.compute_type, self.threads = compute_type, threads
        self.name = "CT2" if compute_type == "float32" else f"CT2 {compute_type}"
        self.vocab = ct2_export.tokenizer_vocabulary(ours.adapter.tgt_tok)
        self.index = {t: i for i, t in enumerate(self.vocab)}
        self.eos, self.pad = ours.eos, ours.pad
        self.unk = self.vocab[ours.adapter.tgt_tok.unk_id]
        self.translator = None

    def decode_inputs(self, examples: list) -> tuple[list[list[str]], None]:
        return [[self.vocab[i] for i in e["src"].tolist()] for e in examples], None

    def release(self) -> None:
        """Drops the translator after each timed block. With ctranslate2 imported after torch
        (as here), a translator that has run halves the speed of PyTorch decoding (ours and HF
        alike) in the same process until it is deleted (bench/ct2_thread_interference.py,
        bench/RESULTS.md). Loading it again is outside the timed region."""
        self.translator = None
        gc.collect()

    def decoding_model(self):
        """The translator, made on the first call after a release (decoding runs after all
        training rounds, so the weights no longer change); the sides of both compute types
        share one conversion."""
        if self.translator is None:
            if not (self.model_dir / "model.bin").exists():
                ct2_export.save(self.ours.model, self.vocab, self.vocab, self.model_dir, unk_token=self.unk)
            self.translator = self.ctranslate2.Translator(
                str(self.model_dir), device="cpu", compute_type=self.compute_type,
                intra_threads=self.threads, inter_threads=1,
            )
        return self.translator

    def decode(self, tokens, _mask, beam: int, max_len: int, fixed: bool) -> torch.Tensor:
        search = Greedy(max_len=max_len) if beam == 1 else BeamSearch(beam_size=beam, length_penalty=1.0, max_len=max_len)
        options = ct2_export.translate_options(search, self.vocab[self.pad])
        if fixed:  # EOS banned throughout -> exactly max_len tokens
            options["min_decoding_length"] = max_len
        results = self.decoding_model().translate_batch(tokens, **options)
        rows = [[self.index[t] for t in r.hypotheses[0]] for r in results]
        out = torch.full((len(rows), max(map(len, rows))), self.pad, dtype=torch.long)
        for i, row in enumerate(rows):
            out[i, : len(row)] = torch.tensor(row)
        return out


def agreement(ours: torch.Tensor, theirs: torch.Tensor, eos: int, cap: int) -> int:
    """Rows equal up to the first EOS, within the first `cap` tokens (at the length limit ours
    forces EOS where CTranslate2 keeps its best token)."""
    def rows(t):
        out = []
        for row in t[:, :cap].tolist():
            out.append(row[: row.index(eos) + 1] if eos in row else row)
        return out
    return sum(a == b for a, b in zip(rows(ours), rows(theirs)))


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
    if hasattr(side, "model"):
        side.model.eval()
    if hasattr(side, "decoding_model"):
        side.decoding_model()  # an --int8 copy, a CTranslate2 translator: made outside the timed region
    side.decode(*inputs[0], beam, max_len, fixed)  # untimed: a translator just loaded warms up here
    tokens = sents = 0
    t0 = time.perf_counter()
    for src, mask in inputs:
        out = side.decode(src, mask, beam, max_len, fixed)
        tokens += int(out_lengths(out, side.eos).sum())
        sents += out.size(0)
    dt = time.perf_counter() - t0
    if hasattr(side, "release"):
        side.release()
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
    work_dir = tempfile.mkdtemp(prefix="speed_translation_")
    if args.run_dir:  # a trained run's own tokenizer, read only (stage predict never writes one)
        adapter.setup(args.run_dir, "predict")
    else:
        adapter.setup(work_dir, "fit")
    ids = adapter.special_ids()
    assert (ids["pad_id"], ids["bos_id"], ids["eos_id"], adapter.tgt_tok.unk_id) == (0, 1, 2, 3), ids
    train = adapter.examples("train")
    test = adapter.examples("test")
    log(f"tokenizer: joint BPE, {adapter.tgt_tok.vocab_size} pieces; {len(train)} train pairs, "
        f"{len(test)} test; setup {time.perf_counter() - t0:.1f}s")

    ours = Ours(adapter, args.max_tokens, args.seed)
    if args.run_dir:
        ours.model = load_run(args.run_dir, args.checkpoint, stage="predict")[2]
        log(f"ours: weights of {args.run_dir} ({args.checkpoint})")
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
    ct2_sides = []
    if args.ct2:
        ct2_dir = Path(work_dir) / "ctranslate2"
        ct2_sides = [CT2(ours, compute_type, ct2_dir, args.threads) for compute_type in ("float32", "int8")]
        log(f"CTranslate2 {ct2_sides[0].ctranslate2.__version__}: our model converted after the training rounds "
            f"into {ct2_dir}; compute_type float32 and int8, intra_threads={args.threads}")
    dec_sides = sides + ct2_sides
    precisions = [p for p in args.precisions.split(",") if p]

    train_rows: dict[tuple[str, str], list[dict]] = {}
    dec_rows: dict[tuple[str, int, bool], list[dict]] = {}
    dec_inputs: dict[str, list] = {}
    bs = args.dec_batch_size
    chunks = [list(test[i * bs:(i + 1) * bs]) for i in range(args.dec_batches)]
    for side in dec_sides:
        dec_inputs[side.name] = [side.decode_inputs(c) for c in chunks]
    for (a, am), (b, bm) in zip(dec_inputs["ours"], dec_inputs["HF"]):
        assert torch.equal(a, b) and torch.equal(am.bool(), bm.bool()), "decoding inputs differ"
    for side in ct2_sides:
        for (a, am), (pieces, _) in zip(dec_inputs["ours"], dec_inputs[side.name]):
            assert [row[m].tolist() for row, m in zip(a, am)] == [[side.index[t] for t in p] for p in pieces], \
                "decoding inputs differ"
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
        for side in dec_sides:  # one untimed batch per side and mode
            for beam, fixed in modes:
                time_decoding(side, dec_inputs[side.name][:1], beam, args.max_len, fixed)
        for side in ct2_sides[:1]:  # the same weights: CT2 fp32 should decode what ours does
            for beam, fixed in modes:
                first = dec_inputs["ours"][0]
                same = agreement(ours.decode(*first, beam, args.max_len, fixed),
                                 side.decode(*dec_inputs[side.name][0], beam, args.max_len, fixed),
                                 ours.eos, args.max_len - 1)
                log(f"untimed check, beam={beam} {'fixed' if fixed else 'free '}: {same} of {first[0].size(0)} "
                    f"{side.name} outputs equal ours in their first {args.max_len - 1} tokens")
            side.release()
        for r in range(args.rounds):
            order = dec_sides if r % 2 == 0 else dec_sides[::-1]
            for beam, fixed in modes:
                for side in order:
                    row = time_decoding(side, dec_inputs[side.name], beam, args.max_len, fixed)
                    dec_rows.setdefault((side.name, beam, fixed), []).append(row)
                    log(f"round {r} decode beam={beam} {'fixed' if fixed else 'free '} {side.name:8s}: "
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
            f"{args.max_len} output tokens; output tokens = up to and including EOS. "
            f"{'HF random-init stops' if args.run_dir else 'Random-init models stop'} at "
            f"arbitrary, different lengths (free rows: compare the avg. lengths before the rates), so the "
            f"fixed-length rows ban EOS until token {args.max_len} on both sides (ours min_len={args.max_len - 1}, "
            f"HF min_new_tokens={args.max_len - 1}): equal work per sentence, the like-for-like comparison. "
            + (f"Weights: ours (and CT2) those of the trained run {args.run_dir} ({args.checkpoint}), HF random "
               f"init (compare its fixed-length rows only)." if args.run_dir else
               f"Weights: those the training rounds left "
               f"({0 if args.skip_train else args.rounds * len(precisions) * (args.warmup + args.steps)} AdamW steps "
               f"per side from random init).")
        )
    if dec_rows and ct2_sides:
        lines.append(
            f"CTranslate2 {ct2_sides[0].ctranslate2.__version__}: our model with the same weights, converted by "
            f"encdec.export.ctranslate2; compute_type float32 (CT2 fp32) and int8 (CT2 int8, weights quantised at "
            f"load); intra_threads={args.threads}; translate_batch(beam_size=1|{args.beam}, length_penalty=1.0, "
            f"patience=1 (fairseq's early stop; ours: --stopping {args.stopping}), min_decoding_length=0, "
            f"max_decoding_length={args.max_len}; fixed length: min = max = {args.max_len}).  "
        )
    if dec_rows and (args.int8 or args.decode_dtype != "fp32"):
        lines.append(f"Ours decodes {'int8 (quantize_for_cpu)' if args.int8 else args.decode_dtype}: "
                     f"not like-for-like with HF fp32.  ")
    if dec_rows and args.onednn:
        lines.append("Ours decodes fp32 with its linear layers on oneDNN prepacked weights (pack_for_cpu), "
                     "HF fp32 with PyTorch's default (MKL) linear layers.  ")
    # one column per side, then each side's ratio to HF (and ours to CTranslate2 fp32)
    label = {"ours": "ours", "HF": "HF BART", "CT2": "CT2 fp32", "CT2 int8": "CT2 int8"}
    names = [side.name for side in dec_sides]
    ratios = [(n, "HF") for n in names if n != "HF"] + ([("ours", "CT2")] if ct2_sides else [])
    lines += ["", "| " + " | ".join(["workload"] + [label[n] for n in names]
                                    + [f"{label[a]} / {'HF' if b == 'HF' else label[b]}" for a, b in ratios]) + " |",
              "|---|" + "---:|" * (len(names) + len(ratios))]

    def row(workload: str, values: dict, fmt: str, bold: bool = False, show_ratios: bool = True) -> str:
        cells = [format(values[n], fmt) if n in values else "" for n in names]
        for a, b in ratios:
            cell = f"{values[a] / values[b]:.2f}x" if show_ratios and a in values and b in values else ""
            cells.append(f"**{cell}**" if bold and cell else cell)
        return "| " + " | ".join([workload] + cells) + " |"

    for precision in precisions:
        if ("ours", precision) in train_rows:
            for key, what, bold in (("tok_s", "target tok/s", True), ("slots_s", "padded target positions/s (diagnostic)", False)):
                values = {n: med(train_rows[(n, precision)], key) for n in ("ours", "HF")}
                lines.append(row(f"train {precision}, {what}", values, ",.0f", bold))
    for beam, fixed in modes:
        if ("ours", beam, fixed) in dec_rows:
            what = ("greedy" if beam == 1 else f"beam {beam}") + (f", fixed length {args.max_len}" if fixed else "")
            got = {n: dec_rows[(n, beam, fixed)] for n in names}
            lines.append(row(f"{what}, output tok/s", {n: med(r, "tok_s") for n, r in got.items()}, ",.0f", True))
            lines.append(row(f"{what}, sentences/s", {n: med(r, "sent_s") for n, r in got.items()}, ",.1f"))
            lines.append(row(f"{what}, avg. output length", {n: med(r, "avg_len") for n, r in got.items()}, ".1f",
                             show_ratios=False))
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
