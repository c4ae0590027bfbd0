"""QWK numbers for the leaderboard: every base learner and the stack, measured the same way.

Three numbers each: plain rounding, cut points fitted in-sample (optimistic) and cross-fitted
cut points (honest), each with a bootstrap interval, plus per prompt and per ``source`` (the
cross-fitted levels) where the data has them.

This is the one computation behind every QWK the toolkit shows: ``stack`` prints these numbers
and writes them to ``reports/NAME.json``, and the HTML report calls the same functions with the
stack's own settings (:class:`LeaderboardSettings`) and the stack's recorded per-fold cut points.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import polars as pl

from aes_ensemble.metrics import (
    NO_PROMPT,
    bootstrap_interval,
    headline_qwk,
    headline_qwk_by_group,
    qwk_by_prompt,
)
from aes_ensemble.scales import ScoreScales
from aes_ensemble.stacking.config import StackConfig
from aes_ensemble.stacking.inputs import StackData
from aes_ensemble.stacking.nested import NestedResult, apply_per_fold
from aes_ensemble.thresholds import Thresholds, cross_fit, fit_cuts


@dataclass(frozen=True)
class LeaderboardSettings:
    """How a leaderboard number is measured: the threshold method (and its seed) and the
    bootstrap's resamples and seed. The defaults are the stack config's."""

    method: str = StackConfig.model_fields["thresholds"].default
    seed: int = StackConfig.model_fields["seed"].default
    n_boot: int = StackConfig.model_fields["n_boot"].default

    @classmethod
    def of(cls, config: Mapping[str, Any]) -> LeaderboardSettings:
        """The settings of a stack config as stored in a prediction file (``meta.config``)."""
        default = cls()
        return cls(
            method=str(config.get("thresholds", default.method)),
            seed=int(config.get("seed", default.seed)),
            n_boot=int(config.get("n_boot", default.n_boot)),
        )


def learner_levels(
    y: np.ndarray,
    pred: np.ndarray,
    prompts: np.ndarray,
    folds: np.ndarray,
    scales: ScoreScales,
    settings: LeaderboardSettings,
) -> dict[str, np.ndarray]:
    """A base learner's continuous OOF as levels: plain, in-sample cuts, cross-fitted cuts."""
    cuts = fit_cuts(y, pred, prompts, scales, settings.method, settings.seed, prompts)
    return {
        "plain": scales.round(pred, prompts),
        "insample": cuts.apply(pred, prompts, scales),
        "cross": cross_fit(
            y, pred, prompts, folds, scales, method=settings.method, seed=settings.seed
        ).pred,
    }


def stack_levels(
    pred: np.ndarray,
    prompts: np.ndarray,
    folds: np.ndarray,
    scales: ScoreScales,
    per_fold: Mapping[int, Thresholds],
    final: Thresholds,
) -> dict[str, np.ndarray]:
    """A stack's OOF as levels, from the cut points its run chose: the cross-fitted ones come
    from nested CV (fitted without the fold's labels) and cannot be refitted from the OOF."""
    return {
        "plain": scales.round(pred, prompts),
        "insample": final.apply(pred, prompts, scales),
        "cross": apply_per_fold(pred, prompts, folds, scales, per_fold),
    }


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
    settings = LeaderboardSettings(method, seed, n_boot)
    for j, name in enumerate(data.names):
        levels = learner_levels(
            data.y, data.base[:, j], data.prompts, data.folds, data.scales, settings
        )
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


LEADERBOARD_COLUMNS = ("plain", "insample", "cross")


def leaderboard_frame(entries: Sequence[Mapping[str, Any]]) -> pl.DataFrame:
    """Leaderboard entries (``summary["leaderboard"]``) as one row each: name, role, the three
    QWKs and the cross-fitted interval, best cross-fitted QWK first."""
    rows = [
        {
            "name": e["name"],
            "role": e["role"],
            **{f"qwk_{kind}": float(e[kind]) for kind in LEADERBOARD_COLUMNS},
            "cross_low": float(e["cross_ci"][0]),
            "cross_high": float(e["cross_ci"][1]),
        }
        for e in entries
    ]
    return pl.DataFrame(rows).sort("qwk_cross", descending=True)
