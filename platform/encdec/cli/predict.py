"""`encdec-predict run_dir=<run> input=<file|-> [output=<file>] [decoding=beam]`, or
`interactive=true` for a prompt. One input per line; outputs in the same order."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Iterable, TextIO

import hydra
import torch
from omegaconf import DictConfig

from encdec.build import build_component
from encdec.cli import CONF_DIR, run_reporting_user_errors
from encdec.errors import ConfigError, UserError
from encdec.run_dir import load_run


def predict_lines(lines: list[str], adapter, model, decoding, batch_size: int) -> list[list[tuple[str, float]]]:
    """For each input line, the n-best (output, score) pairs, best first."""
    results = []
    for start in range(0, len(lines), batch_size):
        batch = adapter.collate(adapter.parse_inputs(lines[start : start + batch_size]))
        hyps = decoding(model, batch.src, batch.src_mask)
        n_best = [adapter.decode(hyps.tokens[:, i]) for i in range(hyps.tokens.size(1))]
        for row in range(len(batch)):
            results.append([(n_best[i][row], float(hyps.scores[row, i])) for i in range(len(n_best))])
    return results


def _write(results, out: TextIO, with_scores: bool, names: list[str] | None = None) -> None:
    for i, n_best in enumerate(results):
        for output, score in n_best:
            prefix = f"{names[i]}\t" if names else ""
            out.write(f"{prefix}{output}\t{score:.4f}\n" if with_scores else f"{prefix}{output}\n")
    out.flush()


def _read_input(path: str) -> Iterable[str]:
    if path == "-":
        return sys.stdin.read().splitlines()
    p = Path(path)
    if p.is_dir():  # a folder of inputs (e.g. images): one line per file, its path
        return [str(f) for f in sorted(p.iterdir()) if f.is_file() and not f.name.startswith(".")]
    if not p.exists():
        raise ConfigError(f"input={path}: file not found")
    return p.read_text(encoding="utf-8").splitlines()


def predict(cfg: DictConfig) -> None:
    _, adapter, model = load_run(cfg.run_dir, cfg.checkpoint, stage="predict")
    decoding = build_component(cfg.decoding, "decoding")
    torch.set_grad_enabled(False)
    if cfg.interactive:
        print("encdec: type an input and press Enter (Ctrl-D to quit)", file=sys.stderr)
        while True:
            try:
                line = input("> ")
            except EOFError:
                return
            if line.strip():
                try:
                    _write(predict_lines([line], adapter, model, decoding, 1), sys.stdout, cfg.scores)
                except UserError as exc:
                    print(f"error: {exc}", file=sys.stderr)
    if cfg.input is None:
        raise ConfigError("give input=<file> (or input=- for stdin), or interactive=true")
    lines = [line for line in _read_input(cfg.input)]
    results = predict_lines(lines, adapter, model, decoding, cfg.batch_size)
    # outputs for a folder start with the file name they belong to
    names = [Path(line).name for line in lines] if Path(cfg.input).is_dir() else None
    if cfg.output:
        with open(cfg.output, "w", encoding="utf-8") as f:
            _write(results, f, cfg.scores, names)
    else:
        _write(results, sys.stdout, cfg.scores, names)


@hydra.main(config_path=CONF_DIR, config_name="predict", version_base="1.3")
def main(cfg: DictConfig) -> None:
    run_reporting_user_errors(predict, cfg)


if __name__ == "__main__":
    main()
