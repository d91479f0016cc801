"""`encdec-predict run_dir=<run> input=<file|-> [output=<file>] [decoding=beam]`, or
`interactive=true` for a prompt. One input per line; outputs in the same order.

Cheap checks come before the model is loaded: the input is read and decoded (an undecodable
or binary line is named), and `output=` is checked to be creatable. An input longer than
the model takes (an adapter marks such an example with `"truncated": "<the limit>"`) is
reported once with its line numbers, then cut (`truncate=warn`) or refused
(`truncate=error`) before anything is decoded.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import hydra
import torch
from omegaconf import DictConfig

from encdec.atomic_file import atomic_open, check_writable
from encdec.build import build_component, run_decoding
from encdec.cli import CONF_DIR, run_reporting_user_errors
from encdec.data.text_files import decode_text, split_lines
from encdec.errors import ConfigError, DataError, UserError
from encdec.decoding.quantize import for_serving
from encdec.run_dir import load_run

TRUNCATE_POLICIES = ("warn", "error")


def predict_examples(examples: list[dict[str, Any]], adapter, model, decoding, batch_size: int) -> list[list[tuple[str, float]]]:
    """For each parsed input, the n-best (output, score) pairs, best first."""
    results = []
    for start in range(0, len(examples), batch_size):
        batch = adapter.collate(examples[start : start + batch_size])
        hyps = decoding(model, batch.src, batch.src_mask)
        n_best = [adapter.decode(hyps.tokens[:, i]) for i in range(hyps.tokens.size(1))]
        for row in range(len(batch)):
            results.append([(n_best[i][row], float(hyps.scores[row, i])) for i in range(len(n_best))])
    return results


def check_truncation(examples: list[dict[str, Any]], policy: str, first_line: int = 1) -> None:
    """One warning (or, with truncate=error, one error) listing the inputs that are cut."""
    by_limit: dict[str, list[int]] = {}
    for number, example in enumerate(examples, start=first_line):
        if example.get("truncated"):
            by_limit.setdefault(str(example["truncated"]), []).append(number)
    for limit, numbers in by_limit.items():
        shown = ", ".join(map(str, numbers[:10])) + (f" ... ({len(numbers) - 10} more)" if len(numbers) > 10 else "")
        what = f"input line{'s' if len(numbers) > 1 else ''} {shown}: longer than the model's {limit}"
        if policy == "error":
            raise DataError(f"{what}; shorten or split {'them' if len(numbers) > 1 else 'it'}, or set truncate=warn to cut")
        # stderr, not the logging module: predict runs with Hydra's logging disabled
        print(f"warning: {what}; cut to that length (truncate=error refuses instead)", file=sys.stderr)


def _write(results, out, with_scores: bool, names: list[str] | None = None) -> None:
    for i, n_best in enumerate(results):
        for output, score in n_best:
            prefix = f"{names[i]}\t" if names else ""
            out.write(f"{prefix}{output}\t{score:.4f}\n" if with_scores else f"{prefix}{output}\n")
    out.flush()


def read_input(path: str) -> list[str]:
    """Input lines of a file, of stdin (`-`), or a folder's file paths (e.g. images)."""
    if path == "-":
        return split_lines(decode_text(sys.stdin.buffer.read(), "input=- (stdin)"))
    p = Path(path)
    if p.is_dir():  # a folder of inputs (e.g. images): one line per file, its path
        return [str(f) for f in sorted(p.iterdir()) if f.is_file() and not f.name.startswith(".")]
    try:
        raw = p.read_bytes()
    except FileNotFoundError:
        raise ConfigError(f"input={path}: file not found") from None
    except OSError as exc:
        raise ConfigError(f"input={path}: cannot read ({exc.strerror or exc})") from None
    return split_lines(decode_text(raw, f"input={path}"))


def check_output(path: str) -> None:
    """`output=` must be a file that can be written, known before any decoding is done."""
    p = Path(path)
    folder = p.parent
    if p.is_dir():
        raise ConfigError(f"output={path}: is a folder; give a file name")
    if not folder.is_dir():
        raise ConfigError(f"output={path}: folder {folder} does not exist; create it or choose another output=")
    try:  # the output is written to a temporary beside it, then renamed over it
        check_writable(p)
    except OSError as exc:
        raise ConfigError(f"output={path}: cannot write there ({exc.strerror or exc})") from None


def _interactive(adapter, model, decoding, cfg: DictConfig) -> None:
    print("encdec: type an input and press Enter (Ctrl-D to quit)", file=sys.stderr)
    while True:
        try:
            line = input("> ")
        except EOFError:
            return
        except UnicodeDecodeError:
            print("error: that input is not valid UTF-8", file=sys.stderr)
            continue
        if line.strip():
            try:
                examples = adapter.parse_inputs([line])
                check_truncation(examples, cfg.truncate)
                _write(predict_examples(examples, adapter, model, decoding, 1), sys.stdout, cfg.scores)
            except UserError as exc:
                print(f"error: {exc}", file=sys.stderr)


def predict(cfg: DictConfig) -> None:
    if cfg.truncate not in TRUNCATE_POLICIES:
        raise ConfigError(f"truncate={cfg.truncate}: choose one of {', '.join(TRUNCATE_POLICIES)}")
    if not cfg.interactive:
        if cfg.input is None:
            raise ConfigError("give input=<file> (or input=- for stdin), or interactive=true")
        lines = read_input(str(cfg.input))
        if cfg.output:
            check_output(str(cfg.output))
    saved, adapter, model = load_run(cfg.run_dir, cfg.checkpoint, stage="predict")
    decoding_cfg = run_decoding(cfg.decoding, saved)
    fp32 = decoding_cfg.get("dtype", "fp32") == "fp32"
    model = for_serving(model, int8=bool(cfg.get("int8")), onednn=bool(cfg.get("onednn")), fp32=fp32)
    decoding = build_component(decoding_cfg, "decoding")
    torch.set_grad_enabled(False)
    if cfg.interactive:
        return _interactive(adapter, model, decoding, cfg)
    examples = adapter.parse_inputs(lines)
    check_truncation(examples, cfg.truncate)
    results = predict_examples(examples, adapter, model, decoding, cfg.batch_size)
    # outputs for a folder start with the file name they belong to
    names = [Path(line).name for line in lines] if Path(str(cfg.input)).is_dir() else None
    if cfg.output:
        with atomic_open(cfg.output) as f:  # an existing output file is replaced whole or kept
            _write(results, f, cfg.scores, names)
    else:
        _write(results, sys.stdout, cfg.scores, names)


@hydra.main(config_path=CONF_DIR, config_name="predict", version_base="1.3")
def main(cfg: DictConfig) -> None:
    run_reporting_user_errors(predict, cfg)


if __name__ == "__main__":
    main()
