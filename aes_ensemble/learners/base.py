"""The learner protocol, and the settings every learner config has.

A learner owns only its model: the engine (``fold_fit``) owns folds, timing, resume and writing.
``fit`` gets a fold's training rows (and the validation rows for monitoring only), ``predict``
returns scores on the essays' own scale.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any, ClassVar, TypeVar

from pydantic import Field

from aes_ensemble.config import StrictModel
from aes_ensemble.extra_train import ExtraTrainConfig
from aes_ensemble.learners.resources import Resources
from aes_ensemble.learners.search_space import SearchParam
from aes_ensemble.scales import ScoreScales
from aes_ensemble.store import Prediction


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

    def fits_per_prompt(self, scales: ScoreScales) -> bool:
        """Whether this config fits one model per prompt; kinds with a ``per_prompt`` setting
        say so (``ScoreScales.fits_per_prompt``), the others fit one model for all prompts."""
        return False

    def feature_versions(self) -> dict[str, str]:
        """The definition versions of the per-essay feature blocks this learner uses, recorded
        with each fold so a changed definition refits it; none for a learner that reads the
        text itself."""
        return {}


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
