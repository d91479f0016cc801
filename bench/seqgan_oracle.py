"""SeqGAN synthetic-oracle benchmark: MLE pre-training, discriminator pre-training, then
adversarial training, with the NLL-oracle curve and wall time.

Drives the same `SeqGAN` objective, oracle, textgen data and core LSTM decoder as
`encdec-train experiment=seqgan_oracle_seqgan`, in a plain loop so that evaluation points can
be placed freely along the three phases and the curve written as JSON lines.

    OMP_NUM_THREADS=1 ENCDEC_DATA_DIR=/work/shared/datasets \\
      .venv/bin/python bench/seqgan_oracle.py --out bench/logs/seqgan_oracle.jsonl

Protocol (the paper's): 10,000 training sequences sampled from the oracle; NLL-oracle =
mean over `--eval-samples` generator samples (temperature 1) of the oracle's per-token NLL.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import torch
from torch import nn

from encdec.model import EncoderDecoder
from encdec.modules.constant_encoder import ConstantEncoder
from encdec.modules.discriminators import PAPER_NUM_FILTERS, CNNTextClassifier
from encdec.modules.rnn import RNNDecoder
from encdec.objectives.seqgan import SeqGAN
from encdec_tasks.textgen.oracle import OracleLSTM
from encdec_tasks.textgen.data import OracleData, oracle_special_ids, collate_oracle


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data-dir", default=os.environ.get("ENCDEC_DATA_DIR", "../shared/datasets"))
    ap.add_argument("--out", default="bench/logs/seqgan_oracle.jsonl")
    ap.add_argument("--seed", type=int, default=88)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--mle-epochs", type=float, default=120)
    ap.add_argument("--d-pretrain-epochs", type=float, default=10)
    ap.add_argument("--adv-rounds", type=int, default=200)
    ap.add_argument("--g-steps", type=int, default=1)
    ap.add_argument("--d-steps", type=int, default=15)
    ap.add_argument("--rollouts", type=int, default=16)
    ap.add_argument("--eval-samples", type=int, default=10000)
    ap.add_argument("--eval-every-epochs", type=float, default=10)
    ap.add_argument("--eval-every-rounds", type=int, default=10)
    ap.add_argument("--hidden", type=int, default=32)
    ap.add_argument("--g-lr", type=float, default=0.01)
    ap.add_argument("--d-lr", type=float, default=1e-4)
    ap.add_argument("--time-budget-min", type=float, default=60)
    ap.add_argument("--bf16", action="store_true", help="bf16 autocast in the discriminator and adversarial phases")
    ap.add_argument("--max-steps", type=int, default=0, help="stop after this many steps (timing probes)")
    ap.add_argument("--d-filter-scale", type=float, default=1.0, help="scale the paper's filter numbers")
    ap.add_argument("--save", default=None, help="save generator+objective state at the end of each phase here")
    ap.add_argument("--resume-from", default=None, help="a saved .pt (model + objective state) to continue from")
    ap.add_argument("--reward-baseline", default="none", choices=["none", "batch_mean"])
    ap.add_argument("--fresh-adversarial-adam", action="store_true")
    ap.add_argument("--sweep", nargs="*", default=None, help="saved .pt generators: run the temperature sweep instead")
    ap.add_argument("--temperatures", nargs="*", type=float, default=[0.7, 0.8, 0.9, 1.0, 1.1])
    args = ap.parse_args()
    if args.sweep:
        return temperature_sweep(args)
    torch.set_num_threads(1)
    torch.manual_seed(args.seed)
    start = time.time()
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    sink = out.open("w")

    def record(**row):
        row = {"wall_s": round(time.time() - start, 1), **row}
        sink.write(json.dumps(row) + "\n")
        sink.flush()
        print(json.dumps(row), flush=True)

    data = OracleData(root=args.data_dir, seed=args.seed)
    oracle: OracleLSTM = data.oracle()
    train = data.read("train")  # [10000, 20] oracle samples
    ids = oracle_special_ids(oracle.vocab_size)
    vocab = oracle.vocab_size + 3
    d = args.hidden
    model = EncoderDecoder(
        ConstantEncoder(d),
        RNNDecoder(vocab, d_model=d, hidden_size=d, cell="lstm", dropout=0.0, embed_dim=d, tie_embeddings=False),
        **ids,
    )
    disc = CNNTextClassifier(
        vocab, pad_id=ids["pad_id"], num_filters=[max(1, round(n * args.d_filter_scale)) for n in PAPER_NUM_FILTERS]
    )
    objective = SeqGAN(
        disc,
        generator_pretrain_epochs=args.mle_epochs,
        discriminator_pretrain_epochs=args.d_pretrain_epochs,
        adversarial_rounds=args.adv_rounds,
        generator_steps=args.g_steps,
        discriminator_steps=args.d_steps,
        rollouts=args.rollouts,
        max_len=21,  # 20 oracle tokens + EOS, as decoding.max_len counts
        min_len=20,
        generator_lr=args.g_lr,
        discriminator_lr=args.d_lr,
        reward_baseline=args.reward_baseline,
        fresh_adversarial_optimizer=args.fresh_adversarial_adam,
    )
    objective.build(model, {"vocab_size": vocab, "pad_id": ids["pad_id"]})
    if args.resume_from:  # weights and phase counters (optimiser moments start fresh)
        saved = torch.load(args.resume_from, weights_only=True)
        model.load_state_dict(saved["model"])
        objective.load_state_dict(saved["objective"])
    g_opt, d_opt = objective.configure_optimizers(model)
    steps_per_epoch = (len(train) + args.batch_size - 1) // args.batch_size
    objective.steps_per_epoch = steps_per_epoch
    record(event="start", args=vars(args), params_g=model.num_parameters(),
           params_d=sum(p.numel() for p in disc.parameters()), steps_per_epoch=steps_per_epoch,
           threads=torch.get_num_threads())

    def nll_oracle() -> float:
        t0 = time.time()
        src = torch.zeros(1000, 1, dtype=torch.long)
        with torch.no_grad():  # fp32: the metric's samples are never drawn from bf16 logits
            samples = torch.cat([objective.sample(model, src, None) for _ in range(args.eval_samples // 1000)])
        value = oracle.nll_oracle(samples)
        return value, time.time() - t0

    def batches():
        while True:
            perm = torch.randperm(len(train))
            for i in range(0, len(train), args.batch_size):
                yield collate_oracle(train[perm[i : i + args.batch_size]], ids)

    stream = batches()
    value, eval_s = nll_oracle()
    record(event="eval", phase="generator_mle", epoch=0, nll_oracle=value, eval_s=round(eval_s, 1))
    logs_acc, n_acc, total_steps = {}, 0, 0
    phase_start = time.time()
    while objective.phase != "done":
        phase, pstep = objective.phase, objective.phase_step
        # bf16 only where the discriminator and rollouts run; MLE stays fp32
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=args.bf16 and phase != "generator_mle"):
            logs = objective.step(model, next(stream), g_opt, d_opt)
        total_steps += 1
        for k, v in logs.items():
            logs_acc[k] = logs_acc.get(k, 0.0) + v
        n_acc += 1
        ended = objective.phase != phase
        evaluate = False
        if phase == "generator_mle":
            epoch = (pstep + 1) / steps_per_epoch
            evaluate = ended or (pstep + 1) % round(args.eval_every_epochs * steps_per_epoch) == 0
            where = {"epoch": round(epoch, 2)}
        elif phase == "discriminator_pretrain":
            evaluate = ended or (pstep + 1) % steps_per_epoch == 0
            where = {"epoch": round((pstep + 1) / steps_per_epoch, 2)}
        else:
            per_round = args.g_steps + args.d_steps
            rnd = (pstep + 1) / per_round
            evaluate = ended or ((pstep + 1) % per_round == 0 and int(rnd) % args.eval_every_rounds == 0)
            where = {"round": int(rnd)}
        if evaluate:
            means = {k: round(v / max(1, n_acc), 4) for k, v in logs_acc.items()}
            logs_acc, n_acc = {}, 0
            row = {"event": "eval", "phase": phase, **where, **means}
            if phase != "discriminator_pretrain":
                row["nll_oracle"], row["eval_s"] = nll_oracle()
            record(**row)
        if ended:
            record(event="phase_end", phase=phase, phase_wall_s=round(time.time() - phase_start, 1))
            phase_start = time.time()
            if args.save:
                torch.save({"model": model.state_dict(), "objective": objective.state_dict()}, f"{args.save}.{phase}.pt")
        if args.max_steps and total_steps >= args.max_steps:
            record(event="max_steps", phase=objective.phase, phase_step=objective.phase_step, **logs)
            break
        if (time.time() - start) / 60 > args.time_budget_min:
            record(event="time_budget_reached", phase=objective.phase, phase_step=objective.phase_step)
            break
    value, eval_s = nll_oracle()
    record(event="final", phase=objective.phase, nll_oracle=value, total_wall_min=round((time.time() - start) / 60, 2))
    if args.save:
        torch.save({"model": model.state_dict(), "objective": objective.state_dict()}, f"{args.save}.final.pt")


def temperature_sweep(args) -> None:
    """Quality (NLL-oracle) against coverage (the model's NLL of held-out oracle data, both
    at temperature T) for saved generators: Caccia et al.'s comparison along the curve."""
    torch.set_num_threads(1)
    data = OracleData(root=args.data_dir, seed=args.seed)
    oracle, held_out = data.oracle(), data.read("test")
    ids = oracle_special_ids(oracle.vocab_size)
    vocab, d = oracle.vocab_size + 3, args.hidden
    sink = Path(args.out).open("w")
    for path in args.sweep:
        model = EncoderDecoder(
            ConstantEncoder(d),
            RNNDecoder(vocab, d_model=d, hidden_size=d, cell="lstm", dropout=0.0, embed_dim=d, tie_embeddings=False),
            **ids,
        )
        model.load_state_dict(torch.load(path, weights_only=True)["model"])
        model.eval()
        for temperature in args.temperatures:
            sampler = SeqGAN(nn.Identity(), max_len=21, min_len=20, temperature=temperature)
            torch.manual_seed(args.seed)
            with torch.no_grad():
                src = torch.zeros(1000, 1, dtype=torch.long)
                samples = torch.cat([sampler.sample(model, src, None) for _ in range(args.eval_samples // 1000)])
                batch = collate_oracle(held_out, ids)
                logits = model(batch.src, batch.src_mask, batch.tgt_in)[:, :20] / temperature
                logits[..., [ids["pad_id"], ids["bos_id"], ids["eos_id"]]] = float("-inf")
                nll_test = float(-torch.log_softmax(logits, -1).gather(-1, batch.tgt_out[:, :20, None]).mean())
            row = {"model": path, "temperature": temperature, "nll_oracle": oracle.nll_oracle(samples), "nll_test": nll_test}
            sink.write(json.dumps(row) + "\n")
            sink.flush()
            print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main()
