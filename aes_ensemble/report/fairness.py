"""Does the machine treat groups of writers alike? Subgroup rows and RSMTool's fairness models.

Two views, both from RSMTool 12.0.0. Per group, the difference of standardized means (DSM: the
machine's z-score minus the human's, both z-scored on the whole set), as its
``Analyzer.compute_metrics_by_group``. And the three regressions of Loukina, Madnani & Zechner
(2019, "The many dimensions of algorithmic fairness in educational applications"), as its
``fairness_utils.get_fairness_analyses``: how much of the variance in squared error (overall
score accuracy, OSA), in signed error (overall score difference, OSD), and in signed error beyond
the human score (conditional score difference, CSD) group membership explains.
"""

from __future__ import annotations

import math
import warnings
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TypeVar

import numpy as np
import pandas as pd
import statsmodels.formula.api as smf
from statsmodels.regression.linear_model import RegressionResultsWrapper
from statsmodels.stats.anova import anova_lm

from aes_ensemble.errors import AesError
from aes_ensemble.metrics import finite_pair
from aes_ensemble.report.flags import flagged
from aes_ensemble.report.rsm_metrics import Agreement, ArrayLike, agreement
from aes_ensemble.scales import ScoreScale

Labels = Sequence[str | None] | np.ndarray
"""One group label per essay; None (or NaN) where the essay's group is unknown."""

T = TypeVar("T", str, float)

ANALYSES = {
    "osa": "Overall score accuracy",
    "osd": "Overall score difference",
    "csd": "Conditional score difference",
}
"""RSMTool's names of the three fairness models."""


def _labels(labels: Labels, n: int) -> list[str | None]:
    """Labels as text, None for a missing one; the length must match the scores."""
    out = [
        None if v is None or (isinstance(v, float) and math.isnan(v)) else str(v) for v in labels
    ]
    if len(out) != n:
        raise AesError(f"labels has {len(out)} values but the scores have {n}")
    return out


@dataclass(frozen=True)
class GroupRow:
    """One group of one subgroup column. ``judged``: big enough (``n >= min_n``) and DSM
    defined; ``flagged``: judged and |DSM| above the ``dsm_high`` rule's 0.10."""

    column: str
    group: str
    n: int
    h_mean: float
    sys_mean: float
    corr: float
    wtkappa: float
    dsm: float
    judged: bool
    flagged: bool
    agreement: Agreement


def difference_of_standardized_means(
    h: np.ndarray, m: np.ndarray, population_h: np.ndarray, population_m: np.ndarray
) -> float:
    """``mean(z_M - z_H)`` over a group, z-scores from the whole set's mean and SD (ddof=1).

    Mirrors ``rsmtool.utils.metrics.difference_of_standardized_means`` with population means and
    SDs, as ``compute_metrics_by_group`` passes them; NaN where a population SD is ~0 (RSMTool:
    None, atol 1e-7).
    """
    sd_h = float(np.std(population_h, ddof=1)) if len(population_h) > 1 else 0.0
    sd_m = float(np.std(population_m, ddof=1)) if len(population_m) > 1 else 0.0
    if math.isclose(sd_h, 0, abs_tol=1e-7) or math.isclose(sd_m, 0, abs_tol=1e-7):
        return math.nan
    z_h = (h - population_h.mean()) / sd_h
    z_m = (m - population_m.mean()) / sd_m
    return float(np.mean(z_m - z_h))


def group_rows(
    human: ArrayLike,
    machine: ArrayLike,
    labels: Labels,
    column: str,
    *,
    min_n: int,
    scale: ScoreScale | None = None,
    continuous: bool = False,
) -> list[GroupRow]:
    """One row per group of ``labels`` (sorted by name), DSM z-scored on all essays.

    Mirrors ``Analyzer.compute_metrics_by_group``: the population mean and SD are those of every
    essay passed in, essays with a missing label included; a missing label forms no group here
    (RSMTool's preprocessor calls it "No info": pass that text to get its row). ``scale`` and
    ``continuous`` as in ``agreement``.
    """
    h, m = finite_pair(human, machine, ("human", "machine"))
    names = _labels(labels, len(h))
    rows = []
    for group in sorted({g for g in names if g is not None}):
        mask = np.array([g == group for g in names])
        stats = agreement(h[mask], m[mask], scale=scale, continuous=continuous)
        dsm = difference_of_standardized_means(h[mask], m[mask], h, m)
        judged = stats.n >= min_n and math.isfinite(dsm)
        rows.append(
            GroupRow(
                column=column,
                group=group,
                n=stats.n,
                h_mean=stats.h_mean,
                sys_mean=stats.sys_mean,
                corr=stats.corr,
                wtkappa=stats.wtkappa,
                dsm=dsm,
                judged=judged,
                flagged=judged and flagged("dsm_high", dsm),
                agreement=stats,
            )
        )
    return rows


