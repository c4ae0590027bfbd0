"""Cut points that turn continuous predictions into levels, fitted to maximise QWK.

Plain rounding puts a cut halfway between two levels. Regression models shrink towards the
mean, so moving the cuts outwards usually gains QWK. The gain measured on the rows the cuts were
fitted on is optimistic; :func:`cross_fit` gives the honest estimate (each fold is cut by points
fitted on the other folds only).

Internally cut points live in level-index units (level ``k`` sits at ``k``; rounding cuts at
``k + 0.5``); :class:`Cutpoints` stores them on the score scale.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
from scipy.optimize import minimize

from aes_ensemble.errors import AesError
from aes_ensemble.metrics import (
    ScaleLike,
    ScalesLike,
    as_scale,
    as_scales,
    finite_array,
    finite_pair,
    kappa_from_confusion,
)
from aes_ensemble.scales import ScoreScale

Method = Literal["nelder-mead", "optuna"]
METHODS: tuple[str, ...] = ("nelder-mead", "optuna")
# What a stack config's ``thresholds`` may name: a search method, or plain rounding.
THRESHOLD_METHODS: tuple[str, ...] = (*METHODS, "none")


@dataclass(frozen=True, eq=False)
class Cutpoints:
    """``n_levels - 1`` strictly increasing cuts on the score scale: a prediction ``>= cuts[k]``
    and ``< cuts[k + 1]`` gets level ``k + 1``."""

    scale: ScoreScale
    cuts: np.ndarray

    def __post_init__(self) -> None:
        object.__setattr__(self, "scale", as_scale(self.scale))
        cuts = np.array(self.cuts, dtype=float).ravel()
        if len(cuts) != self.scale.n_levels - 1:
            raise AesError(
                f"scale {_name(self.scale)} needs {self.scale.n_levels - 1} cut points, "
                f"got {len(cuts)}"
            )
        if not np.isfinite(cuts).all() or (np.diff(cuts) <= 0).any():
            raise AesError(f"cut points for scale {_name(self.scale)} must increase strictly")
        cuts.setflags(write=False)
        object.__setattr__(self, "cuts", cuts)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Cutpoints):
            return NotImplemented
        return self.scale == other.scale and np.array_equal(self.cuts, other.cuts)

    __hash__ = None  # type: ignore[assignment]

    @classmethod
    def midpoints(cls, scale: ScaleLike) -> Cutpoints:
        """Cuts halfway between levels: plain rounding."""
        scale = as_scale(scale)
        return cls(scale, scale.levels[:-1] + scale.step / 2)

    def apply(self, pred: np.ndarray) -> np.ndarray:
        """The level (a score on the scale) of each prediction."""
        return self.scale.levels[
            np.searchsorted(self.cuts, finite_array(pred, "pred"), side="right")
        ]


@dataclass(frozen=True)
class Thresholds:
    """One :class:`Cutpoints` per distinct score scale (ASAP prompts sharing a scale share cuts)."""

    cutpoints: tuple[Cutpoints, ...]

    def __post_init__(self) -> None:
        scales = [c.scale for c in self.cutpoints]
        if len(set(scales)) != len(scales):
            raise AesError("thresholds hold two sets of cut points for the same scale")

    def for_scale(self, scale: ScaleLike) -> Cutpoints:
        scale = as_scale(scale)
        for c in self.cutpoints:
            if c.scale == scale:
                return c
        raise AesError(f"no cut points were fitted for scale {_name(scale)}")

    def covering(self, prompts: np.ndarray, scales: ScalesLike) -> Thresholds:
        """These cut points plus plain rounding for each scale of ``prompts`` they lack: the
        fitting rows of a prompt-grouped fold may miss a scale whole, leaving nothing to fit."""
        scales = as_scales(scales)
        have = {c.scale for c in self.cutpoints}
        needed = sorted(set(scales.groups(prompts)) - have, key=lambda s: (s.low, s.high, s.step))
        return Thresholds(self.cutpoints + tuple(Cutpoints.midpoints(s) for s in needed))

    def apply(
        self,
        pred: Sequence[float] | np.ndarray,
        prompts: Sequence[str | None] | np.ndarray | None,
        scales: ScalesLike,
    ) -> np.ndarray:
        """Each prediction cut into a level of its prompt's scale."""
        values = finite_array(pred, "pred")
        scales = as_scales(scales)
        out = np.empty(len(values), dtype=float)
        for scale, rows in scales.groups(_prompts(prompts, len(values))).items():
            out[rows] = self.for_scale(scale).apply(values[rows])
        return out

    def to_dict(self) -> dict[str, Any]:
        return {
            "cutpoints": [
                {"scale": c.scale.to_dict(), "cuts": [float(x) for x in c.cuts]}
                for c in self.cutpoints
            ]
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Thresholds:
        try:
            return cls(
                tuple(
                    Cutpoints(ScoreScale(**item["scale"]), np.asarray(item["cuts"], dtype=float))
                    for item in data["cutpoints"]
                )
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise AesError(f"stored thresholds are malformed ({exc})", key="cutpoints") from None


@dataclass(frozen=True)
class CrossFitResult:
    """``pred``: thresholded out-of-fold levels; ``per_fold``: the cuts used on each fold."""

    pred: np.ndarray
    per_fold: dict[int, Thresholds]


class _Objective:
    """QWK of cut points in O(K^2) per call: rows are sorted once, and cumulative counts of each
    true level give the confusion matrix from the positions of the cuts alone."""

    def __init__(self, true_idx: np.ndarray, x: np.ndarray, n_levels: int) -> None:
        order = np.argsort(x, kind="stable")
        self.x = x[order]
        onehot = np.zeros((len(x) + 1, n_levels), dtype=np.int64)
        onehot[np.arange(1, len(x) + 1), true_idx[order]] = 1
        self.cum = np.cumsum(onehot, axis=0)
        self.ends = np.array([0, len(x)])

    def __call__(self, cuts_idx: np.ndarray) -> float:
        bounds = np.searchsorted(self.x, cuts_idx, side="left")
        edges = np.concatenate([self.ends[:1], bounds, self.ends[1:]])
        conf = np.diff(self.cum[edges], axis=0).T
        return float(kappa_from_confusion(conf))


def _softplus(v: np.ndarray) -> np.ndarray:
    return np.logaddexp(0.0, v)


def _cuts_from_theta(theta: np.ndarray) -> np.ndarray:
    """First cut, then positive increments: every theta maps to strictly increasing cuts."""
    steps = np.maximum(_softplus(theta[1:]), 1e-6)
    return theta[0] + np.concatenate([[0.0], np.cumsum(steps)])


def _nelder_mead(objective: _Objective, n_cuts: int, max_restarts: int = 10) -> np.ndarray:
    """Nelder-Mead from the midpoints, restarted from its optimum with a fresh simplex until a
    restart gains nothing: QWK is a step function, and one simplex collapses on a plateau."""
    theta = np.concatenate([[0.5], np.full(n_cuts - 1, math.log(math.expm1(1.0)))])
    best = objective(_cuts_from_theta(theta))
    for _ in range(max_restarts):
        result = minimize(
            lambda t: -objective(_cuts_from_theta(t)),
            theta,
            method="Nelder-Mead",
            options={
                "initial_simplex": np.vstack([theta, theta + 0.25 * np.eye(n_cuts)]),
                "xatol": 1e-3,
                "fatol": 1e-6,
                "maxiter": 200 * n_cuts,
            },
        )
        if -result.fun <= best + 1e-6:
            break
        best, theta = -result.fun, result.x
    return _cuts_from_theta(theta)


@contextmanager
def _quiet_optuna() -> Iterator[None]:
    import optuna

    before = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        yield
    finally:
        optuna.logging.set_verbosity(before)


def _optuna_tpe(objective: _Objective, n_cuts: int, seed: int, n_trials: int) -> np.ndarray:
    import optuna

    def cuts_of(params: Mapping[str, float]) -> np.ndarray:
        steps = [params[f"d{k}"] for k in range(1, n_cuts)]
        return params["c0"] + np.concatenate([[0.0], np.cumsum(steps)])

    def trial_qwk(trial: optuna.Trial) -> float:
        params = {"c0": trial.suggest_float("c0", 0.0, 1.0)}
        for k in range(1, n_cuts):
            params[f"d{k}"] = trial.suggest_float(f"d{k}", 0.25, 1.75)
        return objective(cuts_of(params))

    with _quiet_optuna():
        study = optuna.create_study(
            direction="maximize", sampler=optuna.samplers.TPESampler(seed=seed)
        )
        study.enqueue_trial({"c0": 0.5, **{f"d{k}": 1.0 for k in range(1, n_cuts)}})
        study.optimize(trial_qwk, n_trials=n_trials, n_jobs=1)
    return cuts_of(study.best_params)


def fit_cutpoints(
    y_true: Sequence[float] | np.ndarray,
    pred: Sequence[float] | np.ndarray,
    scale: ScaleLike,
    *,
    method: Method = "nelder-mead",
    seed: int = 0,
    n_trials: int = 300,
) -> Cutpoints:
    """Cut points on ``scale`` that maximise in-sample QWK, starting from plain rounding.

    ``nelder-mead`` (OptimizedRounder-style, deterministic) searches a first cut plus softplus
    increments, so cuts never cross; ``optuna`` runs ``n_trials`` of seeded TPE over the same
    increments. The result is never worse in-sample than plain rounding: if the search does not
    beat the midpoints, the midpoints are returned.
    """
    if method not in METHODS:
        raise AesError(f"unknown threshold method '{method}' (valid: {', '.join(METHODS)})")
    scale = as_scale(scale)
    y, x = finite_pair(y_true, pred, ("y_true", "pred"))
    off = ~scale.is_level(y)
    if off.any():
        i = int(np.argmax(off))
        raise AesError(f"y_true value {y[i]:g} is not a level of scale {_name(scale)}", row=i + 1)
    rounding = Cutpoints.midpoints(scale)
    if len(y) == 0:
        return rounding
    objective = _Objective(scale.to_index(y), (x - scale.low) / scale.step, scale.n_levels)
    n_cuts = scale.n_levels - 1
    if method == "nelder-mead":
        cuts_idx = _nelder_mead(objective, n_cuts)
    else:
        cuts_idx = _optuna_tpe(objective, n_cuts, seed, n_trials)
    base_idx = np.arange(n_cuts) + 0.5
    if objective(cuts_idx) <= objective(base_idx):
        return rounding
    return Cutpoints(scale, scale.low + scale.step * cuts_idx)


def fit_thresholds(
    y_true: Sequence[float] | np.ndarray,
    pred: Sequence[float] | np.ndarray,
    prompts: Sequence[str | None] | np.ndarray | None,
    scales: ScalesLike,
    *,
    method: Method = "nelder-mead",
    seed: int = 0,
    n_trials: int = 300,
) -> Thresholds:
    """One set of cut points per distinct scale, fitted on the pooled rows of its prompts."""
    y, x = finite_pair(y_true, pred, ("y_true", "pred"))
    groups = as_scales(scales).groups(_prompts(prompts, len(y)))
    return Thresholds(
        tuple(
            fit_cutpoints(y[rows], x[rows], scale, method=method, seed=seed, n_trials=n_trials)
            for scale, rows in groups.items()
        )
    )


def fit_cuts(
    y: np.ndarray,
    pred: np.ndarray,
    prompts: np.ndarray,
    scales: ScalesLike,
    method: str,
    seed: int,
    cover: np.ndarray,
) -> Thresholds:
    """Cut points fitted on ``(y, pred)``, plus plain rounding for scales of ``cover`` that the
    fitting rows lack (a prompt-grouped fold may hold a whole scale); ``"none"``: rounding."""
    if method not in THRESHOLD_METHODS:
        raise AesError(
            f"unknown threshold method '{method}' (valid: {', '.join(THRESHOLD_METHODS)})"
        )
    fitted = Thresholds(())
    if method != "none":
        fitted = fit_thresholds(y, pred, prompts, scales, method=method, seed=seed)  # type: ignore[arg-type]
    return fitted.covering(np.concatenate([prompts, cover]), scales)


def cross_fit(
    y_true: Sequence[float] | np.ndarray,
    pred: Sequence[float] | np.ndarray,
    prompts: Sequence[str | None] | np.ndarray | None,
    folds: Sequence[int] | np.ndarray,
    scales: ScalesLike,
    *,
    method: str = "nelder-mead",
    seed: int = 0,
) -> CrossFitResult:
    """Thresholded out-of-fold predictions: fold ``k`` is cut by points fitted without its rows
    (``fit_cuts``), the honest estimate of what thresholds add.

    A scale whose rows all sit in fold ``k`` (a prompt-grouped split of a prompt with its own
    scale) has nothing to fit on; fold ``k`` then uses plain rounding for that scale.
    """
    y = finite_array(y_true, "y_true")
    x = finite_array(pred, "pred")
    fold = np.asarray(folds).ravel()
    if not (len(y) == len(x) == len(fold)):
        raise AesError(f"y_true, pred and folds have {len(y)}, {len(x)} and {len(fold)} values")
    keys = _prompts(prompts, len(y))
    out = np.empty(len(y), dtype=float)
    per_fold: dict[int, Thresholds] = {}
    for k in np.unique(fold):
        held = fold == k
        cuts = fit_cuts(y[~held], x[~held], keys[~held], scales, method, seed, keys[held])
        out[held] = cuts.apply(x[held], keys[held], scales)
        per_fold[int(k)] = cuts
    return CrossFitResult(pred=out, per_fold=per_fold)


def _prompts(prompts: Sequence[str | None] | np.ndarray | None, n: int) -> np.ndarray:
    if prompts is None:
        return np.full(n, None, dtype=object)
    keys = np.asarray(prompts, dtype=object).ravel()
    if len(keys) != n:
        raise AesError(f"prompts has {len(keys)} values but the scores have {n}")
    return keys


def _name(scale: ScoreScale) -> str:
    return f"{scale.low:g}..{scale.high:g} step {scale.step:g}"
