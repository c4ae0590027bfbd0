"""String-kernel learner: histogram intersection over character n-grams (Cozma et al. 2018).

``K(a, b) = sum over n-grams g of min(count_a(g), count_b(g))``, optionally normalised to
``K(a, b) / sqrt(K(a, a) K(b, b))``, feeds kernel ridge or nu-SVR with a precomputed kernel, one
model per prompt where prompts have their own scales (as ``TabularLearner``'s ``per_prompt``).

The kernel (exact n-grams, computed as matrix products) is ``ngram_kernel``'s. Nothing is cached
per essay: the vocabulary is the fold's (and prompt's) training essays'.

Saved without pickle: each member's training texts (UTF-8 in safetensors: far smaller than their
n-gram histograms, which are rebuilt from them on load), dual coefficients and intercept. Every
prediction, after fit as after load, goes through that saved state.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import scipy.linalg
from pydantic import Field, model_validator
from safetensors.numpy import load_file, save_file
from sklearn.svm import NuSVR

from aes_ensemble.config import StrictModel
from aes_ensemble.data import Essays
from aes_ensemble.errors import AesError
from aes_ensemble.io import atomic_path, write_json_atomic
from aes_ensemble.learners.base import Learner, LearnerConfig
from aes_ensemble.learners.ngram_kernel import IntersectionKernel
from aes_ensemble.learners.registry import register
from aes_ensemble.learners.tabular import model_file
from aes_ensemble.scales import ScoreScales
from aes_ensemble.store import Prediction

MODEL = "string_kernel.safetensors"
MEMBERS = "string_kernel.json"
POOLED = ""  # the member key of the one model fitted on all prompts
PREDICT_BATCH = 1024  # essays per kernel block at predict: bounds memory to batch x training rows


class StringKernelParams(StrictModel):
    """The kernel (n-gram lengths, normalisation) and the dual model on it."""

    ngram_range: tuple[int, int] = (1, 5)
    normalise: bool = True
    solver: Literal["krr", "nu_svr"] = "krr"
    alpha: float = Field(default=0.3, gt=0)  # kernel ridge penalty (on the normalised kernel)
    C: float = Field(default=1.0, gt=0)  # nu-SVR
    nu: float = Field(default=0.5, gt=0, le=1)
    tol: float = Field(default=1e-3, gt=0)

    @model_validator(mode="after")
    def _check_range(self) -> StringKernelParams:
        low, high = self.ngram_range
        if not 1 <= low <= high:
            raise ValueError(f"ngram_range [{low}, {high}] must satisfy 1 <= low <= high")
        return self


class StringKernelConfig(LearnerConfig):
    kind: Literal["string_kernel"] = "string_kernel"
    # As TabularConfig's: "auto" = one model per prompt exactly when prompts have their own scales.
    per_prompt: bool | Literal["auto"] = "auto"
    params: StringKernelParams = StringKernelParams()

    def fits_per_prompt(self, scales: ScoreScales) -> bool:
        return scales.fits_per_prompt(self.per_prompt)


@dataclass(frozen=True)
class KernelModel:
    """One fitted dual model: its training (support) texts, dual coefficients and intercept,
    predicting normalised 0..1 targets; ``kernel`` is the state ``IntersectionKernel.fit``
    builds from ``texts``."""

    texts: list[str]
    dual: np.ndarray
    intercept: float

    def predict(
        self, texts: list[str], kernel: IntersectionKernel, params: StringKernelParams
    ) -> np.ndarray:
        out = np.empty(len(texts), dtype=np.float64)
        for start in range(0, len(texts), PREDICT_BATCH):
            block = kernel(texts[start : start + PREDICT_BATCH], normalise=params.normalise)
            out[start : start + PREDICT_BATCH] = block @ self.dual
        return out + self.intercept


def fit_kernel_model(
    texts: list[str], y: np.ndarray, params: StringKernelParams
) -> tuple[KernelModel, IntersectionKernel | None]:
    """Kernel ridge (targets centred: the intercept is their mean) or nu-SVR on the kernel; and
    the kernel state when it is the one the model's own texts build (kernel ridge keeps all)."""
    kernel = IntersectionKernel.fit(texts, *params.ngram_range)
    k = kernel.gram(normalise=params.normalise)
    if params.solver == "krr":
        mean = float(np.mean(y))
        k[np.diag_indices_from(k)] += params.alpha
        dual = scipy.linalg.solve(k, y - mean, assume_a="pos")
        return KernelModel(texts, np.asarray(dual, dtype=np.float64), mean), kernel
    svr = NuSVR(kernel="precomputed", C=params.C, nu=params.nu, tol=params.tol).fit(k, y)
    dual = np.asarray(svr.dual_coef_, dtype=np.float64).ravel()
    # The support texts alone rebuild the vocabulary that their kernel values need.
    support = [texts[i] for i in svr.support_]
    return KernelModel(support, dual, float(svr.intercept_[0])), None


