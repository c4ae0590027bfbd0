"""Optional fused DeBERTa attention: the ``disentangled-flash`` package, eager as the fallback.

DeBERTa's disentangled attention (content plus relative-position terms) has no fused kernel in
PyTorch, so Hugging Face computes it eagerly and keeps the full score matrices. The optional
``disentangled-flash`` package (``pip install 'aes-ensemble[gpu]'``) swaps in fused Triton
kernels in place, keeping the parameter names, so saved checkpoints stay plain Hugging Face ones.

Its differentiable (training) kernels serve prediction too: on an H200 they predicted 3.1 times
faster than eager, while its inference-only kernels need every padded width prepared ahead.
With ``model.padding_free`` they also take packed batches (essays end to end, boundaries in
``cu_seqlens``), so neither attention nor the feed-forward layers compute pad tokens.
A short forward and backward on a copy of the encoder probes the path first, so a kernel that
fails to compile falls back to eager with the reason, rather than failing a fold an hour in.
"""

from __future__ import annotations

import copy
from typing import Any, Literal

import torch
from torch import nn
from transformers import PreTrainedModel

from aes_ensemble.errors import AesError
from aes_ensemble.learners.transformer.data import PackedLayout, collate, pack, to_device

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


def swap_in_fused(encoder: nn.Module, backend: str = "triton", tuning: Any = None) -> bool:
    """Swap the package's differentiable kernels in place (``backend="torch"``: its PyTorch
    implementation, which runs on any device); False when it declines this shape or dtype."""
    import disentangled_flash

    disentangled_flash.enable_deberta_training(encoder, backend=backend, tuning=tuning)
    return isinstance(encoder.encoder, disentangled_flash.DebertaV2OptimizedEncoder)


def encode_packed(
    encoder: nn.Module,
    input_ids: torch.Tensor,
    position_ids: torch.Tensor,
    packing: PackedLayout,
    width: int,
) -> torch.Tensor:
    """Hidden states (essays, ``width``, hidden) of a packed batch, through the fused
    encoder's packed path; the positions restart at 0 for every essay."""
    import disentangled_flash

    layers = encoder.get_submodule("encoder")
    if not isinstance(layers, disentangled_flash.DebertaV2OptimizedEncoder):
        raise AesError(f"packed batches need the {FLASH} encoder", key="model.padding_free")
    info = disentangled_flash.PackedSequenceInfo(
        packing.offsets, packing.lengths, max(packing.lengths)
    )
    embeddings = encoder.get_submodule("embeddings")
    embedded = embeddings(input_ids=input_ids, position_ids=position_ids)[0]
    hidden = layers.forward_packed(
        embedded, packing.cu_seqlens, info.max_seqlen, output_hidden_states=False, packed_info=info
    ).last_hidden_state
    grid = hidden.new_zeros(len(packing.lengths) * width, hidden.shape[-1])
    grid = grid.index_copy(0, packing.token_slots, hidden)
    return grid.view(len(packing.lengths), width, hidden.shape[-1])


def _probe(
    encoder: PreTrainedModel,
    device: torch.device,
    dtype: torch.dtype,
    max_length: int,
    packed: bool,
) -> str | None:
    """Forward and backward at the longest length on a copy; the error, or None if it ran."""
    trial: nn.Module = copy.deepcopy(encoder)
    trial.to(device)
    sequences = [[1] * max_length, [1] * (max_length // 2)]
    try:
        if not swap_in_fused(trial):
            return f"{FLASH} declined this model"
        batch = to_device(pack(sequences) if packed else collate(sequences, 0), device)
        with torch.autocast(device.type, dtype=dtype, enabled=dtype != torch.float32):
            if packed:
                hidden = encode_packed(
                    trial, batch["input_ids"], batch["position_ids"], batch["packing"], max_length
                )
            else:
                hidden = trial(**batch).last_hidden_state
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
    packed: bool = False,
) -> str:
    """Apply ``model.attention`` to ``encoder`` in place; returns the path that runs.

    ``auto`` takes the fused kernels where they work and eager otherwise (the reason is in the
    returned text, which the learner records); ``flash`` insists and raises instead. ``packed``
    probes the packed kernels, which are the ones that will run.
    """
    if choice == "eager":
        return "eager"
    reason = fused_unavailable(encoder, device) or _probe(
        encoder, device, dtype, max_length, packed
    )
    if reason is None and swap_in_fused(encoder):
        return FLASH
    reason = reason or f"{FLASH} declined this model"
    if choice == "flash":
        raise AesError(f"model.attention=flash: {reason}", key="model.attention")
    return f"eager ({reason})"


def pad_multiple(path: str, configured: int) -> int:
    """The multiple that padded widths round up to, for the attention ``path`` that runs."""
    return max(configured, FUSED_PAD_MULTIPLE) if path == FLASH else configured
