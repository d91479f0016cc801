"""Export a trained Transformer run to CTranslate2, a C++ inference engine for these models.

    python -m encdec.export.ctranslate2 RUN_DIR OUTPUT_DIR [--checkpoint best] [--force]

and then (`pip install ctranslate2`):

    import ctranslate2
    from encdec.export.ctranslate2 import read_vocabulary, translate_options
    translator = ctranslate2.Translator(OUTPUT_DIR, compute_type="int8")  # or "float32"
    vocab = read_vocabulary(OUTPUT_DIR)
    out = translator.translate_batch([[vocab[i] for i in src_ids]], **translate_options(search, vocab[pad_id]))

The directory holds fp32 weights and the vocabularies; int8 (or int16, bfloat16) is picked when
loading (`compute_type`): CTranslate2 quantises the weights then.

The model is written with CTranslate2's spec API (`TransformerSpec`), as its own converters
do. How our modules map onto it:
  - pre-norm layers, a final LayerNorm on each stack: `pre_norm=True`, the model's epsilon;
  - token embeddings times sqrt(d_model): the spec's default `scale_embeddings`;
  - sinusoidal positions: ours interleave sin/cos and start at position 0, CTranslate2's
    built-in table concatenates them and starts at 1, so our table is written out as explicit
    position encodings (`max_positions` rows; a longer input or output raises in CTranslate2);
  - attention: the self-attention q and kv projections fused into one qkv matrix (our kv
    matrix already yields k then v); cross-attention q, kv and out as they are; biases kept;
  - ReLU feed-forward; the output projection (the target embedding when tied), no bias. Tied
    weights are stored once (the spec's `optimize` aliases equal variables).
A non-Transformer encoder or decoder, or the copy decoder, is refused (ConfigError).
"""

from __future__ import annotations

import argparse
import json
import math
import shutil
from pathlib import Path
from typing import Sequence

import torch
from torch import Tensor, nn

from encdec.errors import ConfigError
from encdec.modules.embeddings import TokenEmbedding, sinusoidal_table
from encdec.modules.transformer import MultiHeadAttention, TransformerDecoder, TransformerEncoder


def _specs():
    try:
        from ctranslate2.specs import transformer_spec
    except ImportError:
        raise ConfigError(
            "exporting to CTranslate2 needs the ctranslate2 package: pip install ctranslate2"
        ) from None
    return transformer_spec


def _tensor(t: Tensor) -> Tensor:
    return t.detach().to("cpu", torch.float32).contiguous().clone()


def check_convertible(model: nn.Module) -> tuple[TransformerEncoder, TransformerDecoder]:
    enc, dec = getattr(model, "encoder", None), getattr(model, "decoder", None)
    if not isinstance(enc, TransformerEncoder) or not isinstance(dec, TransformerDecoder):
        raise ConfigError(
            f"CTranslate2 export needs encoder=transformer and decoder=transformer, got "
            f"{type(enc).__name__} and {type(dec).__name__}"
        )
    if dec.copy_attn is not None:
        raise ConfigError("CTranslate2 export: decoder.copy=true (pointer-generator) has no CTranslate2 equivalent")
    for stack in (enc, dec):
        embed = stack.embed
        if not embed.positional or not math.isclose(embed.scale, math.sqrt(embed.weight.size(1))):
            raise ConfigError("CTranslate2 export needs sinusoidal positions and sqrt(d_model) embedding scaling")
        for layer in stack.layers:
            if not isinstance(layer.ffn[1], nn.ReLU):
                raise ConfigError(f"CTranslate2 export: unsupported activation {type(layer.ffn[1]).__name__}")
    return enc, dec


def _layer_norm(spec, norm: nn.LayerNorm) -> None:
    spec.gamma, spec.beta = _tensor(norm.weight), _tensor(norm.bias)


def _linear(spec, *linears: nn.Linear) -> None:
    """One CTranslate2 linear from one or more of ours stacked on the output axis (fused qkv)."""
    spec.weight = _tensor(torch.cat([lin.weight for lin in linears]))
    if linears[0].bias is not None:
        spec.bias = _tensor(torch.cat([lin.bias for lin in linears]))


def _self_attention(spec, attn: MultiHeadAttention, norm: nn.LayerNorm) -> None:
    _layer_norm(spec.layer_norm, norm)
    _linear(spec.linear[0], attn.q, attn.kv)
    _linear(spec.linear[1], attn.out)