@dataclass(frozen=True)
class GroupEstimate:
    """One coefficient of a fairness model: the intercept (``group`` is
    ``"Intercept (BASE)"``, as RSMTool names it) or a group's difference from the base group,
    with its 95% interval and p-value."""

    group: str
    estimate: float
    ci_low: float
    ci_high: float
    p_value: float


@dataclass(frozen=True)
class FairnessModel:
    """One of RSMTool's fairness analyses ("osa", "osd", "csd").

    ``r2`` is the adjusted R2 of the model, for "csd" the adjusted R2 gained by adding group to
    the human score (RSMTool's ``fairness_metrics_by_GROUP`` "R2"); ``p_value`` its "sig": the
    model's F test, for "csd" the ANOVA comparing the two models. RSMTool gives no interval for
    R2: ``r2_ci_low``/``r2_ci_high`` are None here (the report may bootstrap them).
    """

    analysis: str
    r2: float
    r2_ci_low: float | None
    r2_ci_high: float | None
    p_value: float
    base_group: str
    n: int
    estimates: list[GroupEstimate]


def ordered_by_size(values: Sequence[T]) -> list[T]:
    """Distinct values, most frequent first, ties alphabetical.

    Mirrors ``fairness_utils.convert_to_ordered_category``: the first is the reference group.
    """
    counts = Counter(values)
    return sorted(counts, key=lambda v: (-counts[v], v))


def _estimates(fit: RegressionResultsWrapper, groups: list[str]) -> list[GroupEstimate]:
    """Intercept and group coefficients of ``fit``, as ``fairness_utils.get_coefficients``."""
    ci = fit.conf_int()
    terms = [("Intercept", f"Intercept ({groups[0]})")]
    terms += [(f"group[T.{g}]", g) for g in groups[1:]]
    return [
        GroupEstimate(
            group=name,
            estimate=float(fit.params[term]),
            ci_low=float(ci.loc[term, 0]),
            ci_high=float(ci.loc[term, 1]),
            p_value=float(fit.pvalues[term]),
        )
        for term, name in terms
    ]


def fairness_analyses(human: ArrayLike, machine: ArrayLike, labels: Labels) -> list[FairnessModel]:
    """OSA, OSD and CSD models (statsmodels OLS) of the essays whose label is known.

    Mirrors ``fairness_utils.get_fairness_analyses`` with the largest group as base: OSA
    ``(M - H)^2 ~ group``, OSD ``M - H ~ group``, CSD ``M - H ~ group + human`` against
    ``M - H ~ human`` with the human score as a category. Fewer than two groups is an
    ``AesError``: there is nothing to compare.
    """
    h, m = finite_pair(human, machine, ("human", "machine"))
    names = _labels(labels, len(h))
    known = np.array([g is not None for g in names], dtype=bool)
    group_values = [g for g in names if g is not None]
    groups = ordered_by_size(group_values)
    if len(groups) < 2:
        raise AesError(
            f"labels hold {len(groups)} group(s) among the essays with a label; "
            "fairness models need at least two"
        )
    human_values = [float(v) for v in h[known]]
    error = m[known] - h[known]
    frame = pd.DataFrame(
        {
            "error": error,
            "SE": error**2,
            "group": pd.Categorical(group_values, categories=groups, ordered=True),
            "sc1_cat": pd.Categorical(
                human_values, categories=ordered_by_size(human_values), ordered=True
            ),
        }
    )
    n = int(known.sum())

    def model(analysis: str, fit: RegressionResultsWrapper, r2: float, p: float) -> FairnessModel:
        return FairnessModel(
            analysis=analysis,
            r2=float(r2),
            r2_ci_low=None,
            r2_ci_high=None,
            p_value=float(p),
            base_group=groups[0],
            n=n,
            estimates=_estimates(fit, groups),
        )

    with warnings.catch_warnings():
        # statsmodels warns on perfect fits (RSMTool ignores it too), also when the lazily
        # computed R2 and p-values are read, so those are read inside this block.
        warnings.simplefilter("ignore")
        osa = smf.ols("SE ~ group", data=frame).fit()
        osd = smf.ols("error ~ group", data=frame).fit()
        csd_null = smf.ols("error ~ sc1_cat", data=frame).fit()
        csd = smf.ols("error ~ group + sc1_cat", data=frame).fit()
        csd_p = float(anova_lm(csd_null, csd).values[1][-1])
        return [
            model("osa", osa, osa.rsquared_adj, osa.f_pvalue),
            model("osd", osd, osd.rsquared_adj, osd.f_pvalue),
            model("csd", csd, csd.rsquared_adj - csd_null.rsquared_adj, csd_p),
        ]
