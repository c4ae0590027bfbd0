"""The search space of a learner: one ``SearchParam`` per dotted config key.

A config declares it under ``search:`` (keys as on the command line)::

    search:
      params.learning_rate: {low: 0.005, high: 0.1, log: true}
      params.num_leaves: {low: 4, high: 64, type: int}
      features.svd_components: {choices: [16, 32, 64]}

A config's own ``search`` replaces the kind's default (``DEFAULT_SPACES``) as a whole, so what
is searched is always visible in one place.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

from pydantic import model_validator

from aes_ensemble.config import StrictModel
from aes_ensemble.errors import AesError

Choice = str | int | float | bool | None


class SearchParam(StrictModel):
    """A range (``low``..``high``, ``log`` scale, ``type: int``, optional ``step``) or a list
    of ``choices``."""

    low: float | None = None
    high: float | None = None
    log: bool = False
    step: float | None = None
    type: Literal["float", "int"] = "float"
    choices: list[Choice] | None = None

    @model_validator(mode="after")
    def _one_kind(self) -> SearchParam:
        ranged = self.low is not None or self.high is not None
        if self.choices is not None:
            if ranged or self.log or self.step is not None:
                raise ValueError("give either choices or low/high, not both")
            if not self.choices:
                raise ValueError("choices must list at least one value")
            return self
        if self.low is None or self.high is None:
            raise ValueError("a range needs both low and high (or give choices: [...])")
        if not self.low < self.high:
            raise ValueError(f"low {self.low:g} must be below high {self.high:g}")
        if self.log and self.low <= 0:
            raise ValueError(f"a log range needs low > 0 (got {self.low:g})")
        if self.log and self.step is not None:
            raise ValueError("step and log cannot be combined")
        if self.type == "int" and (self.low != int(self.low) or self.high != int(self.high)):
            raise ValueError("an int range needs whole low and high")
        return self

    def suggest(self, trial: Any, key: str) -> Choice:
        """The trial's value for ``key`` (Optuna's ``suggest_*``)."""
        if self.choices is not None:
            return trial.suggest_categorical(key, self.choices)
        assert self.low is not None and self.high is not None  # checked by _one_kind
        if self.type == "int":
            step = 1 if self.step is None else int(self.step)
            return int(
                trial.suggest_int(key, int(self.low), int(self.high), step=step, log=self.log)
            )
        return float(trial.suggest_float(key, self.low, self.high, step=self.step, log=self.log))

    def samples(self) -> list[Choice]:
        """Values that span the space (its ends, or every choice): each is checked against the
        config before any trial runs, so a bad space fails at once, not in trial 7."""
        if self.choices is not None:
            return list(self.choices)
        assert self.low is not None and self.high is not None
        if self.type == "int":
            return [int(self.low), int(self.high)]
        return [self.low, self.high]


def _space(params: Mapping[str, Mapping[str, Any]]) -> dict[str, SearchParam]:
    return {key: SearchParam.model_validate(value) for key, value in params.items()}


# Ranges around the shipped configs' values, wide enough for ASAP's and ELLIPSE's sizes.
DEFAULT_SPACES: dict[str, dict[str, SearchParam]] = {
    "lgbm": _space(
        {
            "params.learning_rate": {"low": 0.01, "high": 0.1, "log": True},
            "params.num_leaves": {"low": 4, "high": 48, "type": "int", "log": True},
            "params.min_child_samples": {"low": 5, "high": 60, "type": "int", "log": True},
            "params.feature_fraction": {"low": 0.1, "high": 0.9},
            "params.lambda_l2": {"low": 0.01, "high": 30.0, "log": True},
            "features.svd_components": {"choices": [16, 32, 64]},
        }
    ),
    "xgb": _space(
        {
            "params.learning_rate": {"low": 0.01, "high": 0.1, "log": True},
            "params.max_depth": {"low": 2, "high": 8, "type": "int"},
            "params.min_child_weight": {"low": 0.5, "high": 10.0, "log": True},
            "params.subsample": {"low": 0.5, "high": 1.0},
            "params.colsample_bytree": {"low": 0.2, "high": 0.9},
            "params.reg_lambda": {"low": 0.01, "high": 30.0, "log": True},
            "features.svd_components": {"choices": [32, 64, 128]},
        }
    ),
    "ridge": _space({"params.alpha": {"low": 0.1, "high": 100.0, "log": True}}),
    "string_kernel": _space({"params.alpha": {"low": 0.001, "high": 10.0, "log": True}}),
    "svr": _space(
        {
            "params.C": {"low": 0.5, "high": 64.0, "log": True},
            "params.epsilon": {"low": 0.005, "high": 0.2, "log": True},
            "params.gamma": {"low": 3.0e-5, "high": 3.0e-3, "log": True},
        }
    ),
}

# The ordinal views boost the same trees, one per cut point.
DEFAULT_SPACES["lgbm_ordinal"] = DEFAULT_SPACES["lgbm"]
DEFAULT_SPACES["xgb_ordinal"] = DEFAULT_SPACES["xgb"]


def search_space(kind: str, declared: Mapping[str, SearchParam]) -> dict[str, SearchParam]:
    """The config's ``search`` if it declares one, else its kind's default."""
    if declared:
        return dict(declared)
    if kind in DEFAULT_SPACES:
        return dict(DEFAULT_SPACES[kind])
    raise AesError(
        f"learner kind '{kind}' has no default search space: declare one under 'search:' in "
        "its config, e.g. search: {params.alpha: {low: 0.1, high: 100, log: true}}",
        key="search",
    )
