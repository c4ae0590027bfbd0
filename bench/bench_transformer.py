"""Training and inference throughput of the transformer learner on real essay lengths.

Compares padding every essay to ``--max-length`` (the naive way) against dynamic padding with
length-grouped batches (what the learner does), for a random-init deberta-v3-base-shaped model
(no weights needed) or the offline MiniLM. Essays are ELLIPSE texts resampled to ``--essays``
(17,307 = AES 2.0's training set; ELLIPSE averages about 424 words, like AES 2.0). Token
lengths come from the offline MiniLM WordPiece tokenizer: it splits English essays into about
as many tokens as DeBERTa-v3's SentencePiece.

With ``--attention auto`` the optional ``disentangled-flash`` package (fused Triton DeBERTa
attention; ``pip install 'aes-ensemble[gpu]'``) is used where it is installed and works, and
the eager Hugging Face attention otherwise; the path each phase ran is reported.

GPU:  python -m bench.bench_transformer --model deberta-v3-base-shape --max-batches 200
CPU:  python -m bench.bench_transformer --smoke   (a tiny model: checks the script still runs)
Epoch and inference seconds are extrapolated from the measured batches (batches come in random
order, so a prefix is an unbiased sample).
"""

from __future__ import annotations

import argparse
import json
import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import torch
from transformers import AutoModel, AutoTokenizer, DebertaV2Config, DebertaV2Model, PreTrainedModel

from aes_ensemble.learners.transformer.data import (
    collate,
    encode,
    length_grouped_batches,
    sorted_batches,
)
from aes_ensemble.learners.transformer.inference import autocast, resolve_precision
from aes_ensemble.learners.transformer.learner import resolve_model_path
from aes_ensemble.learners.transformer.model import EssayScorer, ScoringHead
from aes_ensemble.sample import sample_path

ELLIPSE_DIR = Path(os.environ.get("AES_SHARED_DATA", "/work/shared/data")) / "ellipse"
ELLIPSE_FILES = ("ELLIPSE_Final_github_test.csv", "feedback_prize_ell_train.csv")


def essay_texts(data: Path | None) -> list[str]:
    """ELLIPSE's texts (both shared files), else the ELLIPSE sample shipped with the package."""
    files = [data] if data else [ELLIPSE_DIR / f for f in ELLIPSE_FILES]
    files = [f for f in files if f.is_file()] or [sample_path("ellipse_train.csv")]
    return [t for f in files for t in pl.read_csv(f)["full_text"].to_list()]


# deberta-v3-base's config.json, less the sizes.
DEBERTA_V3: dict[str, Any] = {
    "max_position_embeddings": 512,
    "relative_attention": True,
    "pos_att_type": ["p2c", "c2p"],
    "position_biased_input": False,
    "position_buckets": 256,
    "max_relative_positions": -1,
    "norm_rel_ebd": "layer_norm",
    "share_att_key": True,
    "layer_norm_eps": 1e-7,
    "type_vocab_size": 0,
}


def deberta_v3_config(
    vocab_size: int = 128_100,
    hidden_size: int = 768,
    layers: int = 12,
    heads: int = 12,
    intermediate_size: int = 3072,
) -> DebertaV2Config:
    """A deberta-v3-shaped config (base by default) for random initialisation."""
    sizes: dict[str, Any] = {
        "vocab_size": vocab_size,
        "hidden_size": hidden_size,
        "num_hidden_layers": layers,
        "num_attention_heads": heads,
        "intermediate_size": intermediate_size,
    }
    return DebertaV2Config(**sizes, **DEBERTA_V3)


def build_encoder(model: str, smoke: bool) -> PreTrainedModel:
    """MiniLM with its weights, or a random deberta-v3-base shape (vocabulary 128,100; the
    smoke model keeps MiniLM's 30,522 so the WordPiece ids fit)."""
    if model == "minilm":
        return AutoModel.from_pretrained(resolve_model_path("all-MiniLM-L6-v2"))
    if smoke:
        return DebertaV2Model(deberta_v3_config(30_522, 32, 2, 2, 64))
    return DebertaV2Model(deberta_v3_config())


def use_flash(encoder: PreTrainedModel, attention: str, training: bool) -> str:
    """Swap in disentangled-flash attention where asked and possible; returns the path used."""
    if attention == "eager" or not isinstance(encoder, DebertaV2Model):
        return "eager"
    if not torch.cuda.is_available():
        return "eager (no GPU)"
    try:
        import disentangled_flash
    except ImportError:
        if attention == "flash":
            raise SystemExit("--attention flash needs: pip install disentangled-flash") from None
        return "eager (disentangled-flash not installed)"
    enable = (
        disentangled_flash.enable_deberta_training
        if training
        else disentangled_flash.enable_deberta_inference
    )
    try:
        enable(encoder, backend="triton")
    except Exception as exc:  # an unsupported shape or Triton version: keep eager
        return f"eager (disentangled-flash failed: {type(exc).__name__}: {exc})"[:300]
    swapped = type(encoder.encoder).__name__ == "DebertaV2OptimizedEncoder"
    return "disentangled-flash" if swapped else "eager (disentangled-flash declined)"


