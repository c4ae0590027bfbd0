"""Quadratic weighted kappa (QWK), per prompt and with a bootstrap interval.

QWK is computed from a confusion matrix built with ``np.bincount`` on level-index pairs, with
weights ``(i - j)**2`` from the distance between levels. It is about 40x faster than
``sklearn.metrics.cohen_kappa_score`` on 17k labels (``python -m bench.bench_metrics``), which
makes threshold search and bootstrapping cheap.

Degenerate inputs return a defined value instead of NaN: an empty input, or one whose expected
disagreement is zero (both arrays hold one and the same label), has kappa 0.0.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache

import numpy as np

from aes_ensemble.errors import AesError
from aes_ensemble.scales import ScoreScale, ScoreScales

NO_PROMPT = "(none)"
"""Key of rows without a prompt in :func:`qwk_by_prompt`."""

ScaleLike = ScoreScale | str
"""A score scale as an object or as configs spell it: ``"1-6"``, ``"1-5:0.5"``."""
ScalesLike = ScoreScales | ScoreScale | str
"""Scales per prompt, or one scale for every essay in any :data:`ScaleLike` spelling."""


def as_scale(scale: ScaleLike) -> ScoreScale:
    """``scale`` as a :class:`ScoreScale`, so every public function takes the config spellings."""
    if isinstance(scale, ScoreScale):
        return scale
    if isinstance(scale, str):
        return ScoreScale.parse(scale)
    raise AesError(
        f"scale must be a ScoreScale or text like '1-6' or '1-5:0.5', not {type(scale).__name__}"
    )


def as_scales(scales: ScalesLike) -> ScoreScales:
    """``scales`` as :class:`ScoreScales`; one scale (or its spelling) holds for every prompt."""
    return scales if isinstance(scales, ScoreScales) else ScoreScales(default=as_scale(scales))


@lru_cache(maxsize=64)
def quadratic_weights(n_levels: int) -> np.ndarray:
    """``W[i, j] = (i - j)**2``: disagreement grows with the squared distance between levels."""
    k = np.arange(n_levels, dtype=float)
    w = (k[:, None] - k[None, :]) ** 2
    w.setflags(write=False)
    return w


def confusion(true_idx: np.ndarray, pred_idx: np.ndarray, n_levels: int) -> np.ndarray:
    """Counts ``C[i, j]`` of rows with true level ``i`` and predicted level ``j``."""
    codes = true_idx * n_levels + pred_idx
    return np.bincount(codes, minlength=n_levels * n_levels).reshape(n_levels, n_levels)


def kappa_from_confusion(conf: np.ndarray) -> np.ndarray | float:
    """QWK of one confusion matrix ``(K, K)`` or a batch ``(B, K, K)``; 0.0 where undefined.

    Expected disagreement uses the outer product of the two marginals, as Cohen's kappa does.
    """
    conf = np.asarray(conf, dtype=float)
    w = quadratic_weights(conf.shape[-1])
    n = conf.sum(axis=(-2, -1))
    observed = (conf * w).sum(axis=(-2, -1))
    true_hist = conf.sum(axis=-1)
    pred_hist = conf.sum(axis=-2)
    expected = np.einsum("...i,ij,...j->...", true_hist, w, pred_hist)
    with np.errstate(divide="ignore", invalid="ignore"):
        kappa = np.where(expected > 0, 1.0 - observed * n / expected, 0.0)
    return float(kappa) if kappa.ndim == 0 else kappa


def finite_array(values: object, name: str) -> np.ndarray:
    """``values`` as a flat float array; a non-numeric, missing or infinite value is an error."""
    try:
        arr = np.asarray(values, dtype=float).ravel()
    except (TypeError, ValueError):
        raise AesError(f"{name} must be numeric scores") from None
    bad = ~np.isfinite(arr)
    if bad.any():
        raise AesError(f"{name} has a missing or infinite value", row=int(np.argmax(bad)) + 1)
    return arr


def finite_pair(
    a: object, b: object, names: tuple[str, str] = ("y_true", "y_pred")
) -> tuple[np.ndarray, np.ndarray]:
    """Two :func:`finite_array` of one length, e.g. true and predicted scores."""
    x = finite_array(a, names[0])
    y = finite_array(b, names[1])
    if len(x) != len(y):
        raise AesError(f"{names[0]} has {len(x)} values but {names[1]} has {len(y)}")
    return x, y


def check_levels(values: np.ndarray, scale: ScoreScale, name: str, *, hint: str = "") -> None:
    """Every value is a level of ``scale``, or the error names ``name``, the first row off the
    scale and its value (then `` (hint)`` where given)."""
    off = ~scale.is_level(values)
    if off.any():
        i = int(np.argmax(off))
        raise AesError(
            f"{name} value {values[i]:g} is not a level of the scale "
            f"{scale.low:g}..{scale.high:g} step {scale.step:g}" + (f" ({hint})" if hint else ""),
            row=i + 1,
        )


def _to_indices(
    y_true: object, y_pred: object, scale: ScaleLike | None, n_levels: int | None
) -> tuple[np.ndarray, np.ndarray, int]:
    """Level indices of both arrays and the number of levels the weights span."""
    t, p = finite_pair(y_true, y_pred)
    if scale is not None:
        scale = as_scale(scale)
        for arr, name in ((t, "y_true"), (p, "y_pred")):
            check_levels(arr, scale, name, hint="round or threshold first")
        return scale.to_index(t), scale.to_index(p), scale.n_levels
    if n_levels is not None:
        for arr, name in ((t, "y_true"), (p, "y_pred")):
            off = (arr != np.rint(arr)) | (arr < 0) | (arr >= n_levels)
            if off.any():
                i = int(np.argmax(off))
                raise AesError(
                    f"{name} value {arr[i]:g} is not a level index 0..{n_levels - 1}", row=i + 1
                )
        return t.astype(np.int64), p.astype(np.int64), n_levels
    if len(t) == 0:
        return t.astype(np.int64), p.astype(np.int64), 1
    low = min(t.min(), p.min())
    high = max(t.max(), p.max())
    both = np.concatenate([t, p])
    for step in (1.0, 0.5):
        k = (both - low) / step
        if np.array_equal(k, np.rint(k)):
            n = round((high - low) / step) + 1
            idx = k.astype(np.int64)
            return idx[: len(t)], idx[len(t) :], n
    raise AesError("labels are not whole or half points; pass scale= to say which levels exist")


def qwk(
    y_true: Sequence[float] | np.ndarray,
    y_pred: Sequence[float] | np.ndarray,
    *,
    scale: ScaleLike | None = None,
    n_levels: int | None = None,
) -> float:
    """Quadratic weighted kappa of two arrays of levels (predictions already rounded/thresholded).

    Which levels the weights span:

    * ``scale`` given (a ``ScoreScale`` or ``"1-6"``, ``"1-5:0.5"``): every level of the scale;
      a value off the scale is an ``AesError``.
    * ``n_levels`` given: the inputs are level indices ``0..n_levels-1``.
    * neither: the range from the lowest to the highest label seen in either array, in steps of
      1 (or 0.5 when half points occur).

    When every level of that range occurs, the result equals
    ``sklearn.metrics.cohen_kappa_score(y_true, y_pred, weights="quadratic")``. When a level in
    between is missing they differ on purpose: scikit-learn weighs disagreement by the *rank*
    among the labels present (1 vs 3 counts as distance 1 when 2 never occurs), while this
    function weighs by the *distance on the scale* (distance 2), as the Kaggle AES 2.0 and ASAP
    competition metrics do.

    Empty input, and input whose expected disagreement is zero (both arrays hold one and the same
    label), return 0.0 rather than NaN.
    """
    t, p, k = _to_indices(y_true, y_pred, scale, n_levels)
    if len(t) == 0:
        return 0.0
    return float(kappa_from_confusion(confusion(t, p, k)))


def _rows_by_prompt(
    prompts: Sequence[str | None] | np.ndarray | None, n: int
) -> dict[str | None, np.ndarray]:
    """Row indices of each prompt, in a fixed order (sorted, rows without a prompt last)."""
    if prompts is None:
        return {None: np.arange(n)}
    keys = list(prompts)
    if len(keys) != n:
        raise AesError(f"prompts has {len(keys)} values but the scores have {n}")
    rows: dict[str | None, list[int]] = {}
    for i, k in enumerate(keys):
        rows.setdefault(None if k is None else str(k), []).append(i)
    order = sorted(rows, key=lambda k: (k is None, k or ""))
    return {k: np.asarray(rows[k], dtype=np.int64) for k in order}


def qwk_by_prompt(
    y_true: Sequence[float] | np.ndarray,
    y_pred: Sequence[float] | np.ndarray,
    prompts: Sequence[str | None] | np.ndarray | None,
    scales: ScalesLike,
) -> dict[str, float]:
    """QWK of each prompt on that prompt's scale; rows without a prompt fall under ``NO_PROMPT``."""
    t, p = finite_pair(y_true, y_pred)
    scales = as_scales(scales)
    return {
        NO_PROMPT if prompt is None else prompt: qwk(
            t[rows], p[rows], scale=scales.for_prompt(prompt)
        )
        for prompt, rows in _rows_by_prompt(prompts, len(t)).items()
    }


