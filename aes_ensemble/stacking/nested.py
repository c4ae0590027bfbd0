"""Nested grouped cross-validation of a meta-learner, with cross-fitted QWK thresholds.

For each outer fold ``k`` (the base learners' own folds) the meta-learner is fitted on the other
folds' OOF rows and predicts fold ``k``: the stack's OOF. The cut points for fold ``k`` are fitted
on an *inner* OOF of the stack over the other folds (meta-learners fitted without fold ``k`` and
without the inner fold), so no label of fold ``k`` reaches its own thresholded prediction.
Reusing the outer OOF of the other folds instead would leak: those predictions come from
meta-learners that were fitted on fold ``k``.

With ``unseen_prompts="standardise"`` every fit carries a
:class:`~aes_ensemble.stacking.calibration.PromptCalibration` fitted on its own training rows,
so the rows it predicts of prompts those rows lack (a prompt-grouped fold, an inner fold) are
standardised over their batch, exactly as a saved stack scores a new prompt; the cut points
are then fitted on what they will be applied to.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from sklearn.base import clone

from aes_ensemble.errors import AesError
from aes_ensemble.scales import ScoreScales
from aes_ensemble.stacking.calibration import DEFAULT_MIN_BATCH, UNSEEN_PROMPTS, PromptCalibration
from aes_ensemble.stacking.inputs import StackData
from aes_ensemble.thresholds import Thresholds, fit_cuts


def apply_per_fold(
    pred: np.ndarray,
    prompts: np.ndarray,
    folds: np.ndarray,
    scales: ScoreScales,
    per_fold: Mapping[int, Thresholds],
) -> np.ndarray:
    """Levels of ``pred`` with the rows of fold ``k`` cut by ``per_fold[k]``: the stack's
    cross-fitted levels, from its run or from the cut points its prediction file records."""
    out = np.empty(len(pred))
    for k in np.unique(folds):
        held = folds == k
        if int(k) not in per_fold:
            raise AesError(f"no cut points are recorded for fold {k}", key="fold_thresholds")
        out[held] = per_fold[int(k)].apply(pred[held], prompts[held], scales)
    return out


def fold_thresholds_to_dict(per_fold: Mapping[int, Thresholds]) -> dict[str, Any]:
    """JSON-ready per-fold cut points (fold number as text), for a prediction file's metadata."""
    return {str(k): t.to_dict() for k, t in sorted(per_fold.items())}


def fold_thresholds_from_dict(data: Mapping[str, Any]) -> dict[int, Thresholds]:
    try:
        return {int(k): Thresholds.from_dict(v) for k, v in data.items()}
    except (TypeError, ValueError) as exc:
        raise AesError(
            f"stored fold cut points are malformed ({exc})", key="fold_thresholds"
        ) from None


def level_features(
    base: np.ndarray, prompts: np.ndarray, scales: ScoreScales, level_cuts: Sequence[Thresholds]
) -> np.ndarray:
    """Each base learner's ``pred`` cut into levels by its own cut points, normalised: what a
    majority vote sees, in a run and in a saved stack alike."""
    levels = [
        scales.normalise(cuts.apply(base[:, j], prompts, scales), prompts)
        for j, cuts in enumerate(level_cuts)
    ]
    return np.column_stack(levels)


@dataclass
class _Fitted:
    estimator: Any
    level_cuts: list[Thresholds] = field(default_factory=list)
    calibration: PromptCalibration | None = None


class MetaFitter:
    """Fits a fresh clone of ``estimator`` on chosen rows of ``data`` and predicts on the score
    scale. With ``level_inputs`` (majority vote) each base learner is first cut into levels by
    thresholds fitted on the same training rows. With ``min_batch`` (``unseen_prompts:
    standardise``) each fit also calibrates prompts its training rows lack."""

    def __init__(
        self,
        data: StackData,
        estimator: Any,
        *,
        method: str,
        seed: int,
        level_inputs: bool,
        min_batch: int | None = None,
    ) -> None:
        self.data = data
        self.estimator = estimator
        self.method = method
        self.seed = seed
        self.level_inputs = level_inputs
        self.min_batch = min_batch
        self.y_norm = data.normalised_y()

    def fit(self, rows: np.ndarray) -> _Fitted:
        d = self.data
        fitted = _Fitted(clone(self.estimator))
        if self.level_inputs:
            fitted.level_cuts = [
                fit_cuts(
                    d.y[rows],
                    d.base[rows, j],
                    d.prompts[rows],
                    d.scales,
                    self.method,
                    self.seed,
                    d.prompts,
                )
                for j in range(len(d.names))
            ]
        fitted.estimator.fit(
            self._features(fitted, d.X[rows], d.base[rows], d.prompts[rows]), self.y_norm[rows]
        )
        if self.min_batch is not None:
            fitted.calibration = PromptCalibration.fit(
                self.y_norm[rows], d.prompts[rows], self.min_batch
            )
        return fitted

    def _features(
        self, fitted: _Fitted, X: np.ndarray, base: np.ndarray, prompts: np.ndarray
    ) -> np.ndarray:
        if not self.level_inputs:
            return X
        return level_features(base, prompts, self.data.scales, fitted.level_cuts)

    def predict(
        self, fitted: _Fitted, X: np.ndarray, base: np.ndarray, prompts: np.ndarray
    ) -> np.ndarray:
        """Score-scale predictions (continuous) for the given rows, one batch: an unseen
        prompt is standardised over its rows among them."""
        norm = fitted.estimator.predict(self._features(fitted, X, base, prompts))
        norm = np.asarray(norm, dtype=float)
        if fitted.calibration is not None:
            norm = fitted.calibration.transform(norm, prompts)
        return self.data.scales.denormalise(norm, prompts)

    def predict_rows(self, fitted: _Fitted, rows: np.ndarray) -> np.ndarray:
        d = self.data
        return self.predict(fitted, d.X[rows], d.base[rows], d.prompts[rows])


