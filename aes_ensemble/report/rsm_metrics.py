"""Human-machine agreement statistics, defined as RSMTool 12.0.0 defines them.

A team holds this report against ETS's RSMTool (``rsmeval``), so every statistic here mirrors one
RSMTool function (named in each docstring) and carries RSMTool's column name, lowercased. The
deliberate differences are few, listed in ``DIFFERENCES`` and in docs/validity.md. Pure functions
on numpy arrays: the report (``validity_doc``) decides which essays and which scores go in.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np

from aes_ensemble.errors import AesError
from aes_ensemble.metrics import check_levels, finite_pair, qwk
from aes_ensemble.scales import ScoreScale

ArrayLike = Sequence[float] | np.ndarray
"""Scores as a list or a numpy array."""

SMD_METHODS = ("unpooled", "pooled")
"""RSMTool's SMD denominators that need no population statistics (its ``smd_method``)."""

DIFFERENCES = {
    "wtkappa": "on levels (continuous=False) our metrics.qwk is used; it equals RSMTool's "
    "quadratic_weighted_kappa on the same levels except where both raters give one single "
    "level: RSMTool returns NaN (0/0), metrics.qwk returns 0.0",
    "adj_agr_level": "not in RSMTool: within one step of the scale (0.5 on ELLIPSE); adj_agr is "
    "RSMTool's, within 1 score point (two levels on a half-point scale)",
    "disattenuated_correlation": "NaN where the human-human r is 0 (RSMTool divides: +-inf)",
    "confusion_matrix": "rows and columns are every level of the scale, RSMTool's only the "
    "labels that occur",
    "missing_labels": "fairness: an essay without a subgroup label forms no group (it still counts "
    "in the whole-set z-scores); RSMTool's preprocessor makes it the group 'No info'",
}
"""Where a statistic deliberately departs from RSMTool 12.0.0, and how."""


@dataclass(frozen=True)
class Agreement:
    """One comparison on ``n`` essays: human (``h_``) vs machine (``sys_``), or human 1 (``h_``)
    vs human 2 (``sys_``; RSMTool's consistency table calls them ``h1_``/``h2_``).

    Mirrors the row ``Analyzer.metrics_helper`` returns (rsmtool/analyzer.py), plus ``mse``,
    ``smd_pooled`` and ``adj_agr_level``. Means are plain means, SDs have ddof=1 as RSMTool's.
    ``smd_method`` says which SMD ``smd`` is: "unpooled" in RSMTool's evaluation tables,
    "pooled" in its human-human consistency table.
    """

    n: int
    h_mean: float
    h_sd: float
    h_min: float
    h_max: float
    sys_mean: float
    sys_sd: float
    sys_min: float
    sys_max: float
    corr: float
    wtkappa: float
    kappa: float
    exact_agr: float
    adj_agr: float
    adj_agr_level: float
    smd: float
    smd_method: str
    smd_pooled: float
    mse: float
    rmse: float
    r2: float

    def as_dict(self) -> dict[str, float | int]:
        """The numbers by RSMTool's lowercased column names (``smd_method``, a label, left out)."""
        return {k: v for k, v in asdict(self).items() if k != "smd_method"}


@dataclass(frozen=True)
class LevelShare:
    """Share of essays at one level, in percent, and machine minus human in percentage points."""

    level: float
    human_pct: float
    machine_pct: float
    difference: float


