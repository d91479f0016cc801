#!/usr/bin/env python
"""RNN decoding speed: beams sharing their source's memory vs one memory copy per beam.

Decodes test_2016_flickr sources with a trained GRU/LSTM run (greedy and beam 4, batch 32,
fp32) twice per round, interleaved: as the searches run it (the beams of a source share one
copy of its memory, attention keys and mask: `EncoderOutput.group_size`), and with every row
treated as its own source (one copy per beam, selected again at every beam reorder: how the
RNN decoder worked before it kept per-source tensors once). Both must give identical outputs;
the script checks it. Reports output tokens/s (generated tokens up to and including EOS),
medians over rounds.

    OMP_NUM_THREADS=2 python bench/rnn_decoding.py --run-dir bench/runs/multi30k_gru --threads 2
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from pathlib import Path

p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
p.add_argument("--run-dir", required=True)
p.add_argument("--checkpoint", default="best")
p.add_argument("--threads", type=int, default=os.cpu_count())
p.add_argument("--rounds", type=int, default=3)
p.add_argument("--batches", type=int, default=3, help="batches of --batch-size test sources per round")
p.add_argument("--batch-size", type=int, default=32)
p.add_argument("--beam", type=int, default=4)
p.add_argument("--max-len", type=int, default=64)
ARGS = p.parse_args()
os.environ.setdefault("OMP_NUM_THREADS", str(ARGS.threads))
os.environ.setdefault("ENCDEC_DATA_DIR", str(Path(__file__).resolve().parents[2] / "shared" / "datasets"))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch  # noqa: E402

from encdec.decoding import BeamSearch, Greedy  # noqa: E402
from encdec.run_dir import load_run  # noqa: E402

torch.set_num_threads(ARGS.threads)


class OneCopyPerRow:
    """The decoder, told that every row is its own source: no memory shared between beams."""

    def __init__(self, decoder):
        self.decoder = decoder

    def init_state(self, enc):
        enc.group_size = 1
        return self.decoder.init_state(enc)

    def step(self, tokens, state):
        return self.decoder.step(tokens, state)

    def reorder(self, state, index):
        return self.decoder.reorder(state, index)


class WithDecoder(torch.nn.Module):
    """The model with its decoder swapped for a wrapper (encode and special ids unchanged)."""

    def __init__(self, model, decoder):
        super().__init__()
        self.model, self.decoder = model, decoder
        self.bos_id, self.eos_id, self.pad_id = model.bos_id, model.eos_id, model.pad_id

    def encode(self, src, src_mask):
        return self.model.encode(src, src_mask)


def out_tokens(tokens: torch.Tensor, pad: int) -> int:
    """Generated tokens up to and including EOS: everything after it is padding."""
    return int((tokens != pad).sum())


def main() -> None:
    saved, adapter, model = load_run(ARGS.run_dir, ARGS.checkpoint, stage="predict")
    model.eval()
    test = adapter.examples("test")
    bs = ARGS.batch_size
    batches = [adapter.collate(list(test[i * bs:(i + 1) * bs])) for i in range(ARGS.batches)]
    sides = {"shared memory": model, "one copy per beam": WithDecoder(model, OneCopyPerRow(model.decoder))}
    params = sum(p.numel() for p in model.parameters()) / 1e6
    print(f"# {type(model.decoder).__name__} ({params:.2f}M parameters) from {ARGS.run_dir} ({ARGS.checkpoint}); "
          f"torch {torch.__version__}, {torch.get_num_threads()} threads; {ARGS.batches} x {bs} test sources, "
          f"max {ARGS.max_len} tokens, {ARGS.rounds} interleaved rounds", flush=True)
    for name, search in (("greedy", Greedy(max_len=ARGS.max_len)),
                         (f"beam {ARGS.beam}", BeamSearch(beam_size=ARGS.beam, max_len=ARGS.max_len))):
        speeds: dict[str, list[float]] = {s: [] for s in sides}
        outputs: dict[str, list[torch.Tensor]] = {}
        for r in range(ARGS.rounds):
            order = list(sides) if r % 2 == 0 else list(sides)[::-1]
            for side in order:
                tokens, got = 0, []
                t0 = time.perf_counter()
                with torch.no_grad():
                    for b in batches:
                        best = search(sides[side], b.src, b.src_mask).best()
                        tokens += out_tokens(best, model.pad_id)
                        got.append(best)
                speeds[side].append(tokens / (time.perf_counter() - t0))
                outputs[side] = got
        same = all(torch.equal(a, b) for a, b in zip(*outputs.values()))
        a, b = (statistics.median(v) for v in speeds.values())
        print(f"{name}: shared memory {a:,.0f} tok/s | one copy per beam {b:,.0f} tok/s | ratio {a / b:.2f}x | "
              f"outputs identical: {same} | rounds {', '.join(f'{x:,.0f}/{y:,.0f}' for x, y in zip(*speeds.values()))}",
              flush=True)


if __name__ == "__main__":
    main()
