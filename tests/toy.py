"""Toy sequence tasks (copy, reverse) and a tiny plain-PyTorch training loop.

Shared by tests that check every encoder x decoder pairing actually learns: built directly in
Python (no Hydra, no Lightning) so a whole pairing trains in a few seconds on one CPU thread.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from encdec.decoding import Greedy
from encdec.model import EncoderDecoder
from encdec.modules.attention import AdditiveAttention, DotAttention, GeneralAttention
from encdec.modules.rnn import RNNDecoder, RNNEncoder
from encdec.modules.transformer import TransformerDecoder, TransformerEncoder
from encdec.objectives import MLE
from encdec.optim import cosine
from encdec.types import Batch

PAD, BOS, EOS, UNK = 0, 1, 2, 3
NUM_SPECIALS = 4
NUM_SYMBOLS = 10
VOCAB = NUM_SPECIALS + NUM_SYMBOLS
MIN_LEN, MAX_LEN = 3, 8

TASKS = ("copy", "reverse")


def make_batch(task: str, size: int, gen: torch.Generator) -> Batch:
    """`size` fresh random sequences of MIN_LEN..MAX_LEN symbols, right-padded, with masks.

    copy maps x to x, reverse maps x to x[::-1]; tgt_in = BOS + y, tgt_out = y + EOS.
    """
    if task not in TASKS:
        raise ValueError(f"unknown toy task {task!r}")
    lengths = torch.randint(MIN_LEN, MAX_LEN + 1, (size,), generator=gen)
    width = int(lengths.max())
    pos = torch.arange(width)
    mask = pos < lengths[:, None]
    symbols = torch.randint(0, NUM_SYMBOLS, (size, width), generator=gen) + NUM_SPECIALS
    src = symbols.masked_fill(~mask, PAD)
    if task == "copy":
        y = src
    else:
        y = src.gather(1, (lengths[:, None] - 1 - pos).clamp_min(0)).masked_fill(~mask, PAD)
    rows = torch.arange(size)
    tgt_in = torch.cat([torch.full((size, 1), BOS), y], dim=1)
    tgt_out = torch.cat([y, torch.full((size, 1), PAD)], dim=1)
    tgt_out[rows, lengths] = EOS
    return Batch(src=src, src_mask=mask, tgt_in=tgt_in, tgt_out=tgt_out)


# --- models -------------------------------------------------------------------------------

ATTENTION = {"additive": AdditiveAttention, "dot": DotAttention, "general": GeneralAttention}


def make_encoder(kind: str, d_model: int, layers: int = 1) -> torch.nn.Module:
    """kind: "transformer", "gru" or "lstm" (bidirectional, `layers` deep)."""
    if kind == "transformer":
        return TransformerEncoder(
            VOCAB, d_model=d_model, layers=layers, heads=4, ffn=2 * d_model, dropout=0.0, pad_id=PAD
        )
    return RNNEncoder(
        VOCAB,
        d_model=d_model,
        hidden_size=d_model,
        layers=layers,
        cell=kind,
        dropout=0.0,
        pad_id=PAD,
    )


def make_decoder(kind: str, d_model: int, layers: int = 1) -> torch.nn.Module:
    """kind: "transformer" (`layers` deep), or "<cell>+<attention>" such as "gru+additive",
    "lstm+dot" (the recurrent decoder has one layer)."""
    if kind == "transformer":
        return TransformerDecoder(
            VOCAB, d_model=d_model, layers=layers, heads=4, ffn=2 * d_model, dropout=0.0, pad_id=PAD
        )
    cell, attention = kind.split("+")
    return RNNDecoder(
        VOCAB,
        d_model=d_model,
        hidden_size=d_model,
        cell=cell,
        attention=ATTENTION[attention],
        dropout=0.0,
        pad_id=PAD,
    )


def make_model(encoder: str, decoder: str, d_model: int = 64, layers: int = 1) -> EncoderDecoder:
    return EncoderDecoder(
        make_encoder(encoder, d_model, layers),
        make_decoder(decoder, d_model, layers),
        bos_id=BOS,
        eos_id=EOS,
        pad_id=PAD,
        share_embeddings=True,
    )


# --- training and evaluation ----------------------------------------------------------------


@dataclass
class Result:
    accuracy: float  # exact-sequence accuracy of greedy decoding on the held-out test set
    loss: float  # last training-batch loss
    steps: int  # optimizer steps taken (fewer than asked when training stopped early)
    seconds: float  # training + evaluation wall time
    cpu_seconds: float  # the same in process CPU time (robust to a busy machine)
    curve: list[float]  # dev accuracy at each check


def exact_match(model: EncoderDecoder, batch: Batch) -> float:
    """Fraction of rows whose greedy output is exactly target + EOS (then only padding)."""
    model.eval()
    best = Greedy(max_len=MAX_LEN + 2)(model, batch.src, batch.src_mask).best()
    expected = batch.tgt_out
    width = max(best.size(1), expected.size(1))
    best = F.pad(best, (0, width - best.size(1)), value=PAD)
    expected = F.pad(expected, (0, width - expected.size(1)), value=PAD)
    return (best == expected).all(dim=1).float().mean().item()


def train(
    model: EncoderDecoder,
    task: str,
    *,
    steps: int,
    lr: float,
    batch_size: int = 128,
    warmup: int = 20,
    seed: int = 0,
    check_every: int = 25,
    dev_size: int = 200,
    test_size: int = 1000,
    stop_at: float = 0.99,
) -> Result:
    """Adam (warmup, cosine decay) on fresh random batches of `task`.

    Every `check_every` steps greedy decoding runs on a dev set; training stops early once
    its exact-match accuracy reaches `stop_at`. The returned accuracy is on a separate test
    set. Train, dev and test come from differently seeded streams (fresh random draws, not
    deduplicated: most 3-4 symbol sequences will also have been seen in training, while
    longer ones, from 10^5 to 10^8 possible, mostly will not).
    """
    torch.manual_seed(seed)
    train_gen = torch.Generator().manual_seed(seed)
    dev = make_batch(task, dev_size, torch.Generator().manual_seed(10_000 + seed))
    test = make_batch(task, test_size, torch.Generator().manual_seed(20_000 + seed))
    objective = MLE()
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, cosine(warmup_steps=warmup, total_steps=steps))
    start, cpu_start = time.perf_counter(), time.process_time()
    curve: list[float] = []
    loss = torch.tensor(float("nan"))
    step = 0
    for step in range(1, steps + 1):
        model.train()
        loss, _ = objective.loss(model, make_batch(task, batch_size, train_gen))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        if check_every and step % check_every == 0 and step < steps:
            with torch.no_grad():
                curve.append(exact_match(model, dev))
            if curve[-1] >= stop_at:
                break
    with torch.no_grad():
        accuracy = exact_match(model, test)
    return Result(
        accuracy,
        loss.item(),
        step,
        time.perf_counter() - start,
        time.process_time() - cpu_start,
        curve,
    )
