"""Encoder + pooling + head, the two losses, and the optimiser's parameter groups.

The head is small and separate from the encoder so the encoder can be saved with Hugging Face's
``save_pretrained`` and the pooling/head weights in their own safetensors file.
"""

from __future__ import annotations

import re
from typing import Any

import torch
from torch import nn
from torch.nn import functional
from transformers import AutoModel, PreTrainedModel

from aes_ensemble.learners.transformer.attention import encode_packed
from aes_ensemble.learners.transformer.config import ModelSection, TrainSection
from aes_ensemble.learners.transformer.data import PackedLayout


class MeanPooling(nn.Module):
    def forward(self, hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        weights = mask.unsqueeze(-1).float()
        pooled = (hidden.float() * weights).sum(1) / weights.sum(1).clamp(min=1.0)
        return pooled.to(hidden.dtype)  # summed in fp32: a bf16 sum over 1024 tokens drifts


class ClsPooling(nn.Module):
    def forward(self, hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return hidden[:, 0]


class AttentionPooling(nn.Module):
    """A learned score per token, softmaxed over the real (unpadded) tokens."""

    def __init__(self, hidden_size: int) -> None:
        super().__init__()
        self.score = nn.Sequential(
            nn.Linear(hidden_size, hidden_size), nn.Tanh(), nn.Linear(hidden_size, 1)
        )

    def forward(self, hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        scores = self.score(hidden).squeeze(-1).float()
        scores = scores.masked_fill(mask == 0, torch.finfo(scores.dtype).min)
        weights = torch.softmax(scores, dim=1).to(hidden.dtype)
        return (hidden * weights.unsqueeze(-1)).sum(1)


class GemPooling(nn.Module):
    """Generalised mean with a learned power ``p`` (p=1: mean, large p: max)."""

    def __init__(self, p: float = 3.0, eps: float = 1e-6) -> None:
        super().__init__()
        self.p = nn.Parameter(torch.tensor(p))
        self.eps = eps

    def forward(self, hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        weights = mask.unsqueeze(-1).float()
        powered = hidden.float().clamp(min=self.eps).pow(self.p) * weights
        pooled = powered.sum(1) / weights.sum(1).clamp(min=1.0)
        return pooled.pow(1.0 / self.p).to(hidden.dtype)


def make_pooling(kind: str, hidden_size: int) -> nn.Module:
    if kind == "mean":
        return MeanPooling()
    if kind == "cls":
        return ClsPooling()
    if kind == "attention":
        return AttentionPooling(hidden_size)
    return GemPooling()


class ScoringHead(nn.Module):
    """Pooling then one linear layer: 1 output (regression) or K-1 (ordinal)."""

    def __init__(self, pooling: str, hidden_size: int, n_outputs: int) -> None:
        super().__init__()
        self.pool = make_pooling(pooling, hidden_size)
        self.out = nn.Linear(hidden_size, n_outputs)

    def forward(self, hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return self.out(self.pool(hidden, mask))


class EssayScorer(nn.Module):
    """The whole network: ``encoder`` (any Hugging Face encoder) and ``head``."""

    def __init__(self, encoder: PreTrainedModel, head: ScoringHead) -> None:
        super().__init__()
        self.encoder = encoder
        self.head = head

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        position_ids: torch.Tensor | None = None,
        packing: PackedLayout | None = None,
    ) -> torch.Tensor:
        """Scores of a padded batch, or of a packed one (``packing``, from ``data.pack``)."""
        if packing is None:
            hidden = self.encoder(
                input_ids=input_ids, attention_mask=attention_mask
            ).last_hidden_state
        else:
            assert position_ids is not None
            hidden = encode_packed(
                self.encoder, input_ids, position_ids, packing, attention_mask.shape[1]
            )
        # Pooling and head in fp32, outside autocast: a bf16 head output would quantise scores
        # to about 0.01 of a point, and it costs nothing next to the encoder.
        with torch.autocast(hidden.device.type, enabled=False):
            return self.head(hidden.float(), attention_mask)


def load_encoder(path: str, dtype: torch.dtype = torch.float32) -> PreTrainedModel:
    """Always fp32 for training: autocast gives the speed, fp32 master weights the stability."""
    return AutoModel.from_pretrained(path, dtype=dtype)


def encoder_layers(encoder: PreTrainedModel) -> nn.ModuleList:
    """The stack of transformer blocks (``encoder.layer`` in BERT/DeBERTa-like models)."""
    n_layers = encoder.config.num_hidden_layers
    for module in encoder.modules():
        if isinstance(module, nn.ModuleList) and len(module) == n_layers:
            return module
    raise ValueError(f"cannot find the {n_layers} transformer layers of {type(encoder).__name__}")


def reinit_top_layers(encoder: PreTrainedModel, n: int) -> None:
    """Fresh weights for the top ``n`` blocks: their pretraining is least useful for scoring."""
    std = getattr(encoder.config, "initializer_range", 0.02)
    with torch.no_grad():
        for block in list(encoder_layers(encoder))[-n:] if n else []:
            for module in block.modules():
                if isinstance(module, nn.Linear):
                    nn.init.normal_(module.weight, std=std)
                    if module.bias is not None:
                        nn.init.zeros_(module.bias)
                elif isinstance(module, nn.LayerNorm):
                    nn.init.ones_(module.weight)
                    nn.init.zeros_(module.bias)


def freeze_embeddings(encoder: PreTrainedModel) -> None:
    embeddings = getattr(encoder, "embeddings", None) or encoder.get_input_embeddings()
    for param in embeddings.parameters():
        param.requires_grad_(False)


def enable_checkpointing(encoder: PreTrainedModel) -> None:
    """Recompute activations in backward: less memory for long essays, about 30% more time.

    transformers 5 renamed the method; 4.x only has ``gradient_checkpointing_enable``.
    """
    kwargs = {"use_reentrant": False}
    if hasattr(encoder, "activation_checkpointing_enable"):
        encoder.activation_checkpointing_enable(activation_checkpointing_kwargs=kwargs)
    else:
        encoder.gradient_checkpointing_enable(gradient_checkpointing_kwargs=kwargs)


def build_scorer(section: ModelSection, encoder_path: str, n_outputs: int) -> EssayScorer:
    """Encoder from ``encoder_path`` with the config's changes, plus a fresh head."""
    encoder = load_encoder(encoder_path)
    reinit_top_layers(encoder, section.reinit_layers)
    if section.freeze_embeddings:
        freeze_embeddings(encoder)
    if section.gradient_checkpointing:
        enable_checkpointing(encoder)
    head = ScoringHead(section.pooling, encoder.config.hidden_size, n_outputs)
    return EssayScorer(encoder, head)


_LAYER_INDEX = re.compile(r"\.(?:layer|layers)\.(\d+)\.")


def parameter_groups(
    model: EssayScorer, train: TrainSection, learning_rate: float
) -> list[dict[str, Any]]:
    """AdamW groups: layer-wise decayed learning rates, no weight decay on biases and norms.

    Block ``i`` (0 = lowest) of ``n`` gets ``lr * decay ** (n - 1 - i)``; embeddings
    ``lr * decay ** n``;
    the rest of the encoder (relative embeddings, final norm) ``lr``; the head its own rate.
    """
    n_layers = model.encoder.config.num_hidden_layers
    head_lr = train.head_learning_rate or learning_rate
    groups: dict[tuple[float, float], list[nn.Parameter]] = {}
    for name, param in model.named_parameters():
        if not param.requires_grad:
            continue
        if name.startswith("head."):
            lr = head_lr
        elif match := _LAYER_INDEX.search(name):
            lr = learning_rate * train.layerwise_lr_decay ** (n_layers - 1 - int(match.group(1)))
        elif ".embeddings." in f".{name}":
            lr = learning_rate * train.layerwise_lr_decay**n_layers
        else:
            lr = learning_rate
        no_decay = param.ndim < 2 or "norm" in name.lower()
        decay = 0.0 if no_decay else train.weight_decay
        groups.setdefault((lr, decay), []).append(param)
    return [
        {"params": params, "lr": lr, "weight_decay": decay}
        for (lr, decay), params in groups.items()
    ]


def regression_loss(outputs: torch.Tensor, targets: torch.Tensor, loss: str) -> torch.Tensor:
    """``targets`` are scores normalised to 0..1 on their own scale."""
    prediction = outputs.squeeze(-1)
    if loss == "bce":
        return functional.binary_cross_entropy_with_logits(prediction, targets)
    return functional.mse_loss(prediction, targets)


def corn_loss(logits: torch.Tensor, levels: torch.Tensor) -> torch.Tensor:
    """CORN (Shi et al. 2021): output ``k`` learns P(y > k | y >= k) on the rows with y >= k.

    Chaining conditional probabilities keeps P(y > k) monotone in ``k`` without constraints.
    """
    thresholds = torch.arange(logits.shape[1], device=logits.device)
    at_risk = (levels.unsqueeze(1) >= thresholds).float()
    above = (levels.unsqueeze(1) > thresholds).float()
    losses = functional.binary_cross_entropy_with_logits(logits, above, reduction="none")
    return (losses * at_risk).sum() / at_risk.sum().clamp(min=1.0)


def corn_class_proba(logits: torch.Tensor) -> torch.Tensor:
    """Class probabilities (N, K) from CORN logits (N, K-1); rows sum to one."""
    survival = torch.cumprod(torch.sigmoid(logits.float()), dim=1)  # P(y > k)
    ones = torch.ones_like(survival[:, :1])
    zeros = torch.zeros_like(survival[:, :1])
    upper = torch.cat([ones, survival], dim=1)
    lower = torch.cat([survival, zeros], dim=1)
    return upper - lower