def fresh_model(
    args: argparse.Namespace, device: torch.device, training: bool
) -> tuple[EssayScorer, str]:
    torch.manual_seed(0)
    encoder = build_encoder(args.model, args.smoke)
    path = use_flash(encoder, args.attention, training)
    scorer = EssayScorer(encoder, ScoringHead("mean", encoder.config.hidden_size, 1))
    return scorer.to(device), path


def batches_for(
    mode: str, lengths: Sequence[int], batch_size: int, training: bool
) -> list[np.ndarray]:
    """Naive: random batches padded to max_length. Dynamic: what the learner does (grouped
    batches to train, length-sorted batches to predict)."""
    if mode == "padded":
        return length_grouped_batches(lengths, batch_size, seed=0, grouped=False)
    if training:
        return length_grouped_batches(lengths, batch_size, seed=0)
    return sorted_batches(lengths, batch_size)


def run_phase(
    args: argparse.Namespace,
    mode: str,
    sequences: list[list[int]],
    pad_id: int,
    device: torch.device,
    training: bool,
) -> dict[str, Any]:
    """Time ``--max-batches`` batches (after ``--warmup``) of one mode, training or inference."""
    model, path = fresh_model(args, device, training)
    dtype = resolve_precision(args.precision, device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-5) if training else None
    multiple = args.max_length if mode == "padded" else 8
    batches = batches_for(mode, [len(s) for s in sequences], args.batch_size, training)
    measured = batches[args.warmup : args.warmup + (args.max_batches or len(batches))]
    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)
    model.train(training)
    essays = real_tokens = padded_tokens = 0
    started = 0.0
    for i, rows in enumerate(batches[: args.warmup + len(measured)]):
        if i == args.warmup:
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            started = time.perf_counter()
        batch = {
            k: v.to(device)
            for k, v in collate([sequences[r] for r in rows], pad_id, multiple).items()
        }
        with torch.set_grad_enabled(training), autocast(device, dtype):
            out = model(**batch)
        if optimizer is not None:
            loss = out.float().pow(2).mean()
            loss.backward()
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
        if i >= args.warmup:
            essays += len(rows)
            real_tokens += int(batch["attention_mask"].sum())
            padded_tokens += batch["attention_mask"].numel()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    seconds = time.perf_counter() - started
    return {
        "phase": "train" if training else "inference",
        "mode": mode,
        "attention": path,
        "batches": len(measured),
        "essays_per_s": essays / seconds,
        "tokens_per_s": real_tokens / seconds,
        "padded_tokens_per_s": padded_tokens / seconds,
        "pad_fraction": 1 - real_tokens / max(padded_tokens, 1),
        "epoch_seconds": len(sequences) / (essays / seconds),
        "peak_memory_gib": (
            torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else None
        ),
    }


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--model", choices=["deberta-v3-base-shape", "minilm"], default="deberta-v3-base-shape"
    )
    parser.add_argument("--essays", type=int, default=17_307)
    parser.add_argument("--max-length", type=int, default=1024)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--precision", choices=["auto", "fp32", "bf16", "fp16"], default="auto")
    parser.add_argument("--attention", choices=["auto", "eager", "flash"], default="auto")
    parser.add_argument("--modes", default="padded,dynamic", help="padded, dynamic or both")
    parser.add_argument("--phases", default="train,inference")
    parser.add_argument("--max-batches", type=int, default=None, help="batches timed per mode")
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--data", type=Path, default=None, help="a CSV with a full_text column")
    parser.add_argument("--out", type=Path, default=None, help="also write the JSON here")
    parser.add_argument("--smoke", action="store_true", help="tiny model and data, runs on CPU")
    args = parser.parse_args(argv)
    if args.smoke:
        args.essays, args.max_length, args.batch_size = min(args.essays, 16), 512, 4
        args.max_batches, args.warmup = min(args.max_batches or 2, 2), 1
    if args.model == "minilm":
        args.max_length = min(args.max_length, 512)

    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    tokenizer = AutoTokenizer.from_pretrained(resolve_model_path("all-MiniLM-L6-v2"))
    texts = essay_texts(args.data)
    picked = np.random.default_rng(0).choice(len(texts), size=args.essays, replace=True)
    sequences = encode(tokenizer, [texts[i] for i in picked], args.max_length, 0.25)
    lengths = np.asarray([len(s) for s in sequences])
    results: dict[str, Any] = {
        "model": args.model,
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
        "precision": str(resolve_precision(args.precision, device)).removeprefix("torch."),
        "torch": torch.__version__,
        "essays": args.essays,
        "max_length": args.max_length,
        "batch_size": args.batch_size,
        "mean_tokens": float(lengths.mean()),
        "truncated_fraction": float((lengths >= args.max_length).mean()),
        "runs": [],
    }
    for phase in args.phases.split(","):
        for mode in args.modes.split(","):
            run = run_phase(
                args, mode, sequences, int(tokenizer.pad_token_id or 0), device, phase == "train"
            )
            results["runs"].append(run)
            print(json.dumps(run), flush=True)
    if args.out:
        args.out.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    print(json.dumps({k: v for k, v in results.items() if k != "runs"}))
    return results


if __name__ == "__main__":
    main()