def _cross_attention(spec, attn: MultiHeadAttention, norm: nn.LayerNorm) -> None:
    _layer_norm(spec.layer_norm, norm)
    _linear(spec.linear[0], attn.q)
    _linear(spec.linear[1], attn.kv)
    _linear(spec.linear[2], attn.out)


def _ffn(spec, ffn: nn.Sequential, norm: nn.LayerNorm) -> None:
    _layer_norm(spec.layer_norm, norm)
    _linear(spec.linear_0, ffn[0])
    _linear(spec.linear_1, ffn[3])


def _embeddings(spec, embed: TokenEmbedding, max_positions: int) -> None:
    table = embed.positions
    if table.size(0) < max_positions:
        table = sinusoidal_table(max_positions, table.size(1))
    embeddings = spec.embeddings[0] if isinstance(spec.embeddings, list) else spec.embeddings  # encoder: a list
    embeddings.weight = _tensor(embed.weight)
    spec.position_encodings.encodings = _tensor(table[:max_positions])


def _check_vocabulary(name: str, tokens: Sequence[str], size: int, unk_token: str) -> list[str]:
    tokens = list(tokens)
    if len(tokens) != size:
        raise ConfigError(f"CTranslate2 export: the {name} vocabulary has {len(tokens)} tokens, the model {size}")
    if len(set(tokens)) != len(tokens):
        raise ConfigError(f"CTranslate2 export: the {name} vocabulary has duplicate tokens (CTranslate2 maps tokens to ids)")
    if unk_token not in tokens:
        raise ConfigError(f"CTranslate2 export: the {name} vocabulary lacks the unknown token {unk_token!r}")
    return tokens


def transformer_spec(
    model: nn.Module,
    source_vocabulary: Sequence[str],
    target_vocabulary: Sequence[str],
    unk_token: str = "<unk>",
    max_positions: int = 1024,
):
    """A validated `ctranslate2.specs.TransformerSpec` holding `model`'s weights (an
    EncoderDecoder of TransformerEncoder + TransformerDecoder); the vocabularies list each
    id's token string."""
    ts = _specs()
    enc, dec = check_convertible(model)
    spec = ts.TransformerSpec(
        ts.TransformerEncoderSpec(len(enc.layers), enc.layers[0].attn.heads, pre_norm=True),
        ts.TransformerDecoderSpec(len(dec.layers), dec.layers[0].self_attn.heads, pre_norm=True),
    )
    _embeddings(spec.encoder, enc.embed, max_positions)
    for layer_spec, layer in zip(spec.encoder.layer, enc.layers):
        _self_attention(layer_spec.self_attention, layer.attn, layer.norm1)
        _ffn(layer_spec.ffn, layer.ffn, layer.norm2)
    _layer_norm(spec.encoder.layer_norm, enc.norm)

    _embeddings(spec.decoder, dec.embed, max_positions)
    for layer_spec, layer in zip(spec.decoder.layer, dec.layers):
        _self_attention(layer_spec.self_attention, layer.self_attn, layer.norm1)
        _cross_attention(layer_spec.attention, layer.cross_attn, layer.norm2)
        _ffn(layer_spec.ffn, layer.ffn, layer.norm3)
    _layer_norm(spec.decoder.layer_norm, dec.norm)
    _linear(spec.decoder.projection, dec.out)

    epsilons = {m.eps for m in model.modules() if isinstance(m, nn.LayerNorm)}
    if len(epsilons) != 1:
        raise ConfigError(f"CTranslate2 export needs one LayerNorm epsilon throughout, got {sorted(epsilons)}")
    source = _check_vocabulary("source", source_vocabulary, enc.embed.weight.size(0), unk_token)
    target = _check_vocabulary("target", target_vocabulary, dec.embed.weight.size(0), unk_token)
    spec.config.layer_norm_epsilon = epsilons.pop()
    spec.config.unk_token = unk_token
    spec.config.bos_token = spec.config.decoder_start_token = target[model.bos_id]
    spec.config.eos_token = target[model.eos_id]
    spec.register_source_vocabulary(source)
    spec.register_target_vocabulary(target)
    spec.validate()
    return spec


def save(
    model: nn.Module,
    source_vocabulary: Sequence[str],
    target_vocabulary: Sequence[str],
    output_dir: str | Path,
    unk_token: str = "<unk>",
    max_positions: int = 1024,
    force: bool = False,
) -> Path:
    """Write `model` as a CTranslate2 model directory (fp32 weights; pick int8 etc. with
    `compute_type` when loading it)."""
    output_dir = Path(output_dir)
    spec = transformer_spec(model, source_vocabulary, target_vocabulary, unk_token, max_positions)
    if output_dir.exists():
        if not force:
            raise ConfigError(f"{output_dir} already exists: choose another output directory or pass --force")
        shutil.rmtree(output_dir)
    spec.optimize(quantization=None)
    output_dir.mkdir(parents=True)
    spec.save(str(output_dir))
    return output_dir