def agreement(
    human: ArrayLike,
    machine: ArrayLike,
    *,
    scale: ScoreScale | None = None,
    continuous: bool = False,
    smd_method: str = "unpooled",
) -> Agreement:
    """Every RSMTool association statistic of ``machine`` against ``human`` on the same essays.

    ``continuous=True``: ``machine`` is a raw prediction (RSMTool's "raw"/"scale" rows) and
    ``wtkappa`` is RSMTool's ``quadratic_weighted_kappa`` (Haberman 2019). ``False``: ``machine``
    holds levels (thresholded) and ``wtkappa`` is ``metrics.qwk(human, machine, scale=scale)``,
    the same number on levels (see ``DIFFERENCES``). ``scale`` also sets ``adj_agr_level``'s step;
    a human score (or, on levels, a machine score) off the scale is an ``AesError``.
    """
    h, m = finite_pair(human, machine, ("human", "machine"))
    if len(h) == 0:
        raise AesError("human and machine hold no scores to compare")
    if smd_method not in SMD_METHODS:
        raise AesError(f"smd_method '{smd_method}' must be one of {', '.join(SMD_METHODS)}")
    if scale is not None:
        check_levels(h, scale, "human")
        if not continuous:
            check_levels(m, scale, "machine")
    step = 1.0 if scale is None else scale.step
    mse = float(np.mean((h - m) ** 2))
    return Agreement(
        n=len(h),
        h_mean=float(np.mean(h)),
        h_sd=_sd(h),
        h_min=float(h.min()),
        h_max=float(h.max()),
        sys_mean=float(np.mean(m)),
        sys_sd=_sd(m),
        sys_min=float(m.min()),
        sys_max=float(m.max()),
        corr=pearson(h, m),
        wtkappa=continuous_qwk(h, m) if continuous else qwk(h, m, scale=scale),
        kappa=cohen_kappa(h, m),
        exact_agr=exact_agreement(h, m, tolerance=0.0),
        adj_agr=exact_agreement(h, m, tolerance=1.0),
        adj_agr_level=exact_agreement(h, m, tolerance=step),
        smd=standardized_mean_difference(h, m, method=smd_method),
        smd_method=smd_method,
        smd_pooled=standardized_mean_difference(h, m, method="pooled"),
        mse=mse,
        rmse=math.sqrt(mse),
        r2=r2_score(h, m),
    )


def _sd(x: np.ndarray) -> float:
    return float(np.std(x, ddof=1)) if len(x) > 1 else math.nan


def pearson(h: np.ndarray, m: np.ndarray) -> float:
    """Pearson r; NaN for one essay or a constant side, as ``Analyzer.metrics_helper`` does."""
    if len(h) < 2 or np.all(h == h[0]) or np.all(m == m[0]):
        return math.nan
    return float(np.corrcoef(h, m)[0, 1])


def continuous_qwk(h: np.ndarray, m: np.ndarray) -> float:
    """``2 cov(H, M) / (var H + var M + (mean M - mean H)^2)``, population moments (ddof=0).

    Mirrors ``rsmtool.utils.metrics.quadratic_weighted_kappa`` (Haberman 2019): QWK for
    continuous scores, equal to Cohen's QWK when both sides are levels. NaN where the
    denominator is zero (both constant and equal).
    """
    cov = float(np.mean((h - h.mean()) * (m - m.mean())))
    denominator = float(np.var(h) + np.var(m) + (h.mean() - m.mean()) ** 2)
    return 2 * cov / denominator if denominator > 0 else math.nan


def cohen_kappa(h: np.ndarray, m: np.ndarray) -> float:
    """Unweighted Cohen's kappa after SKLL's rule: each value rounded to an integer with
    ``np.round`` (half to even), levels spanning the lowest to the highest integer seen.

    Mirrors ``skll.metrics.kappa`` (weights=None), which RSMTool's ``metrics_helper`` calls. On a
    half-point scale this merges neighbouring levels, as RSMTool does; 1.0 when every value
    rounds to one integer (SKLL's "all weights zero" case).
    """
    hi = np.round(h).astype(np.int64)
    mi = np.round(m).astype(np.int64)
    low = min(hi.min(), mi.min())
    k = int(max(hi.max(), mi.max()) - low) + 1
    if k == 1:
        return 1.0
    conf = np.bincount((hi - low) * k + (mi - low), minlength=k * k).reshape(k, k) / len(hi)
    observed = 1.0 - float(np.trace(conf))
    expected = 1.0 - float(conf.sum(axis=1) @ conf.sum(axis=0))
    return 1.0 - observed / expected


def exact_agreement(h: np.ndarray, m: np.ndarray, *, tolerance: float) -> float:
    """Percent (0..100) of essays with ``|h - m| <= tolerance``.

    Mirrors ``rsmtool.utils.metrics.agreement``: no rounding, so on raw continuous predictions
    exact agreement is near 0 in RSMTool as here.
    """
    return float(np.mean(np.abs(h - m) <= tolerance) * 100)


