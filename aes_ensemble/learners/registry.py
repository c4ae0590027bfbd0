"""Learner kinds by name: ``kind: lgbm`` in a config picks the class that fits it.

The modules of the shipped kinds are imported only when their kind is asked for, so torch
loads only for a transformer. A config is read here too: its ``kind`` decides which config
model validates the rest.
"""

from __future__ import annotations

import importlib
from collections.abc import Sequence
from pathlib import Path
from typing import TypeVar

from aes_ensemble.config import apply_overrides, origin, override_sources, read_yaml, validate
from aes_ensemble.errors import AesError, did_you_mean
from aes_ensemble.learners.base import Learner, LearnerConfig

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

L = TypeVar("L", bound=Learner)


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


def load_learner_config(path: Path, overrides: Sequence[str] = ()) -> LearnerConfig:
    """A learner config: ``kind`` picks the model; unknown keys name the closest valid one."""
    data = apply_overrides(read_yaml(path), overrides)
    kind = data.get("kind")
    if not isinstance(kind, str):
        raise AesError(
            "required key is missing (the learner kind, e.g. lgbm)", path=path, key="kind"
        )
    try:
        model = learner_class(kind).config_model
    except AesError as exc:
        where, key = origin("kind", path, override_sources(overrides))
        raise AesError(exc.message, path=where, key=key) from None
    return validate(model, data, path=path, sources=override_sources(overrides))
