"""QWK numbers for the leaderboard: every base learner and the stack, measured the same way.

Three numbers each: plain rounding, cut points fitted in-sample (optimistic) and cross-fitted
cut points (honest), each with a bootstrap interval, plus per prompt and per ``source`` (the
cross-fitted levels) where the data has them.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from aes_ensemble.metrics import (
    NO_PROMPT,
    bootstrap_interval,
    headline_qwk,
    headline_qwk_by_group,
    qwk_by_prompt,
)
from aes_ensemble.scales import ScoreScales
from aes_ensemble.stacking.inputs import StackData
from aes_ensemble.stacking.nested import NestedResult, fit_cuts


def cross_fitted_levels(
    y: np.ndarray,
    pred: np.ndarray,
    prompts: np.ndarray,
    folds: np.ndarray,
    scales: ScoreScales,
    method: str,
    seed: int,
) -> np.ndarray:
    """Levels of ``pred`` where fold ``k`` is cut by points fitted on the other folds only."""
    out = np.empty(len(y))
    for k in np.unique(folds):
        held = folds == k
        cuts = fit_cuts(y[~held], pred[~held], prompts[~held], scales, method, seed, prompts[held])
        out[held] = cuts.apply(pred[held], prompts[held], scales)
    return out


def qwk_numbers(
    y: np.ndarray,
    levels: dict[str, np.ndarray],
    prompts: np.ndarray,
    scales: ScoreScales,
    *,
    sources: np.ndarray | None = None,
    n_boot: int = 1000,
    seed: int = 0,
) -> dict[str, Any]:
    """Headline QWK and bootstrap interval of each kind of levels; breakdowns of ``cross``."""
    out: dict[str, Any] = {}
    for kind, pred in levels.items():
        out[kind] = headline_qwk(y, pred, prompts, scales)
        out[f"{kind}_ci"] = list(
            bootstrap_interval(y, pred, prompts=prompts, scales=scales, n_boot=n_boot, seed=seed)
        )
    cross = levels["cross"]
    if any(p is not None for p in prompts):
        out["per_prompt"] = qwk_by_prompt(y, cross, prompts, scales)
    if sources is not None and any(s is not None for s in sources):
        keys = np.asarray([NO_PROMPT if s is None else str(s) for s in sources], dtype=object)
        out["per_source"] = headline_qwk_by_group(y, cross, prompts, scales, keys)
    return out


def base_numbers(
    data: StackData,
    *,
    method: str,
    seed: int,
    sources: np.ndarray | None = None,
    n_boot: int = 1000,
) -> list[dict[str, Any]]:
    """One leaderboard entry per base learner."""
    entries = []
    for j, name in enumerate(data.names):
        pred = data.base[:, j]
        cuts = fit_cuts(data.y, pred, data.prompts, data.scales, method, seed, data.prompts)
        levels = {
            "plain": data.scales.round(pred, data.prompts),
            "insample": cuts.apply(pred, data.prompts, data.scales),
            "cross": cross_fitted_levels(
                data.y, pred, data.prompts, data.folds, data.scales, method, seed
            ),
        }
        numbers = qwk_numbers(
            data.y, levels, data.prompts, data.scales, sources=sources, n_boot=n_boot, seed=seed
        )
        entries.append({"name": name, "role": "base", **numbers})
    return entries


def stack_numbers(
    name: str,
    data: StackData,
    result: NestedResult,
    *,
    seed: int,
    sources: np.ndarray | None = None,
    n_boot: int = 1000,
) -> dict[str, Any]:
    levels = {"plain": result.plain, "insample": result.insample, "cross": result.cross}
    numbers = qwk_numbers(
        data.y, levels, data.prompts, data.scales, sources=sources, n_boot=n_boot, seed=seed
    )
    return {"name": name, "role": "stack", **numbers}


def correlation(data: StackData) -> dict[str, Any]:
    """Pearson correlation of the base learners' normalised OOF predictions."""
    preds = data.X[:, : data.n_pred_features]
    matrix = np.corrcoef(preds, rowvar=False) if preds.shape[1] > 1 else np.ones((1, 1))
    return {"names": list(data.names), "matrix": np.round(matrix, 6).tolist()}


def explain(estimator: Any, feature_names: list[str], base_names: list[str]) -> dict[str, Any]:
    """What the final meta-learner chose: weights, hill-climbing picks, tree importances."""
    out: dict[str, Any] = {}
    coef = getattr(estimator, "coef_", None)
    if coef is not None and np.ndim(coef) == 1 and len(coef) == len(feature_names):
        out["weights"] = {f: float(w) for f, w in zip(feature_names, coef, strict=True)}
    intercept = getattr(estimator, "intercept_", None)
    if intercept is not None and np.ndim(intercept) == 0:
        out["intercept"] = float(intercept)
    picks = getattr(estimator, "picks_", None)
    if picks is not None:
        out["hill_picks"] = [base_names[int(i)] for i in picks]
    booster = getattr(estimator, "booster_", None)
    if booster is not None:
        gain = booster.feature_importance(importance_type="gain")
        total = float(gain.sum()) or 1.0
        out["importances"] = {f: float(g) / total for f, g in zip(feature_names, gain, strict=True)}
    elif getattr(estimator, "feature_importances_", None) is not None:
        imp = np.asarray(estimator.feature_importances_, dtype=float)
        if len(imp) == len(feature_names):
            out["importances"] = {f: float(v) for f, v in zip(feature_names, imp, strict=True)}
    return out
