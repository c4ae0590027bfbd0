"""Training and inference throughput of the transformer learner on real essay lengths.

Compares padding every essay to ``--max-length`` (the naive way) against dynamic padding with
length-grouped batches (what the learner does) and, with the fused kernels, the same batches
packed without padding (``model.padding_free``), for a random-init deberta-v3-base-shaped model
(no weights needed) or the offline MiniLM. Essays are ELLIPSE texts resampled to ``--essays``
(17,307 = AES 2.0's training set; ELLIPSE averages about 424 words, like AES 2.0). Token
lengths come from the offline MiniLM WordPiece tokenizer: it splits English essays into about
as many tokens as DeBERTa-v3's SentencePiece.

``--attentions eager,flash`` times the eager Hugging Face attention and the optional
``disentangled-flash`` kernels (fused Triton DeBERTa attention; ``pip install
'aes-ensemble[gpu]'``) through the learner's own ``model.attention`` switch; a path that cannot
run here is reported as skipped, with the reason, and a failing run as an error.

GPU:  python -m bench.bench_transformer --model deberta-v3-base-shape --max-batches 100
      (bench/gpu_check.sh runs it with the learner's own checks; results: docs/gpu.md)
CPU:  python -m bench.bench_transformer --smoke   (a tiny model: checks the script still runs)
Epoch seconds are extrapolated from the timed batches, spread evenly over the epoch and timed
after every padded width among them has run once.
"""

from __future__ import annotations

import argparse
import copy
import importlib.util
import json
import os
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import torch
from torch.autograd import DeviceType
from torch.profiler import ProfilerActivity, profile
from transformers import AutoModel, AutoTokenizer, DebertaV2Config, DebertaV2Model, PreTrainedModel

from aes_ensemble.learners.transformer.attention import (
    FLASH,
    FUSED_PAD_MULTIPLE,
    fused_unavailable,
    pad_multiple,
    swap_in_fused,
    use_attention,
)
from aes_ensemble.learners.transformer.config import MINILM_ALIAS
from aes_ensemble.learners.transformer.data import (
    encode,
    length_grouped_batches,
    make_batcher,
    sorted_batches,
    to_device,
)
from aes_ensemble.learners.transformer.inference import autocast, resolve_precision
from aes_ensemble.learners.transformer.learner import resolve_model_path
from aes_ensemble.learners.transformer.model import EssayScorer, ScoringHead, encoder_layers
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


def build_encoder(model: str, model_path: str, smoke: bool) -> PreTrainedModel:
    """MiniLM with its weights, or a random deberta-v3-base shape (vocabulary 128,100; the
    smoke model keeps MiniLM's 30,522 so the WordPiece ids fit)."""
    if model == "minilm":
        return AutoModel.from_pretrained(resolve_model_path(model_path))
    if smoke:
        return DebertaV2Model(deberta_v3_config(30_522, 32, 2, 2, 64))
    return DebertaV2Model(deberta_v3_config())


def inference_kernels(encoder: PreTrainedModel, device: torch.device, widths: list[int]) -> str:
    """The package's inference-only kernels, their position tables prepared per padded width."""
    if reason := fused_unavailable(encoder, device):
        return f"eager ({reason})"
    import disentangled_flash

    encoder.to(device).eval()
    disentangled_flash.enable_deberta_inference(encoder, backend="triton", sequence_lengths=widths)
    swapped = isinstance(encoder.encoder, disentangled_flash.DebertaV2OptimizedEncoder)
    return "disentangled-flash inference" if swapped else "eager (declined)"


def autotuned_kernels(encoder: PreTrainedModel, device: torch.device) -> str:
    """The fused training kernels with launch configs benchmarked at run time, per shape (the
    package's saved profiles are for other torch and Triton versions than a machine may have)."""
    if reason := fused_unavailable(encoder, device):
        return f"eager ({reason})"
    import disentangled_flash

    tuning = disentangled_flash.KernelTuningOptions(mode="autotune")
    swapped = swap_in_fused(encoder, tuning=tuning)
    return "disentangled-flash autotuned" if swapped else "eager (declined)"


