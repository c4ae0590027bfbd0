"""Device and precision choices, and batched inference over token sequences."""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractContextManager

import numpy as np
import torch
from torch import nn

from aes_ensemble.learners.transformer.data import Batcher, sorted_batches, to_device

DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}


def resolve_device(choice: str) -> torch.device:
    if choice == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(choice)


def resolve_precision(choice: str, device: torch.device) -> torch.dtype:
    """``auto``: bf16 on GPUs that have it, else fp16 on GPU; fp32 on CPU (bit-reproducible)."""
    if choice != "auto":
        return DTYPES[choice]
    if device.type != "cuda":
        return torch.float32
    return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16


def autocast(device: torch.device, dtype: torch.dtype) -> AbstractContextManager[object]:
    """Mixed precision for ``dtype`` bf16/fp16; a no-op for fp32."""
    return torch.autocast(device.type, dtype=dtype, enabled=dtype != torch.float32)


@torch.inference_mode()
def predict_outputs(
    model: nn.Module,
    sequences: Sequence[Sequence[int]],
    *,
    batch_size: int,
    batcher: Batcher,
    device: torch.device,
    dtype: torch.dtype,
) -> np.ndarray:
    """Raw head outputs (N, n_outputs) in the order of ``sequences``, length-sorted batches."""
    was_training = model.training
    model.eval()
    out: np.ndarray | None = None
    for rows in sorted_batches([len(s) for s in sequences], batch_size):
        batch = to_device(batcher([sequences[i] for i in rows]), device)
        with autocast(device, dtype):
            result = model(**batch)
        values = result.float().cpu().numpy().astype(np.float64)
        if out is None:
            out = np.empty((len(sequences), values.shape[1]), dtype=np.float64)
        out[rows] = values
    model.train(was_training)
    if out is None:
        raise ValueError("no essays to predict")
    return out