@dataclass(frozen=True)
class NestedResult:
    """The stack's honest OOF and the final fit.

    ``oof``: continuous OOF on the score scale; ``plain``/``insample``/``cross``: levels by plain
    rounding, by cut points fitted on all of ``oof`` and by cross-fitted cut points (fold ``k``
    cut by ``per_fold[k]``); ``thresholds``: the in-sample (final) cut points, applied to
    ``test``; ``final``: the meta-learner fitted on every OOF row and ``level_cuts`` the cut
    points its inputs were cut by (majority vote: one per base learner; else empty);
    ``calibration``: the final fit's prompt calibration (``unseen_prompts: standardise``).
    """

    oof: np.ndarray
    plain: np.ndarray
    insample: np.ndarray
    cross: np.ndarray
    thresholds: Thresholds
    per_fold: dict[int, Thresholds]
    final: Any
    test: np.ndarray | None
    test_levels: np.ndarray | None
    seconds: float
    level_cuts: tuple[Thresholds, ...] = ()
    calibration: PromptCalibration | None = None

    def fold_thresholds(self) -> dict[str, Any]:
        """``per_fold`` as JSON, so the report re-applies the very cuts behind ``cross``."""
        return fold_thresholds_to_dict(self.per_fold)


def nested_stack(
    data: StackData,
    estimator: Any,
    *,
    method: str = "nelder-mead",
    seed: int = 0,
    level_inputs: bool = False,
    unseen_prompts: str = "keep",
    min_prompt_batch: int = DEFAULT_MIN_BATCH,
    progress: Callable[[str], None] | None = None,
) -> NestedResult:
    """Nested grouped CV of ``estimator`` over ``data``, then the final fit on all rows.

    ``level_inputs`` (majority vote): the base learners are thresholded inside each fit, and the
    stack's output is already a level, so no second set of cut points is fitted on it.
    ``unseen_prompts="standardise"``: prompts a fit's training rows lack are standardised
    (:mod:`~aes_ensemble.stacking.calibration`), needing ``min_prompt_batch`` rows each.
    """
    if unseen_prompts not in UNSEEN_PROMPTS:
        raise AesError(
            f"unknown unseen_prompts '{unseen_prompts}' (valid: {', '.join(UNSEEN_PROMPTS)})",
            key="unseen_prompts",
        )
    start = time.perf_counter()
    fitter = MetaFitter(
        data,
        estimator,
        method=method,
        seed=seed,
        level_inputs=level_inputs,
        min_batch=min_prompt_batch if unseen_prompts == "standardise" else None,
    )
    stack_method = "none" if level_inputs else method
    folds = data.folds
    n = len(data.y)
    oof = np.empty(n)
    per_fold: dict[int, Thresholds] = {}
    for k in np.unique(folds):
        held = folds == k
        train = ~held
        oof[held] = fitter.predict_rows(fitter.fit(train), held)
        inner = np.full(n, np.nan)
        if stack_method != "none":
            for j in np.unique(folds[train]):
                inner_held = folds == j
                inner[inner_held] = fitter.predict_rows(fitter.fit(train & ~inner_held), inner_held)
        cuts = fit_cuts(
            data.y[train],
            inner[train],
            data.prompts[train],
            data.scales,
            stack_method,
            seed,
            data.prompts[held],
        )
        per_fold[int(k)] = cuts
        if progress is not None:
            progress(f"fold {k} done")
    thresholds = fit_cuts(
        data.y, oof, data.prompts, data.scales, stack_method, seed, _test_prompts(data)
    )
    final = fitter.fit(np.ones(n, dtype=bool))
    test = test_levels = None
    if data.X_test is not None and data.base_test is not None and data.test_prompts is not None:
        test = fitter.predict(final, data.X_test, data.base_test, data.test_prompts)
        test_levels = thresholds.apply(test, data.test_prompts, data.scales)
    return NestedResult(
        oof=oof,
        plain=data.scales.round(oof, data.prompts),
        insample=thresholds.apply(oof, data.prompts, data.scales),
        cross=apply_per_fold(oof, data.prompts, folds, data.scales, per_fold),
        thresholds=thresholds,
        per_fold=per_fold,
        final=final.estimator,
        test=test,
        test_levels=test_levels,
        seconds=time.perf_counter() - start,
        level_cuts=tuple(final.level_cuts),
        calibration=final.calibration,
    )


def _test_prompts(data: StackData) -> np.ndarray:
    return data.test_prompts if data.test_prompts is not None else np.empty(0, dtype=object)
