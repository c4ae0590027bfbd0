"""What the CPU learners share: a FeaturePipeline fitted on the fold's training rows in front of
a model trained on per-scale normalised targets (0..1), so one model serves essays scored on
different scales (ASAP's eight) and its predictions map back to each essay's own scale."""

from __future__ import annotations

import json
from abc import abstractmethod
from pathlib import Path
from typing import Any, Literal, TypeAlias, TypeVar

import numpy as np
import scipy.sparse as sp

from aes_ensemble.data import Essays
from aes_ensemble.errors import AesError
from aes_ensemble.features.pipeline import FeatureConfig, FeaturePipeline, definition_versions
from aes_ensemble.io import write_json_atomic
from aes_ensemble.learners.base import Learner, LearnerConfig
from aes_ensemble.scales import ScoreScales
from aes_ensemble.store import Prediction

Matrix: TypeAlias = np.ndarray | sp.csr_matrix
T = TypeVar("T", bound="TabularLearner")

FEATURES_DIR = "features"
PROMPTS_FILE = "prompts.json"


class TabularConfig(LearnerConfig):
    """A learner on a feature matrix: which features, and (in subclasses) the model's params."""

    features: FeatureConfig
    # One model (and feature fit) per prompt, as ASAP's prompt-specific scorers are; every prompt
    # to predict must occur in training, so it suits stratified folds, not prompt-grouped ones.
    # "auto": per prompt exactly when the data has per-prompt scales (ASAP).
    per_prompt: bool | Literal["auto"] = "auto"

    def fits_per_prompt(self, scales: ScoreScales) -> bool:
        return scales.fits_per_prompt(self.per_prompt)

    def feature_versions(self) -> dict[str, str]:
        return definition_versions(self.features)