def mean_qwk(
    y_true: Sequence[float] | np.ndarray,
    y_pred: Sequence[float] | np.ndarray,
    prompts: Sequence[str | None] | np.ndarray | None,
    scales: ScalesLike,
) -> float:
    """The ASAP protocol: the plain mean of the per-prompt QWKs."""
    per = qwk_by_prompt(y_true, y_pred, prompts, scales)
    return float(np.mean(list(per.values()))) if per else 0.0


def headline_qwk(
    y_true: Sequence[float] | np.ndarray,
    y_pred: Sequence[float] | np.ndarray,
    prompts: Sequence[str | None] | np.ndarray | None,
    scales: ScalesLike,
) -> float:
    """Mean per-prompt QWK when scales are per prompt (ASAP), else one QWK on the global scale."""
    scales = as_scales(scales)
    if scales.is_per_prompt:
        return mean_qwk(y_true, y_pred, prompts, scales)
    return qwk(y_true, y_pred, scale=scales.for_prompt(None))


def headline_qwk_by_group(
    y_true: np.ndarray,
    y_pred: np.ndarray,
    prompts: np.ndarray,
    scales: ScalesLike,
    groups: np.ndarray,
) -> dict[str, float]:
    """:func:`headline_qwk` within each group (a fold, a source), keyed by the group's name."""
    return {
        str(g): headline_qwk(y_true[groups == g], y_pred[groups == g], prompts[groups == g], scales)
        for g in np.unique(groups)
    }


