"""Agreement between two human raters, and how close machine scores come to the true score.

Where essays carry a second human rating, RSMTool reports human-human consistency, the
degradation from human-human to machine-human agreement, the disattenuated correlation and
PRMSE (Loukina et al. 2020, "Using PRMSE to evaluate automated scoring systems in the presence
of label noise"). Each function names the RSMTool 12.0.0 function it mirrors. Partial double
scoring is allowed: ``human2`` is NaN where an essay was scored once.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from aes_ensemble.errors import AesError
from aes_ensemble.metrics import finite_array, finite_pair
from aes_ensemble.report.rsm_metrics import Agreement, ArrayLike, agreement
from aes_ensemble.scales import ScoreScale

DEGRADATION_STATS = ("corr", "kappa", "wtkappa", "exact_agr", "adj_agr", "smd")
"""The statistics in RSMTool's degradation table (``degradation_metrics``, lowercased)."""


def _ratings(human1: ArrayLike, human2: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    """Rater 1 finite everywhere (it is the score), rater 2 finite or NaN, one length."""
    h1 = finite_array(human1, "human1")
    try:
        h2 = np.asarray(human2, dtype=float).ravel()
    except (TypeError, ValueError):
        raise AesError("human2 must be numeric scores (NaN where single-scored)") from None
    if len(h1) != len(h2):
        raise AesError(f"human1 has {len(h1)} values but human2 has {len(h2)}")
    if np.isinf(h2).any():
        raise AesError("human2 has an infinite value", row=int(np.argmax(np.isinf(h2))) + 1)
    return h1, h2


def double_scored(human1: ArrayLike, human2: ArrayLike) -> np.ndarray:
    """Boolean mask of the essays with both ratings (``human2`` not NaN)."""
    _, h2 = _ratings(human1, human2)
    return np.isfinite(h2)


@dataclass(frozen=True)
class Consistency:
    """Human 1 vs human 2 on the ``n`` double-scored essays: ``agreement.h_*`` is rater 1,
    ``agreement.sys_*`` rater 2 (RSMTool's ``h1_*``/``h2_*``), its SMD the pooled one."""

    n: int
    agreement: Agreement


@dataclass(frozen=True)
class TrueScore:
    """RSMTool's ``true_score_eval`` row: ``n`` essays, ``n_double`` with two ratings,
    ``variance_errors_human`` (rater error variance), ``variance_true`` (true-score variance),
    ``mse_true`` (machine vs true score) and ``prmse = 1 - mse_true / variance_true``."""

    n: int
    n_double: int
    n_single: int
    variance_true: float
    variance_errors_human: float
    mse_true: float
    prmse: float


def consistency(
    human1: ArrayLike, human2: ArrayLike, *, scale: ScoreScale | None = None
) -> Consistency | None:
    """Human-human agreement on the double-scored essays; None where there are none.

    Mirrors ``Analyzer.compute_metrics(include_second_score=True)``'s human-human frame: the same
    ``metrics_helper`` statistics on the rows where ``sc2`` is present, SMD with the "pooled"
    method. Both ratings are levels, so ``wtkappa`` is QWK on ``scale``.
    """
    h1, h2 = _ratings(human1, human2)
    both = np.isfinite(h2)
    if not both.any():
        return None
    stats = agreement(h1[both], h2[both], scale=scale, smd_method="pooled")
    return Consistency(n=stats.n, agreement=stats)


def degradation(machine_human: Agreement, human_human: Agreement) -> dict[str, float]:
    """Each statistic of ``DEGRADATION_STATS``, machine-human minus human-human.

    Mirrors ``Analyzer.compute_degradation_and_disattenuated_correlations``; as there, the
    machine-human SMD is whichever the caller computed (RSMTool: unpooled on all essays) and the
    human-human one pooled on the double-scored essays.
    """
    mh, hh = machine_human.as_dict(), human_human.as_dict()
    return {k: float(mh[k]) - float(hh[k]) for k in DEGRADATION_STATS}


def disattenuated_correlation(r_machine_human: float, r_human_human: float) -> float:
    """``r_mh / sqrt(r_hh)``: the machine-human correlation corrected for human rater error.

    Mirrors ``Analyzer.compute_disattenuated_correlations``: NaN for a negative human-human r
    (RSMTool's NaN square root) and, unlike RSMTool's infinite quotient, for r_hh = 0.
    """
    if not (math.isfinite(r_machine_human) and math.isfinite(r_human_human)) or r_human_human <= 0:
        return math.nan
    return r_machine_human / math.sqrt(r_human_human)


def true_score(machine: ArrayLike, human1: ArrayLike, human2: ArrayLike) -> TrueScore | None:
    """PRMSE of ``machine`` against the true score; None where no essay is double-scored.

    Mirrors ``rsmtool.utils.prmse`` (``variance_of_errors``, ``true_score_variance``,
    ``mse_true``, ``prmse_true``) with two rating columns, every essay counted (single-scored
    ones too), rater error variance estimated from the double-scored essays.
    """
    h1, h2 = _ratings(human1, human2)
    m, _ = finite_pair(machine, h1, ("machine", "human1"))
    both = np.isfinite(h2)
    if not both.any():
        return None
    k = np.where(both, 2, 1)  # ratings per essay
    mean = np.where(both, (h1 + np.where(both, h2, 0.0)) / k, h1)
    # variance_of_errors: per-essay variance of its ratings (ddof=1), weighted by k - 1
    var_err = float(np.mean((h1[both] - h2[both]) ** 2 / 2))
    # true_score_variance: between-essay sum of squares of essay means, weighted by k
    grand = (h1.sum() + h2[both].sum()) / k.sum()
    n, total = len(h1), int(k.sum())
    var_true = (float(np.sum(k * (mean - grand) ** 2)) - (n - 1) * var_err) / (
        total - float(np.sum(k**2)) / total
    )
    mse = (float(np.sum(k * (mean - m) ** 2)) - n * var_err) / total
    return TrueScore(
        n=n,
        n_double=int(both.sum()),
        n_single=int(n - both.sum()),
        variance_true=var_true,
        variance_errors_human=var_err,
        mse_true=mse,
        prmse=1.0 - mse / var_true if var_true != 0 else math.nan,
    )