def tokenizer_vocabulary(tokenizer) -> list[str]:
    """Each id's token string, from one of our subword tokenizers (`tokenizers` inside)."""
    tok = tokenizer.tok
    return [tok.id_to_token(i) for i in range(tokenizer.vocab_size)]


def export_run(run_dir: str | Path, output_dir: str | Path, checkpoint: str = "best", force: bool = False) -> Path:
    """A run directory of encdec-train (a Transformer on a task with subword tokenizers, such
    as translation) written as a CTranslate2 model directory."""
    from encdec.api import load_run

    run = load_run(run_dir, checkpoint=checkpoint)
    src_tok, tgt_tok = getattr(run.adapter, "src_tok", None), getattr(run.adapter, "tgt_tok", None)
    if src_tok is None or tgt_tok is None:
        raise ConfigError(
            f"run_dir={run_dir}: its task ({type(run.adapter).__name__}) has no source and target subword "
            "tokenizers; CTranslate2 export supports token-to-token tasks such as translation"
        )
    target = tokenizer_vocabulary(tgt_tok)
    return save(run.model, tokenizer_vocabulary(src_tok), target, output_dir,
                unk_token=target[tgt_tok.unk_id], force=force)


def read_vocabulary(model_dir: str | Path, side: str = "target") -> list[str]:
    """The token list a CTranslate2 model directory written by `save` holds (side: source or
    target; one shared file when both are the same)."""
    model_dir = Path(model_dir)
    path = model_dir / f"{side}_vocabulary.json"
    return json.loads((path if path.exists() else model_dir / "shared_vocabulary.json").read_text(encoding="utf-8"))


def translate_options(search, pad_token: str) -> dict:
    """`ctranslate2.Translator.translate_batch` keyword arguments that decode as our `search`
    (Greedy or BeamSearch) does:
      - beam_size, length_penalty and num_hypotheses: both normalise a finished hypothesis's
        log-probability by length**length_penalty, EOS counted (greedy: no normalisation);
      - max_decoding_length / min_decoding_length = max_len / min_len (EOS counted in the
        maximum; banned for the first min_len tokens; CTranslate2's own default minimum is 1);
      - the pad token is never generated (ours bans it after the softmax, CTranslate2 before:
        the scores then differ by the pad's tiny probability, the argmax does not);
      - return_end_token: outputs keep EOS, as ours do; inputs are not truncated.
    What does not carry over: CTranslate2 stops a beam as our `stopping=early` (fairseq) does,
    once beam_size hypotheses have ended (patience 1; with length_penalty 0 it stops once the
    top beam ends); a hypothesis that reaches max_len ends with whichever token ranks best
    there, where ours forces EOS; no_repeat_ngram_size is passed on but not checked against ours.
    """
    from encdec.decoding import BeamSearch, Greedy

    if not isinstance(search, (Greedy, BeamSearch)):
        raise ConfigError(f"CTranslate2 options: decoding must be greedy or beam, got {type(search).__name__}")
    if search.max_len_a > 0:
        raise ConfigError("CTranslate2 options: decoding.max_len_a (a source-length-dependent cap) has no equivalent")
    beam = isinstance(search, BeamSearch)
    return {
        "beam_size": search.beam_size if beam else 1,
        "length_penalty": search.length_penalty if beam else 0.0,  # greedy: raw summed scores, as ours
        "num_hypotheses": search.num_return if beam else 1,
        "max_decoding_length": search.max_len,
        "min_decoding_length": search.min_len,
        "no_repeat_ngram_size": search.no_repeat_ngram_size,
        "suppress_sequences": [[pad_token]],
        "return_end_token": True,
        "max_input_length": 0,
    }


def main(argv: Sequence[str] | None = None) -> None:
    from encdec.cli import run_reporting_user_errors

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("run_dir")
    p.add_argument("output_dir")
    p.add_argument("--checkpoint", default="best", help="best | last | a checkpoint file name (as encdec-predict)")
    p.add_argument("--force", action="store_true", help="replace an existing output directory")
    args = p.parse_args(argv)
    out = run_reporting_user_errors(export_run, args.run_dir, args.output_dir, args.checkpoint, args.force)
    print(f"CTranslate2 model written to {out} (load it with compute_type='float32' or 'int8')")


if __name__ == "__main__":
    main()