def bootstrap_interval(
    y_true: Sequence[float] | np.ndarray,
    y_pred: Sequence[float] | np.ndarray,
    *,
    prompts: Sequence[str | None] | np.ndarray | None = None,
    scales: ScalesLike | None = None,
    n_boot: int = 1000,
    alpha: float = 0.05,
    seed: int = 0,
) -> tuple[float, float]:
    """Percentile bootstrap interval ``(lo, hi)`` of :func:`headline_qwk` at level ``1 - alpha``.

    Resampling n rows with replacement makes the resampled confusion matrix multinomial over the
    observed cells, so each resample is drawn as cell counts in one ``rng.multinomial`` call:
    1000 resamples of any number of rows take milliseconds. With per-prompt scales each prompt is
    resampled to its own size (a stratified bootstrap), so no prompt ever vanishes from a
    resample. Without ``scales`` the levels span the labels seen, as in :func:`qwk`.
    """
    if not 0 < alpha < 1:
        raise AesError(f"alpha {alpha} must lie strictly between 0 and 1")
    if n_boot < 1:
        raise AesError(f"n_boot {n_boot} must be at least 1")
    t, p = finite_pair(y_true, y_pred)
    rng = np.random.default_rng(seed)
    scales = None if scales is None else as_scales(scales)
    if scales is not None and scales.is_per_prompt:
        by_prompt = _rows_by_prompt(prompts, len(t))
        stats = np.zeros(n_boot)
        for prompt, rows in by_prompt.items():
            stats += _resampled_kappas(t[rows], p[rows], scales.for_prompt(prompt), rng, n_boot)
        stats /= max(len(by_prompt), 1)
    else:
        scale = None if scales is None else scales.for_prompt(None)
        stats = _resampled_kappas(t, p, scale, rng, n_boot)
    lo, hi = np.quantile(stats, [alpha / 2, 1 - alpha / 2])
    return float(lo), float(hi)


def _resampled_kappas(
    t: np.ndarray, p: np.ndarray, scale: ScoreScale | None, rng: np.random.Generator, n_boot: int
) -> np.ndarray:
    ti, pi, k = _to_indices(t, p, scale, None)
    if len(ti) == 0:
        return np.zeros(n_boot)
    conf = confusion(ti, pi, k)
    counts = rng.multinomial(len(ti), conf.ravel() / len(ti), size=n_boot)
    return np.asarray(kappa_from_confusion(counts.reshape(n_boot, k, k)))
