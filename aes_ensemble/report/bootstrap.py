"""Bootstrap intervals of the agreement statistics that are moments of the scores: correlation,
RSMTool's continuous QWK, SMD (both definitions), MSE, RMSE, R2 and agreement rates.

Resampling n essays with replacement is drawing multinomial counts ``w`` over the essays, and
each of these statistics is a function of the weighted sums ``w @ [h, m, h², m², h·m, (h-m)²,
rates...]``: a chunk of resamples costs one matrix product, not a Python loop over resamples.
QWK on levels keeps ``metrics.bootstrap_interval`` (the leaderboard's interval, to the digit).
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np

from aes_ensemble.errors import AesError
from aes_ensemble.metrics import finite_pair

CHUNK_CELLS = 2_000_000
"""Resamples are drawn in chunks of about this many counts, so memory stays flat on ASAP."""
MOMENTS = ("corr", "wtkappa", "smd", "smd_pooled", "mse", "rmse", "r2")
"""The statistics :func:`moment_intervals` always returns (``Agreement`` field names)."""
N_SUMS = 6


def _statistics(s: np.ndarray, n: float) -> dict[str, np.ndarray]:
    """Each moment statistic of every resample from its weighted sums ``s`` (columns h, m, h²,
    m², hm, (h-m)²), defined as ``rsm_metrics.agreement`` defines them."""
    h, m, hh, mm, hm, err = s[:, :N_SUMS].T
    mean_h, mean_m = h / n, m / n
    ss_h, ss_m = hh - n * mean_h**2, mm - n * mean_m**2
    cov = hm - n * mean_h * mean_m
    with np.errstate(divide="ignore", invalid="ignore"):
        sd_h = np.sqrt(np.maximum(ss_h, 0) / (n - 1))
        pooled = np.sqrt(np.maximum(ss_h + ss_m, 0) / (2 * (n - 1)))
        return {
            "corr": cov / np.sqrt(np.maximum(ss_h, 0) * np.maximum(ss_m, 0)),
            "wtkappa": 2 * cov / (ss_h + ss_m + n * (mean_h - mean_m) ** 2),
            "smd": (mean_m - mean_h) / sd_h,
            "smd_pooled": (mean_m - mean_h) / pooled,
            "mse": err / n,
            "rmse": np.sqrt(err / n),
            "r2": 1 - err / ss_h,
        }


def _resampled_sums(columns: np.ndarray, n_boot: int, rng: np.random.Generator) -> np.ndarray:
    """``(n_boot, k)`` sums of ``columns`` over resamples of its rows with replacement: each
    resample's row counts from one ``bincount`` of drawn indices (``rng.multinomial`` over n
    equal cells is many times slower for thousands of essays)."""
    n = len(columns)
    chunk = max(1, CHUNK_CELLS // n)
    parts = []
    for start in range(0, n_boot, chunk):
        size = min(chunk, n_boot - start)
        drawn = rng.integers(0, n, size=(size, n)) + n * np.arange(size)[:, None]
        counts = np.bincount(drawn.ravel(), minlength=size * n).reshape(size, n)
        parts.append(counts.astype(np.float64) @ columns)  # float x float: BLAS
    return np.vstack(parts)


def moment_intervals(
    human: object,
    machine: object,
    *,
    rates: Mapping[str, np.ndarray] | None = None,
    strata: np.ndarray | None = None,
    n_boot: int = 1000,
    seed: int = 0,
    alpha: float = 0.05,
) -> dict[str, tuple[float, float]]:
    """Percentile bootstrap interval ``(lo, hi)`` at level ``1 - alpha`` of each statistic in
    :data:`MOMENTS` and of each agreement rate in ``rates`` (name -> one bool per essay, e.g.
    ``exact_agr``: the two scores are the same level), in percent.

    With ``strata`` (a label per essay: the prompt where prompts have their own scales) each
    stratum is resampled to its own size, ``wtkappa`` is the mean of the strata's values (the
    ASAP protocol) and the other statistics are computed on all essays together. SMD is
    RSMTool's unpooled ``(mean m - mean h) / SD h``, ``smd_pooled`` Williamson et al.'s. NaN
    bounds where a statistic is undefined in over a tenth of the resamples (constant scores).
    """
    if n_boot < 1:
        raise AesError(f"n_boot {n_boot} must be at least 1")
    h, m = finite_pair(human, machine, ("human scores", "machine scores"))
    rates = dict(rates or {})
    names = (*MOMENTS, *rates)
    if len(h) < 2:
        return {name: (math.nan, math.nan) for name in names}
    columns = np.column_stack(
        [h, m, h * h, m * m, h * m, (h - m) ** 2]
        + [np.asarray(v, dtype=float).ravel() for v in rates.values()]
    )
    labels = (
        np.zeros(len(h), dtype=np.int64)
        if strata is None
        else np.unique(np.asarray(strata, dtype=str), return_inverse=True)[1]
    )
    rng = np.random.default_rng(seed)
    sums = np.zeros((n_boot, columns.shape[1]))
    kappas = []
    for g in range(int(labels.max()) + 1):
        part = _resampled_sums(columns[labels == g], n_boot, rng)
        sums += part
        kappas.append(_statistics(part, float((labels == g).sum()))["wtkappa"])
    stats = _statistics(sums, float(len(h)))
    if strata is not None:
        stats["wtkappa"] = np.mean(kappas, axis=0)
    for j, name in enumerate(rates, start=N_SUMS):
        stats[name] = 100 * sums[:, j] / len(h)
    return {name: _percentile_interval(stats[name], n_boot, alpha) for name in names}


def group_r2_intervals(
    outcomes: Mapping[str, np.ndarray],
    labels: np.ndarray,
    *,
    n_boot: int = 1000,
    seed: int = 0,
    alpha: float = 0.05,
) -> dict[str, tuple[float, float]]:
    """Percentile bootstrap interval of the adjusted R2 of ``y ~ group`` for each outcome ``y``
    in ``outcomes`` (RSMTool's OSA: squared error, OSD: signed error), essays with a label only.

    A one-way model's R2 is ``SS_between / SS_total``, a function of each group's count, sum and
    sum of squares, so every resample costs a matrix product, not an OLS fit; adjusted as
    statsmodels does, ``1 - (1 - R2) (n - 1) / (n - k)`` with ``k`` the groups in the resample.
    """
    known = np.asarray([v is not None for v in labels], dtype=bool)
    codes = np.unique(np.asarray(labels[known], dtype=str), return_inverse=True)[1]
    k = int(codes.max()) + 1 if len(codes) else 0
    n = len(codes)
    if n < 3 or k < 2:
        return {name: (math.nan, math.nan) for name in outcomes}
    member = np.eye(k)[codes]
    ys = [np.asarray(y, dtype=float)[known] for y in outcomes.values()]
    columns = np.column_stack(
        [member] + [member * y[:, None] for y in ys] + [member * (y**2)[:, None] for y in ys]
    )
    sums = _resampled_sums(columns, n_boot, np.random.default_rng(seed))
    counts = sums[:, :k]
    present = (counts > 0).sum(axis=1)
    out = {}
    for j, name in enumerate(outcomes):
        s = sums[:, k * (1 + j) : k * (2 + j)]
        q = sums[:, k * (1 + len(ys) + j) : k * (2 + len(ys) + j)]
        total = s.sum(axis=1)
        with np.errstate(divide="ignore", invalid="ignore"):
            between = np.where(counts > 0, s**2 / counts, 0).sum(axis=1) - total**2 / n
            ss_total = q.sum(axis=1) - total**2 / n
            r2 = 1 - (1 - between / ss_total) * (n - 1) / (n - present)
        out[name] = _percentile_interval(r2, n_boot, alpha)
    return out


def _percentile_interval(draws: np.ndarray, n_boot: int, alpha: float) -> tuple[float, float]:
    """The ``1 - alpha`` percentile interval of a statistic's bootstrap draws; NaN bounds where
    it is undefined in over a tenth of the resamples (constant scores)."""
    values = draws[np.isfinite(draws)]
    if len(values) < max(2, 0.9 * n_boot):
        return (math.nan, math.nan)
    lo, hi = np.quantile(values, [alpha / 2, 1 - alpha / 2])
    return (float(lo), float(hi))