class TabularLearner(Learner):
    """Features + one regression model on normalised targets; subclasses own only the model."""

    config: TabularConfig

    def __init__(
        self,
        config: Any,
        scales: ScoreScales,
        cache_dir: Path | None = None,
        *,
        progress: bool = False,
    ) -> None:
        super().__init__(config, scales, cache_dir, progress=progress)
        self.pipeline: FeaturePipeline | None = None
        self.members: dict[str, TabularLearner] = {}

    @property
    def _per_prompt(self) -> bool:
        return self.config.fits_per_prompt(self.scales)

    def _member(self: T) -> T:
        """A single-model learner of the same kind, for one prompt's essays."""
        member = self.config.model_copy(update={"per_prompt": False})
        return type(self)(member, self.scales, self.cache_dir, progress=self.progress)

    def _pipeline(self) -> FeaturePipeline:
        return FeaturePipeline(
            self.config.features, self.cache_dir, self.config.seed, progress=self.progress
        )

    def prepare(self, essays: Essays) -> None:
        """Embed and compute handcrafted features of ``essays`` once, into the cache."""
        self._pipeline().warm(essays)

    def fit(self: T, train: Essays, valid: Essays | None = None) -> T:
        """Fit features and model on ``train`` only; ``valid`` is never looked at."""
        if len(train) < 2:
            raise AesError(f"cannot fit a {self.kind} learner on {len(train)} essays")
        if self._per_prompt:
            if not train.has_prompts or any(p is None for p in train.prompts):
                raise AesError("per_prompt needs a prompt for every essay", key="per_prompt")
            self.members = {
                str(p): self._member().fit(train.take(np.flatnonzero(train.prompts == p)))
                for p in sorted(set(train.prompts))
            }
            return self
        self.pipeline = self._pipeline()
        x = self.pipeline.fit_transform(train)
        y = self.scales.normalise(train.scores, train.prompts)
        self._fit_matrix(x, y, train)
        return self

    def predict(self, essays: Essays) -> Prediction:
        """Scores on each essay's scale, clipped to it (a model may overshoot 0..1)."""
        if self.members:
            return self._predict_members(essays)
        if self.pipeline is None:
            raise AesError(f"the {self.kind} learner must be fitted or loaded before predict")
        raw = self._predict_matrix(self.pipeline.transform(essays))
        normalised = np.clip(np.asarray(raw, dtype=np.float64), 0.0, 1.0)
        return Prediction(self.scales.denormalise(normalised, essays.prompts))

    def known_prompts(self) -> tuple[str, ...] | None:
        if self.members:
            return tuple(self.members)
        return super().known_prompts()

    def _predict_members(self, essays: Essays) -> Prediction:
        """Each prompt's rows from its member; class probabilities too where every member names
        the same classes (one global scale), since then their columns line up."""
        out = np.empty(len(essays), dtype=np.float64)
        parts: list[tuple[np.ndarray, Prediction]] = []
        for prompt in sorted(set(essays.prompts), key=str):
            if prompt not in self.members:
                what = "an essay without a prompt" if prompt is None else f"prompt '{prompt}'"
                raise AesError(
                    f"{what} has no model: per_prompt learners score only prompts seen in "
                    f"training ({', '.join(self.members)})",
                    key="per_prompt",
                )
            rows = np.flatnonzero(essays.prompts == prompt)
            part = self.members[prompt].predict(essays.take(rows))
            out[rows] = part.pred
            parts.append((rows, part))
        labels = {part.proba_labels if part.proba is not None else () for _, part in parts}
        if len(labels) != 1 or not (proba_labels := labels.pop()):
            return Prediction(out)
        proba = np.empty((len(essays), len(proba_labels)), dtype=np.float64)
        for rows, part in parts:
            proba[rows] = part.proba
        return Prediction(out, proba, proba_labels)

    def save(self, directory: Path) -> None:
        if self.members:
            directory.mkdir(parents=True, exist_ok=True)
            for i, member in enumerate(self.members.values()):
                member.save(directory / f"prompt_{i}")
            write_json_atomic(directory / PROMPTS_FILE, list(self.members))
            return
        if self.pipeline is None:
            raise AesError(f"the {self.kind} learner must be fitted before save")
        directory.mkdir(parents=True, exist_ok=True)
        self.pipeline.save(directory / FEATURES_DIR)
        self._save_model(directory)

    @classmethod
    def load(
        cls: type[T],
        directory: Path,
        config: Any,
        scales: ScoreScales,
        cache_dir: Path | None = None,
        *,
        progress: bool = False,
    ) -> T:
        if not directory.is_dir():
            raise AesError("model folder not found", path=directory)
        learner = cls(config, scales, cache_dir, progress=progress)
        if learner._per_prompt:
            prompts = json.loads(model_file(directory, PROMPTS_FILE).read_text(encoding="utf-8"))
            member = learner.config.model_copy(update={"per_prompt": False})
            learner.members = {
                str(p): cls.load(
                    directory / f"prompt_{i}", member, scales, cache_dir, progress=progress
                )
                for i, p in enumerate(prompts)
            }
            return learner
        learner.pipeline = FeaturePipeline.load(directory / FEATURES_DIR, cache_dir, progress)
        learner._load_model(directory)
        return learner

    @abstractmethod
    def _fit_matrix(self, x: Matrix, y: np.ndarray, train: Essays) -> None:
        """Fit the model on features ``x`` and normalised targets ``y`` of ``train``."""

    @abstractmethod
    def _predict_matrix(self, x: Matrix) -> np.ndarray:
        """Normalised predictions for features ``x``."""

    @abstractmethod
    def _save_model(self, directory: Path) -> None: ...

    @abstractmethod
    def _load_model(self, directory: Path) -> None: ...


def model_file(directory: Path, name: str) -> Path:
    """``directory/name``, or an error naming the file a load needs."""
    path = directory / name
    if not path.is_file():
        raise AesError("model file not found (was the fold fitted to the end?)", path=path)
    return path