def torch_kernels(encoder: PreTrainedModel) -> str:
    """The package's PyTorch implementation of the same attention: slow, but it runs on any
    device, so a CPU can check the fused and packed code paths before a GPU run."""
    if importlib.util.find_spec("disentangled_flash") is None:
        return f"eager ({FLASH} is not installed)"
    swapped = swap_in_fused(encoder, backend="torch")
    return "disentangled-flash torch" if swapped else "eager (declined)"


def fresh_model(
    encoder: PreTrainedModel,
    attention: str,
    device: torch.device,
    dtype: torch.dtype,
    max_length: int,
    widths: list[int],
    packed: bool,
) -> tuple[EssayScorer, str]:
    """A copy of the pristine ``encoder`` with the asked attention, and the path that runs.

    ``eager`` and ``flash`` go through the learner's own ``model.attention`` switch (flash:
    fused training kernels, also used to predict); ``flash-autotune`` the same kernels tuned at
    run time; ``flash-inference`` (prediction only) the package's inference kernels, prepared
    for each padded width; ``flash-torch`` the package's PyTorch implementation.
    """
    encoder = copy.deepcopy(encoder)
    if attention == "flash-inference":
        path = inference_kernels(encoder, device, widths)
    elif attention == "flash-autotune":
        path = autotuned_kernels(encoder, device)
    elif attention == "flash-torch":
        path = torch_kernels(encoder)
    else:
        choice = "eager" if attention == "eager" else "auto"
        path = use_attention(encoder, choice, device, dtype, max_length, packed)  # type: ignore[arg-type]
    scorer = EssayScorer(encoder, ScoringHead("mean", encoder.config.hidden_size, 1))
    return scorer.to(device), path


def compiled(model: EssayScorer, packed: bool) -> torch.nn.Module:
    """torch.compile with dynamic shapes: the whole model, or for packed batches (whose essay
    lengths it would guard on, compiling again for every batch) each block's parts around the
    fused attention, in place: attention output, feed-forward, their norms and residuals."""
    if not packed:
        return torch.compile(model, dynamic=True)
    for block in encoder_layers(model.encoder):
        for part in (block.attention.output, block.intermediate, block.output):
            part.compile(dynamic=True)
    return model


def batches_for(
    mode: str, lengths: Sequence[int], batch_size: int, training: bool
) -> list[np.ndarray]:
    """Naive: random batches padded to max_length. Dynamic and packed: what the learner does
    (grouped batches to train, length-sorted batches to predict)."""
    if mode == "padded":
        return length_grouped_batches(lengths, batch_size, seed=0, grouped=False)
    if training:
        return length_grouped_batches(lengths, batch_size, seed=0)
    return sorted_batches(lengths, batch_size)


def spread(batches: list[np.ndarray], n: int | None) -> list[np.ndarray]:
    """``n`` batches evenly spaced over the epoch (a prefix of the length-sorted inference
    batches would hold only the longest essays)."""
    if n is None or n >= len(batches):
        return batches
    return [batches[i] for i in np.unique(np.linspace(0, len(batches) - 1, n).round().astype(int))]


