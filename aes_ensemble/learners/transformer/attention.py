"""Optional fused DeBERTa attention: the ``disentangled-flash`` package, eager as the fallback.

DeBERTa's disentangled attention (content plus relative-position terms) has no fused kernel in
PyTorch, so Hugging Face computes it eagerly and keeps the full score matrices. The optional
``disentangled-flash`` package (``pip install 'aes-ensemble[gpu]'``) swaps in fused Triton
kernels in place, keeping the parameter names, so saved checkpoints stay plain Hugging Face ones.

Its differentiable (training) kernels serve prediction too: on an H200 they predicted 3.1 times
faster than eager, while its inference-only kernels need every padded width prepared ahead.
A short forward and backward on a copy of the encoder probes the path first, so a kernel that
fails to compile falls back to eager with the reason, rather than failing a fold an hour in.
"""

from __future__ import annotations

import copy
from typing import Literal

import torch
from torch import nn
from transformers import PreTrainedModel

from aes_ensemble.errors import AesError

AttentionChoice = Literal["auto", "eager", "flash"]
FLASH = "disentangled-flash"
# The fused kernels compile once per padded width: at widths in steps of 8 an epoch spent most of
# its time compiling (10 essays/s on an H200); steps of 128 leave 8 widths up to 1024.
FUSED_PAD_MULTIPLE = 128


def fused_unavailable(encoder: PreTrainedModel, device: torch.device) -> str | None:
    """Why the fused path cannot run here, or None when it can be tried."""
    if encoder.config.model_type not in ("deberta-v2", "deberta"):
        return f"{encoder.config.model_type} is not a DeBERTa encoder"
    if device.type != "cuda":
        return "no CUDA device"
    try:
        import disentangled_flash  # noqa: F401
    except ImportError:
        return f"{FLASH} is not installed (pip install 'aes-ensemble[gpu]')"
    return None


def _swap(encoder: nn.Module) -> bool:
    """Swap the attention in place; False when the package declines this shape or dtype."""
    import disentangled_flash

    disentangled_flash.enable_deberta_training(encoder, backend="triton")
    return isinstance(encoder.encoder, disentangled_flash.DebertaV2OptimizedEncoder)


def _probe(
    encoder: PreTrainedModel, device: torch.device, dtype: torch.dtype, max_length: int
) -> str | None:
    """Forward and backward at the longest length on a copy; the error, or None if it ran."""
    trial: nn.Module = copy.deepcopy(encoder)
    trial.to(device)
    try:
        if not _swap(trial):
            return f"{FLASH} declined this model"
        ids = torch.full((2, max_length), 1, dtype=torch.long, device=device)
        mask = torch.ones_like(ids)
        mask[1, max_length // 2 :] = 0
        with torch.autocast(device.type, dtype=dtype, enabled=dtype != torch.float32):
            hidden = trial(input_ids=ids, attention_mask=mask).last_hidden_state
        hidden.float().mean().backward()
        torch.cuda.synchronize(device)
    except Exception as exc:  # a Triton compile or launch failure: eager still works
        return f"{FLASH} failed: {type(exc).__name__}: {exc}".splitlines()[0][:200]
    finally:
        del trial
        torch.cuda.empty_cache()
    return None


def use_attention(
    encoder: PreTrainedModel,
    choice: AttentionChoice,
    device: torch.device,
    dtype: torch.dtype,
    max_length: int,
) -> str:
    """Apply ``model.attention`` to ``encoder`` in place; returns the path that runs.

    ``auto`` takes the fused kernels where they work and eager otherwise (the reason is in the
    returned text, which the learner records); ``flash`` insists and raises instead.
    """
    if choice == "eager":
        return "eager"
    reason = fused_unavailable(encoder, device) or _probe(encoder, device, dtype, max_length)
    if reason is None and _swap(encoder):
        return FLASH
    reason = reason or f"{FLASH} declined this model"
    if choice == "flash":
        raise AesError(f"model.attention=flash: {reason}", key="model.attention")
    return f"eager ({reason})"


def pad_multiple(path: str, configured: int) -> int:
    """The multiple that padded widths round up to, for the attention ``path`` that runs."""
    return max(configured, FUSED_PAD_MULTIPLE) if path == FLASH else configured
