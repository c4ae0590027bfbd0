"""The learner protocol and its registry.

A learner owns only its model: the runner owns folds, timing, resume and writing. ``fit`` gets a
fold's training rows (and the validation rows for monitoring only), ``predict`` returns scores on
the essays' own scale.
"""

from __future__ import annotations

import importlib
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, TypeVar

import numpy as np
from pydantic import Field, SerializerFunctionWrapHandler, model_serializer

from aes_ensemble.config import StrictModel
from aes_ensemble.errors import AesError, did_you_mean
from aes_ensemble.extra_train import ExtraTrainConfig
from aes_ensemble.io import read_json_file, write_json_atomic
from aes_ensemble.scales import ScoreScales
from aes_ensemble.tuning.space import SearchParam

# Modules whose import registers learner kinds; imported lazily so torch loads only when needed.
KIND_MODULES: dict[str, str] = {
    "lgbm": "aes_ensemble.learners.gbdt",
    "xgb": "aes_ensemble.learners.gbdt",
    "lgbm_ordinal": "aes_ensemble.learners.gbdt_ordinal",
    "xgb_ordinal": "aes_ensemble.learners.gbdt_ordinal",
    "ridge": "aes_ensemble.learners.linear",
    "svr": "aes_ensemble.learners.linear",
    "string_kernel": "aes_ensemble.learners.string_kernel",
    "transformer": "aes_ensemble.learners.transformer",
}

_REGISTRY: dict[str, type[Learner]] = {}

# Written beside a fold's model: the score scales it maps its 0..1 outputs onto, so a fold folder
# (or a bundle's copy of it) scores new essays without the training data.
SCALES_FILE = "scales.json"


# GPUs a task of each kind asks a scheduler for when its config says nothing (one per fold).
DEFAULT_GPUS: dict[str, float] = {"transformer": 1.0}


class Resources(StrictModel):
    """What one fold of a learner asks a cluster scheduler (Ray) for: CPUs, GPUs (None: the
    kind's default, ``DEFAULT_GPUS``) and memory in bytes (None: no reservation)."""

    num_cpus: float = Field(default=1.0, gt=0)
    num_gpus: float | None = Field(default=None, ge=0)
    memory: int | None = Field(default=None, gt=0)


class LearnerConfig(StrictModel):
    """Settings every learner has; each kind extends it with its own sections. ``resources``
    only schedules the work, so it is left out of the config's dump and hash (``exclude``): the
    same config fits the same folds on any machine."""

    kind: str
    seed: int = 42
    resources: Resources = Field(default_factory=Resources, exclude=True)
    # What `aes-ensemble tune` may vary (dotted keys); searching never changes a fit, so it is
    # left out of the dump and hash too. Empty: the kind's default space.
    search: dict[str, SearchParam] = Field(default_factory=dict, exclude=True)
    # Extra scored essays added to every fold's training rows (``aes_ensemble.extra_train``).
    extra_train: ExtraTrainConfig | None = None

    @model_serializer(mode="wrap")
    def _without_absent_extra(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        """Leave ``extra_train`` out of the dump (and so the hash) when it is not set: configs
        written before it existed keep their hash and their fitted folds."""
        data: dict[str, Any] = handler(self)
        if self.extra_train is None:
            data.pop("extra_train", None)
        return data


def fits_per_prompt(setting: bool | str, scales: ScoreScales) -> bool:
    """Whether ``per_prompt: setting`` fits one model per prompt (``auto``: per-prompt scales)."""
    return scales.is_per_prompt if setting == "auto" else bool(setting)


def task_resources(config: LearnerConfig) -> Resources:
    """The config's resources with the kind's default GPUs filled in."""
    res = config.resources
    if res.num_gpus is not None:
        return res
    return res.model_copy(update={"num_gpus": DEFAULT_GPUS.get(config.kind, 0.0)})


@dataclass(frozen=True)
class Prediction:
    """Scores on the essays' scale, and class probabilities where the learner has them."""

    pred: np.ndarray
    proba: np.ndarray | None = None
    proba_labels: tuple[str, ...] = ()


L = TypeVar("L", bound="Learner")


class Learner(ABC):
    kind: ClassVar[str]
    config_model: ClassVar[type[LearnerConfig]]

    def __init__(
        self,
        config: Any,
        scales: ScoreScales,
        cache_dir: Path | None = None,
        *,
        progress: bool = False,
    ) -> None:
        self.config = config
        self.scales = scales
        self.cache_dir = cache_dir
        self.progress = progress

    def known_prompts(self) -> tuple[str, ...] | None:
        """The prompts this fitted learner can score; None when it scores any essay. Per-prompt
        scales without a default scale only the prompts they name."""
        if self.scales.is_per_prompt and self.scales.default is None:
            return tuple(sorted(self.scales.per_prompt))
        return None

    def prepare(self, essays: Any) -> None:
        """Compute what depends on each essay alone (cached features) for ``essays`` before any
        fold, so every fold reads the same cached values. Default: nothing to compute."""
        return None

    @abstractmethod
    def fit(self: L, train: Any, valid: Any | None = None) -> L:
        """Fit on ``train`` (an ``Essays``); ``valid`` may be watched, never fitted on."""

    @abstractmethod
    def predict(self, essays: Any) -> Prediction:
        """Scores for ``essays`` on their own scale (continuous, not rounded)."""

    @abstractmethod
    def save(self, directory: Path) -> None:
        """Write the fitted model into ``directory`` in the library's native or safe format."""

    @classmethod
    @abstractmethod
    def load(
        cls: type[L],
        directory: Path,
        config: Any,
        scales: ScoreScales,
        cache_dir: Path | None = None,
        *,
        progress: bool = False,
    ) -> L:
        """Read a model written by ``save``; ``progress`` as in ``__init__``."""


def register(cls: type[L]) -> type[L]:
    """Class decorator: make ``cls`` available as ``kind: <cls.kind>`` in configs."""
    _REGISTRY[cls.kind] = cls
    return cls


def learner_class(kind: str) -> type[Learner]:
    if kind not in _REGISTRY and kind in KIND_MODULES:
        importlib.import_module(KIND_MODULES[kind])
    if kind not in _REGISTRY:
        raise AesError(
            f"unknown learner kind '{kind}'{did_you_mean(kind, KIND_MODULES)}", key="kind"
        )
    return _REGISTRY[kind]


def write_scales(directory: Path, scales: ScoreScales) -> None:
    """Record ``scales`` in a fold folder (``SCALES_FILE``)."""
    write_json_atomic(directory / SCALES_FILE, scales.to_dict())


def read_scales(directory: Path) -> ScoreScales | None:
    """The scales a fold folder records; None when it has none (fitted by an older version)."""
    path = directory / SCALES_FILE
    data = read_json_file(path, fix=": refit the fold")
    if data is None:
        return None
    if not isinstance(data, dict):
        raise AesError("is not a JSON object of default and per_prompt: refit the fold", path=path)
    try:
        return ScoreScales.from_dict(data)
    except AesError as exc:
        raise AesError(exc.message, path=path) from None