def run_phase(
    args: argparse.Namespace,
    encoder: PreTrainedModel,
    mode: str,
    attention: str,
    sequences: list[list[int]],
    pad_id: int,
    device: torch.device,
    training: bool,
) -> dict[str, Any]:
    """Time ``--max-batches`` batches of one mode, training or inference, in steady state.

    Every padded width among the timed batches runs once beforehand (with ``--warmup`` more
    batches): the first batch of a new width pays for kernel selection or compilation, which
    an epoch pays once per width, not once per batch. The fused paths pad widths to multiples
    of 128, as the learner does; packed batches warm one batch per 128-token band of their
    longest essay. A fused path that cannot run here is reported as skipped.
    """
    dtype = resolve_precision(args.precision, device)
    fused = attention != "eager"
    packed = mode == "packed"
    if mode == "padded":
        multiple = args.max_length
    else:  # the learner's rule for the path it would run
        multiple = pad_multiple(FLASH if fused else attention, args.pad_multiple)
    batches = batches_for(mode, [len(s) for s in sequences], args.batch_size, training)
    timed = spread(batches, args.max_batches)
    batcher = make_batcher(pad_id, multiple, packed)
    built = [batcher([sequences[r] for r in rows]) for rows in timed]
    band = FUSED_PAD_MULTIPLE if packed else 1
    per_width = {-(-int(b["attention_mask"].shape[1]) // band) * band: b for b in built}
    widths = sorted(per_width)
    run: dict[str, Any] = {
        "phase": "train" if training else "inference",
        "mode": mode,
        "batch_size": args.batch_size,
        "compiled": args.compile,
    }
    if packed and attention not in ("flash", "flash-autotune", "flash-torch"):
        reason = "packed batches need the fused training kernels"
        return {**run, "attention": f"{attention} ({reason})", "skipped": True}
    model, path = fresh_model(encoder, attention, device, dtype, args.max_length, widths, packed)
    run["attention"] = path
    if fused and not path.startswith("disentangled-flash"):
        return {**run, "skipped": True}
    optimizer = (
        torch.optim.AdamW(model.parameters(), lr=1e-5, fused=device.type == "cuda")
        if training
        else None
    )
    forward = compiled(model, packed) if args.compile else model
    warmup = [per_width[w] for w in widths] + built[: args.warmup]
    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)
    model.train(training)

    def step(batch: dict[str, Any]) -> None:
        if path == "disentangled-flash inference":
            model.encoder.encoder.activate_shape(int(batch["input_ids"].shape[1]))
        with torch.set_grad_enabled(training), autocast(device, dtype):
            out = forward(**to_device(batch, device))
        if optimizer is not None:
            out.float().pow(2).mean().backward()
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)

    for batch in warmup:
        step(batch)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    started = time.perf_counter()
    for batch in built:
        step(batch)
    essays = sum(len(rows) for rows in timed)
    real_tokens = sum(int(b["attention_mask"].sum()) for b in built)
    padded_tokens = sum(b["input_ids"].numel() for b in built)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    seconds = time.perf_counter() - started
    if args.profile:
        try:
            run["profile"] = profile_steps(step, built[: args.profile], device)
        except Exception as exc:  # a profiler that cannot run here must not lose the timing
            run["profile"] = {"error": f"{type(exc).__name__}: {exc}".splitlines()[0][:300]}
    return {
        **run,
        "batches": len(timed),
        "widths": len(widths),
        "essays_per_s": essays / seconds,
        "tokens_per_s": real_tokens / seconds,
        "padded_tokens_per_s": padded_tokens / seconds,
        "pad_fraction": 1 - real_tokens / max(padded_tokens, 1),
        "epoch_seconds": len(sequences) / (essays / seconds),
        "peak_memory_gib": (
            torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else None
        ),
    }