def standardized_mean_difference(h: np.ndarray, m: np.ndarray, *, method: str) -> float:
    """``(mean M - mean H) / D``: D is the human SD ("unpooled", RSMTool's default in its
    evaluation tables) or ``sqrt((var H + var M) / 2)`` ("pooled": Williamson et al. 2012; RSMTool's
    human-human table), ddof=1.

    Mirrors ``rsmtool.utils.metrics.standardized_mean_difference``; NaN where D is 0 (and, unlike
    RSMTool's NumPy warning, for a single essay).
    """
    if len(h) < 2:
        return math.nan
    if method == "unpooled":
        d = float(np.std(h, ddof=1))
    else:
        d = math.sqrt((float(np.var(h, ddof=1)) + float(np.var(m, ddof=1))) / 2)
    return (float(m.mean()) - float(h.mean())) / d if d != 0 else math.nan


def r2_score(h: np.ndarray, m: np.ndarray) -> float:
    """``1 - SS_res / SS_tot`` of the machine score as a prediction of the human score.

    Mirrors ``sklearn.metrics.r2_score`` as RSMTool calls it (NaN for one essay; constant human
    scores: 1.0 if predicted exactly, else 0.0, scikit-learn's ``force_finite``).
    """
    if len(h) < 2:
        return math.nan
    ss_res = float(np.sum((h - m) ** 2))
    ss_tot = float(np.sum((h - h.mean()) ** 2))
    if ss_tot == 0:
        return 1.0 if ss_res == 0 else 0.0
    return 1.0 - ss_res / ss_tot


def _level_indices(x: np.ndarray, levels: np.ndarray, name: str) -> np.ndarray:
    """Index into ``levels`` of each value; a value that is not a level is an error."""
    close = np.abs(x[:, None] - levels[None, :]) < 1e-6
    off = ~close.any(axis=1)
    if off.any():
        i = int(np.argmax(off))
        raise AesError(
            f"{name} value {x[i]:g} is not one of the levels {', '.join(f'{v:g}' for v in levels)}"
            " (round or threshold first)",
            row=i + 1,
        )
    return np.argmax(close, axis=1)


def _levels(levels: Sequence[float]) -> np.ndarray:
    lv = np.asarray(levels, dtype=float).ravel()
    if len(lv) == 0 or not np.all(np.isfinite(lv)):
        raise AesError("levels must be a non-empty list of finite scores")
    return lv


def score_distribution(
    human: ArrayLike, machine: ArrayLike, levels: Sequence[float]
) -> list[LevelShare]:
    """Percent of essays at each level, human and machine, and machine minus human in points.

    Mirrors the ``score_dist`` table of ``Analyzer.run_prediction_analyses`` (value counts / N *
    100, ``difference`` = system - human); levels nobody used are listed with 0%, as RSMTool's
    ``fillna(0)`` does for a level only one side used.
    """
    lv = _levels(levels)
    h, m = finite_pair(human, machine, ("human", "machine"))
    n = max(len(h), 1)
    hc = np.bincount(_level_indices(h, lv, "human"), minlength=len(lv)) / n * 100
    mc = np.bincount(_level_indices(m, lv, "machine"), minlength=len(lv)) / n * 100
    return [
        LevelShare(float(v), float(a), float(b), float(b - a))
        for v, a, b in zip(lv, hc, mc, strict=True)
    ]


def confusion_matrix(human: ArrayLike, machine: ArrayLike, levels: Sequence[float]) -> np.ndarray:
    """Counts: row = human level, column = machine level, over every level in ``levels``.

    Mirrors RSMTool's ``confMatrix`` (``sklearn.metrics.confusion_matrix``), whose rows and
    columns are only the labels that occur (see ``DIFFERENCES``).
    """
    lv = _levels(levels)
    h, m = finite_pair(human, machine, ("human", "machine"))
    k = len(lv)
    codes = _level_indices(h, lv, "human") * k + _level_indices(m, lv, "machine")
    return np.bincount(codes, minlength=k * k).reshape(k, k)
