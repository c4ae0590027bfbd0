"""Settings of the transformer learner (``kind: transformer``), one section per concern.

Defaults follow what worked for DeBERTa-v3 in AES 2.0: mean pooling, 1024 tokens with head+tail
truncation, cosine schedule with warmup, mixed precision on GPU, best epoch by fold QWK.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, model_validator

from aes_ensemble.config import StrictModel
from aes_ensemble.learners.base import LearnerConfig

Precision = Literal["auto", "fp32", "bf16", "fp16"]

# The offline MiniLM shipped as a Python package; resolved to its folder when the model loads.
MINILM_ALIAS = "all-MiniLM-L6-v2"


class ModelSection(StrictModel):
    """The encoder, how essays become tokens, and what sits on top of the encoder."""

    pretrained_model_name_or_path: str = "microsoft/deberta-v3-base"
    tokenizer: str | None = None  # defaults to the model's own folder or hub name
    max_length: Annotated[int, Field(ge=8)] = 1024
    # Share of the token budget kept from the start of a long essay; the rest comes from its end
    # (introduction and conclusion carry most of the signal). 1.0 is plain right truncation.
    head_fraction: Annotated[float, Field(ge=0.0, le=1.0)] = 0.25
    pooling: Literal["mean", "cls", "attention", "gem"] = "mean"
    head: Literal["regression", "ordinal"] = "regression"
    loss: Literal["mse", "bce"] = "mse"  # regression only; bce fits the score scaled to 0..1
    reinit_layers: Annotated[int, Field(ge=0)] = 0
    freeze_embeddings: bool = False
    gradient_checkpointing: bool = False
    # DeBERTa on a GPU: the Hugging Face eager attention (eager), the fused disentangled-flash
    # kernels or an error (flash), or fused where installed and working (auto). Fused needs under
    # a third of the memory; on length-grouped batches it was no faster on an H200.
    attention: Literal["auto", "eager", "flash"] = "eager"
    # With the fused kernels: each batch's essays end to end in one row (FlashAttention-style
    # cu_seqlens) instead of padded to the longest, so no layer computes pad tokens.
    padding_free: bool = False

    @model_validator(mode="after")
    def _settings_fit_together(self) -> ModelSection:
        if self.head == "ordinal" and self.loss != "mse":
            raise ValueError("model.loss applies to the regression head only; leave it at mse")
        if self.padding_free and self.attention == "eager":
            raise ValueError(
                "model.padding_free needs the fused kernels: set model.attention to flash or auto"
            )
        if self.padding_free and self.gradient_checkpointing:
            raise ValueError(
                "model.gradient_checkpointing does not apply to packed batches "
                "(model.padding_free), whose fused kernels need a third of the memory anyway"
            )
        return self


class Stage(StrictModel):
    """One phase of training on the rows of one ``source`` (all rows when ``source`` is null)."""

    source: str | None = None
    epochs: Annotated[int, Field(ge=1)] = 1
    learning_rate: float | None = None  # defaults to ``train.learning_rate``


class TrainSection(StrictModel):
    """The optimisation loop. ``batch_size`` is per device; accumulation reaches
    ``effective_batch_size`` over all devices."""

    epochs: Annotated[int, Field(ge=1)] = 3
    batch_size: Annotated[int, Field(ge=1)] = 8
    effective_batch_size: Annotated[int | None, Field(ge=1)] = None
    learning_rate: Annotated[float, Field(gt=0)] = 2e-5
    head_learning_rate: Annotated[float | None, Field(gt=0)] = None
    layerwise_lr_decay: Annotated[float, Field(gt=0, le=1.0)] = 1.0
    weight_decay: Annotated[float, Field(ge=0)] = 0.01
    scheduler: Literal["cosine", "linear", "constant_with_warmup"] = "cosine"
    warmup_ratio: Annotated[float, Field(ge=0, lt=1)] = 0.1
    max_grad_norm: Annotated[float, Field(gt=0)] = 1.0
    precision: Precision = "auto"
    device: Literal["auto", "cpu", "cuda"] = "auto"
    select_best: Literal["qwk", "last"] = "qwk"
    length_grouping: bool = True
    pad_to_multiple_of: Annotated[int, Field(ge=1)] = 8
    stages: list[Stage] = Field(default_factory=list)
    max_steps: Annotated[int | None, Field(ge=1)] = None  # stop early (smoke runs, benchmarks)
    report_to: Literal["none", "tensorboard", "wandb"] = "none"
    logging_dir: str = "runs"
    wandb_project: str = "aes-ensemble"
    progress_bar: bool = True


class PredictSection(StrictModel):
    """Inference: ``dtype`` casts the fp32 weights (auto: bf16/fp16 on GPU, fp32 on CPU)."""

    batch_size: Annotated[int, Field(ge=1)] = 32
    dtype: Precision = "auto"


class TransformerConfig(LearnerConfig):
    kind: Literal["transformer"] = "transformer"
    model: ModelSection = ModelSection()
    train: TrainSection = TrainSection()
    predict: PredictSection = PredictSection()