def profile_steps(
    step: Callable[[dict[str, Any]], None], batches: list[dict[str, Any]], device: torch.device
) -> dict[str, Any]:
    """Where a few steps' time goes: on a GPU the busiest kernels, and the share of the wall
    time the GPU was busy (well under 1: the CPU cannot launch work fast enough, and larger
    batches or compilation are the levers, not faster kernels); on a CPU the busiest operators."""
    on_gpu = device.type == "cuda"
    activities = [ProfilerActivity.CPU, *([ProfilerActivity.CUDA] if on_gpu else [])]
    started = time.perf_counter()
    with profile(activities=activities) as profiler:
        for batch in batches:
            step(batch)
        if on_gpu:
            torch.cuda.synchronize(device)
    wall_ms = (time.perf_counter() - started) * 1e3 / len(batches)
    timed = [
        (event.key, event.self_device_time_total if on_gpu else event.self_cpu_time_total, event)
        for event in profiler.key_averages()
        if not on_gpu or event.device_type == DeviceType.CUDA
    ]
    busy_ms = sum(t for _, t, _ in timed) / 1e3 / len(batches)
    top = sorted(timed, key=lambda item: -item[1])[:12]
    return {
        "steps": len(batches),
        "wall_ms_per_step": wall_ms,
        "busy_ms_per_step": busy_ms,
        "busy_fraction": busy_ms / wall_ms,
        "top": [
            {
                "name": name[:100],
                "ms_per_step": t / 1e3 / len(batches),
                "calls_per_step": event.count / len(batches),
            }
            for name, t, event in top
        ],
    }


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--model", choices=["deberta-v3-base-shape", "minilm"], default="deberta-v3-base-shape"
    )
    parser.add_argument(
        "--model-path", default=MINILM_ALIAS, help="MiniLM's folder (default: the installed copy)"
    )
    parser.add_argument(
        "--tokenizer", default=MINILM_ALIAS, help="tokenizer that measures essay lengths"
    )
    parser.add_argument("--essays", type=int, default=17_307)
    parser.add_argument("--max-length", type=int, default=1024)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--precision", choices=["auto", "fp32", "bf16", "fp16"], default="auto")
    parser.add_argument(
        "--attentions",
        default="eager,flash",
        help="comma-separated: eager, flash (fused training kernels, also to predict), "
        "flash-autotune (the same, tuned at run time), flash-inference (the package's "
        "inference kernels), flash-torch (its PyTorch implementation, any device)",
    )
    parser.add_argument(
        "--modes",
        default="padded,dynamic",
        help="comma-separated: padded, dynamic, packed (fused training kernels only)",
    )
    parser.add_argument("--phases", default="train,inference")
    parser.add_argument(
        "--pad-multiple", type=int, default=8, help="dynamic mode pads to a multiple of this"
    )
    parser.add_argument("--max-batches", type=int, default=None, help="batches timed per mode")
    parser.add_argument(
        "--compile",
        action="store_true",
        help="torch.compile(dynamic=True) the model, or for packed batches its blocks' parts",
    )
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument(
        "--profile",
        type=int,
        default=0,
        help="after timing, profile this many steps: the busiest kernels, how busy the GPU was",
    )
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
    tokenizer = AutoTokenizer.from_pretrained(resolve_model_path(args.tokenizer))
    texts = essay_texts(args.data)
    picked = np.random.default_rng(0).choice(len(texts), size=args.essays, replace=True)
    sequences = encode(tokenizer, [texts[i] for i in picked], args.max_length, 0.25)
    lengths = np.asarray([len(s) for s in sequences])
    torch.manual_seed(0)
    encoder = build_encoder(args.model, args.model_path, args.smoke)
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
    pad_id = int(tokenizer.pad_token_id or 0)
    for phase in args.phases.split(","):
        for attention in args.attentions.split(","):
            if attention == "flash-inference" and phase == "train":
                continue
            for mode in args.modes.split(","):
                try:
                    run = run_phase(
                        args, encoder, mode, attention, sequences, pad_id, device, phase == "train"
                    )
                except Exception as exc:  # out of memory, a kernel that fails: keep the rest
                    message = f"{type(exc).__name__}: {exc}".splitlines()[0][:300]
                    run = {"phase": phase, "mode": mode, "attention": attention, "error": message}
                    if device.type == "cuda":
                        torch.cuda.empty_cache()
                results["runs"].append(run)
                print(json.dumps(run), flush=True)
                if args.out:  # after every run, so a run cut short keeps what it measured
                    args.out.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    print(json.dumps({k: v for k, v in results.items() if k != "runs"}))
    return results


if __name__ == "__main__":
    main()
