#!/usr/bin/env python
"""PyTorch decoding speed in a process where a CTranslate2 translator has run.

Times our greedy decoding (fixed length 64, batch 32 test sources, fp32) five times in one
process: before any translator exists, after one is loaded, after it has translated a batch
(and a second later), and after it is deleted. With ctranslate2 imported after torch (as
bench/speed_translation.py does), a translator that has run halves the speed of PyTorch
decoding in the same process until it is deleted; imported before torch, it does not (the
two libraries bring their own OpenMP runtimes; which one loads first appears to decide).
bench/speed_translation.py therefore drops its translators after each timed block.

    OMP_NUM_THREADS=2 python bench/ct2_thread_interference.py --run-dir bench/runs/multi30k_transformer_linear1 --onednn [--import-first]
"""

from __future__ import annotations

import argparse
import gc
import os
import tempfile
import time
from pathlib import Path

p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
p.add_argument("--run-dir", required=True)
p.add_argument("--threads", type=int, default=2)
p.add_argument("--repeats", type=int, default=3, help="batches timed per measurement")
p.add_argument("--onednn", action="store_true", help="ours decodes with pack_for_cpu(model)")
p.add_argument("--import-first", action="store_true", help="import ctranslate2 before torch")
ARGS = p.parse_args()
os.environ.setdefault("OMP_NUM_THREADS", str(ARGS.threads))
os.environ.setdefault("ENCDEC_DATA_DIR", str(Path(__file__).resolve().parents[2] / "shared" / "datasets"))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

if ARGS.import_first:
    import ctranslate2  # noqa: E402,F401
import torch  # noqa: E402

from encdec.decoding import Greedy  # noqa: E402
from encdec.decoding.quantize import pack_for_cpu  # noqa: E402
from encdec.export import ctranslate2 as ct2_export  # noqa: E402
from encdec.run_dir import load_run  # noqa: E402

torch.set_num_threads(ARGS.threads)


def main() -> None:
    _, adapter, model = load_run(ARGS.run_dir, "best", stage="predict")
    plain = model
    if ARGS.onednn:
        model = pack_for_cpu(model)
    batch = adapter.collate(list(adapter.examples("test")[:32]))
    search = Greedy(max_len=64, min_len=63)

    def ours(when: str) -> None:
        search(model, batch.src, batch.src_mask)  # untimed warm-up
        t0 = time.perf_counter()
        for _ in range(ARGS.repeats):
            search(model, batch.src, batch.src_mask)
        print(f"ours, {when}: {ARGS.repeats * 32 * 64 / (time.perf_counter() - t0):,.0f} tok/s", flush=True)

    ours("no translator yet")
    import ctranslate2  # after torch (as in speed_translation.py) unless --import-first

    vocab = ct2_export.tokenizer_vocabulary(adapter.tgt_tok)
    folder = Path(tempfile.mkdtemp(prefix="ct2_interference_")) / "model"
    ct2_export.save(plain, vocab, vocab, folder, unk_token=vocab[adapter.tgt_tok.unk_id])
    translator = ctranslate2.Translator(str(folder), device="cpu", compute_type="float32",
                                        intra_threads=ARGS.threads, inter_threads=1)
    ours("translator loaded")
    source = [[vocab[i] for i in row[mask].tolist()] for row, mask in zip(batch.src, batch.src_mask)]
    translator.translate_batch(source, beam_size=1, max_decoding_length=64, min_decoding_length=64)
    ours("after it translated one batch")
    time.sleep(1.0)
    ours("one second later")
    del translator
    gc.collect()
    ours("translator deleted")
    print(f"# ctranslate2 {ctranslate2.__version__} (imported {'before' if ARGS.import_first else 'after'} torch), torch {torch.__version__}, {torch.get_num_threads()} threads")


if __name__ == "__main__":
    main()