@register
class StringKernelLearner(Learner):
    kind = "string_kernel"
    config_model = StringKernelConfig
    config: StringKernelConfig

    def __init__(
        self,
        config: Any,
        scales: ScoreScales,
        cache_dir: Path | None = None,
        *,
        progress: bool = False,
    ) -> None:
        super().__init__(config, scales, cache_dir, progress=progress)
        self.models: dict[str, KernelModel] = {}
        self._kernel: tuple[str, IntersectionKernel] | None = None

    def _kernel_of(self, key: str) -> IntersectionKernel:
        """A member's kernel state, rebuilt from its texts (after fit as after load). Only the
        last one is kept (the last fitted one, with kernel ridge): a fold's validation and test
        rows share it, while eight prompts' worth would hold gigabytes."""
        if self._kernel is None or self._kernel[0] != key:
            self._kernel = None
            texts, ngrams = self.models[key].texts, self.config.params.ngram_range
            self._kernel = (key, IntersectionKernel.fit(texts, *ngrams))
        return self._kernel[1]

    @property
    def _per_prompt(self) -> bool:
        return self.config.fits_per_prompt(self.scales)

    def _groups(self, essays: Essays) -> dict[str, np.ndarray]:
        """Rows of each member's essays: per prompt, or all under ``POOLED``."""
        if not self._per_prompt:
            return {POOLED: np.arange(len(essays))}
        if not essays.has_prompts or any(p is None for p in essays.prompts):
            raise AesError("per_prompt needs a prompt for every essay", key="per_prompt")
        return {str(p): np.flatnonzero(essays.prompts == p) for p in sorted(set(essays.prompts))}

    def fit(self, train: Essays, valid: Essays | None = None) -> StringKernelLearner:
        """One dual model per group of ``train``; ``valid`` is never looked at."""
        if len(train) < 2:
            raise AesError(f"cannot fit a {self.kind} learner on {len(train)} essays")
        y = self.scales.normalise(train.scores, train.prompts)
        texts = train.texts
        self.models = {}
        for key, rows in self._groups(train).items():
            self._kernel = None  # one member's kernel state in memory at a time
            model, kernel = fit_kernel_model([texts[i] for i in rows], y[rows], self.config.params)
            self.models[key] = model
            if kernel is not None:  # what predict would rebuild from the same texts
                self._kernel = (key, kernel)
        return self

    def known_prompts(self) -> tuple[str, ...] | None:
        if self._per_prompt and self.models:
            return tuple(self.models)
        return super().known_prompts()

    def predict(self, essays: Essays) -> Prediction:
        """Scores on each essay's scale, clipped to it."""
        if not self.models:
            raise AesError(f"the {self.kind} learner must be fitted or loaded before predict")
        out = np.empty(len(essays), dtype=np.float64)
        texts = essays.texts
        groups = self._groups(essays)
        cached = [] if self._kernel is None else [self._kernel[0]]
        for key in sorted(groups, key=lambda k: k not in cached):  # the cached member first
            rows = groups[key]
            if key not in self.models:
                raise AesError(
                    f"prompt '{key}' has no model: per_prompt learners score only prompts seen "
                    f"in training ({', '.join(self.models)})",
                    key="per_prompt",
                )
            batch = [texts[i] for i in rows]
            kernel = self._kernel_of(key)
            out[rows] = self.models[key].predict(batch, kernel, self.config.params)
        normalised = np.clip(out, 0.0, 1.0)
        return Prediction(self.scales.denormalise(normalised, essays.prompts))

    def save(self, directory: Path) -> None:
        if not self.models:
            raise AesError(f"the {self.kind} learner must be fitted before save")
        directory.mkdir(parents=True, exist_ok=True)
        arrays: dict[str, np.ndarray] = {}
        members = []
        for i, (key, model) in enumerate(self.models.items()):
            encoded = [t.encode("utf-8") for t in model.texts]
            arrays[f"m{i}.text"] = np.frombuffer(b"".join(encoded), dtype=np.uint8).copy()
            arrays[f"m{i}.lengths"] = np.asarray([len(e) for e in encoded], dtype=np.int64)
            arrays[f"m{i}.dual"] = model.dual
            members.append({"prompt": key, "intercept": model.intercept})
        with atomic_path(directory / MODEL) as tmp:
            save_file(arrays, str(tmp))
        write_json_atomic(directory / MEMBERS, members)

    @classmethod
    def load(
        cls,
        directory: Path,
        config: Any,
        scales: ScoreScales,
        cache_dir: Path | None = None,
        *,
        progress: bool = False,
    ) -> StringKernelLearner:
        if not directory.is_dir():
            raise AesError("model folder not found", path=directory)
        learner = cls(config, scales, cache_dir, progress=progress)
        members = json.loads(model_file(directory, MEMBERS).read_text(encoding="utf-8"))
        arrays = load_file(str(model_file(directory, MODEL)))
        for i, member in enumerate(members):
            raw = arrays[f"m{i}.text"].tobytes()
            ends = np.cumsum(arrays[f"m{i}.lengths"])
            starts = ends - arrays[f"m{i}.lengths"]
            texts = [raw[a:b].decode("utf-8") for a, b in zip(starts, ends, strict=True)]
            learner.models[str(member["prompt"])] = KernelModel(
                texts, arrays[f"m{i}.dual"], float(member["intercept"])
            )
        return learner
