"""One candidate config fitted over folds in memory: nothing goes to ``base_models/`` or
``oof/``; per-essay features come from (and go to) the workspace cache as in ``fit-base``.

The objective is the leaderboard's headline number: the QWK of the OOF predictions cut into
levels by points fitted on the other folds (``thresholds.cross_fit``), with the
stack config's default threshold method and seed. After each fold the running QWK of the folds
done so far (plain rounding, as ``fit-base`` reports a fold) goes to ``after_fold``, where the
study's pruner may stop the trial. A config's ``extra_train`` essays join each fold's training
rows, as in ``fit-base`` (never a validation fold).
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from aes_ensemble.config import validate
from aes_ensemble.data import Essays
from aes_ensemble.extra_train import with_extra
from aes_ensemble.learners.base import LearnerConfig
from aes_ensemble.learners.registry import learner_class
from aes_ensemble.library_errors import library_errors
from aes_ensemble.metrics import headline_qwk
from aes_ensemble.stacking.qwk_numbers import LeaderboardSettings
from aes_ensemble.thresholds import cross_fit


def with_values(data: Mapping[str, Any], values: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of a raw config mapping with each dotted key set to its value (typed values, not
    the ``key=value`` strings of ``config.apply_overrides``, so ``1e-05`` stays a float)."""
    out: dict[str, Any] = copy.deepcopy(dict(data))
    for dotted, value in values.items():
        node = out
        *parents, last = dotted.split(".")
        for part in parents:
            child = node.get(part)
            if not isinstance(child, dict):  # absent or a value (null): a section now
                child = node[part] = {}
            node = child
        node[last] = value
    return out


def candidate(
    model: type[LearnerConfig], raw: Mapping[str, Any], values: Mapping[str, Any], path: Path
) -> LearnerConfig:
    """The config ``raw`` with a trial's ``values``, validated as a config file is."""
    return validate(model, with_values(raw, values), path=path)


def fit_predict(
    config: LearnerConfig, train: Essays, valid: Essays, cache_dir: Path | None, where: str
) -> np.ndarray:
    """Fit a fresh learner on ``train`` and predict ``valid``, in memory."""
    learner = learner_class(config.kind)(config, train.scales, cache_dir)
    with library_errors(where, config):
        learner.fit(train, valid)
        return np.asarray(learner.predict(valid).pred, dtype=np.float64)


def running_qwk(essays: Essays, pred: np.ndarray, done: np.ndarray) -> float:
    """Headline QWK of plain-rounded predictions over the rows of the folds done so far."""
    prompts = essays.prompts[done]
    rounded = essays.scales.round(pred[done], prompts)
    return float(headline_qwk(essays.scores[done], rounded, prompts, essays.scales))


def cross_levels(essays: Essays, pred: np.ndarray, fold_of: np.ndarray) -> np.ndarray:
    """An OOF vector as levels, each fold cut by points fitted on the other folds (the stack
    config's default method and seed, as the leaderboard)."""
    settings = LeaderboardSettings()
    return cross_fit(
        essays.scores,
        pred,
        essays.prompts,
        fold_of,
        essays.scales,
        method=settings.method,
        seed=settings.seed,
    ).pred


def headline(essays: Essays, pred: np.ndarray, fold_of: np.ndarray) -> float:
    """The leaderboard's headline QWK of an OOF vector: cross-fitted cut points."""
    levels = cross_levels(essays, pred, fold_of)
    return float(headline_qwk(essays.scores, levels, essays.prompts, essays.scales))


def oof_in_memory(
    config: LearnerConfig,
    essays: Essays,
    fold_of: np.ndarray,
    cache_dir: Path | None,
    after_fold: Callable[[int, float], None],
    *,
    extra: Essays | None = None,
    progress: bool = False,
) -> np.ndarray:
    """OOF predictions of ``config`` over the folds in ``fold_of`` (ascending fold order);
    ``after_fold(step, running_qwk)`` after each, which may raise to stop early. ``extra``
    essays join every fold's training rows. The per-essay features are prepared first
    (computed once, then read from the cache; ``progress`` shows the first, long computation)."""
    with library_errors("feature preparation", config):
        learner = learner_class(config.kind)(config, essays.scales, cache_dir, progress=progress)
        learner.prepare(essays)
        if extra is not None:
            learner.prepare(extra)
    pred = np.full(len(essays), np.nan)
    done = np.zeros(len(essays), dtype=bool)
    for step, fold in enumerate(np.unique(fold_of)):
        held = fold_of == fold
        train, valid = essays.take(np.flatnonzero(~held)), essays.take(np.flatnonzero(held))
        if extra is not None:
            train = with_extra(train, extra)
        pred[held] = fit_predict(config, train, valid, cache_dir, f"fold {fold}")
        done |= held
        after_fold(step, running_qwk(essays, pred, done))
    return pred
