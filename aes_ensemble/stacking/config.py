"""The stack's settings (``configs/stack.yaml``): which meta-learner, inputs and thresholds."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, field_validator

from aes_ensemble.config import StrictModel
from aes_ensemble.errors import AesError, did_you_mean
from aes_ensemble.stacking.calibration import DEFAULT_MIN_BATCH
from aes_ensemble.stacking.meta import BLENDS, BUILTINS


class StackFeatures(StrictModel):
    """Meta-features beyond each learner's ``pred``: its class probabilities, the essay length,
    and per-prompt weights (each learner's pred times each training prompt's indicator, plus the
    indicators: a ridge shrinks them towards the shared weights, and a prompt it never saw
    gets the shared weights alone)."""

    proba: bool = False
    length: bool = False
    prompt_weights: bool = False


class MetaClass(StrictModel):
    """Any scikit-learn-style regressor by class path (``sklearn.linear_model.HuberRegressor``)."""

    class_path: str = Field(alias="class")
    params: dict[str, Any] = Field(default_factory=dict)


class StackConfig(StrictModel):
    meta: str | MetaClass = "ridge"
    models: list[str] = Field(default_factory=list)
    features: StackFeatures = StackFeatures()
    thresholds: Literal["nelder-mead", "optuna", "none"] = "nelder-mead"
    unseen_prompts: Literal["keep", "standardise"] = "keep"
    min_prompt_batch: int = Field(default=DEFAULT_MIN_BATCH, ge=2)
    seed: int = 42
    n_boot: int = Field(default=1000, ge=1)
    name: str | None = None
    options: dict[str, dict[str, Any]] = Field(default_factory=dict)

    @field_validator("options")
    @classmethod
    def _known_options(cls, value: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
        for key in value:
            if key not in BUILTINS:
                raise ValueError(
                    f"'{key}' is not a built-in meta-learner{did_you_mean(key, BUILTINS)}"
                )
        return value

    @property
    def meta_name(self) -> str:
        """``ridge``, ``hill``, ... or the class name of a class-path meta-learner."""
        if isinstance(self.meta, MetaClass):
            return self.meta.class_path.rpartition(".")[2].lower()
        return self.meta

    @property
    def output_name(self) -> str:
        return self.name or f"stack_{self.meta_name}"

    def check(self) -> None:
        """Combinations a schema cannot express: blends take only the learners' predictions."""
        if isinstance(self.meta, str) and self.meta not in BUILTINS:
            raise AesError(
                f"unknown meta-learner '{self.meta}'{did_you_mean(self.meta, BUILTINS)}",
                key="meta",
            )
        f = self.features
        if self.meta in BLENDS and (f.proba or f.length or f.prompt_weights):
            raise AesError(
                f"meta '{self.meta}' blends predictions on one scale; proba/length/prompt_weights "
                "need ridge, lgbm or a class-path meta-learner",
                key="features",
            )
        if self.meta == "vote" and self.unseen_prompts == "standardise":
            raise AesError(
                "meta 'vote' outputs levels, which cannot be standardised per prompt; "
                "use another meta-learner or unseen_prompts: keep",
                key="unseen_prompts",
            )
