"""Meta-learners: scikit-learn regressors over the base learners' normalised predictions.

``NonNegativeLinear`` and ``HillClimbing`` are written here; ``ridge`` and ``lgbm`` are library
models with stack-sized settings; any other scikit-learn-style regressor is named by class path
in ``configs/stack.yaml``. Class paths are imported only from an allow-list of packages, so a
config file cannot run arbitrary code.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from typing import Any

import numpy as np
from scipy.optimize import nnls
from sklearn.base import BaseEstimator, RegressorMixin
from sklearn.utils.validation import check_is_fitted, validate_data

from aes_ensemble.errors import AesError, did_you_mean
from aes_ensemble.metrics import kappa_from_confusion

ALLOWED_PREFIXES = ("sklearn.", "lightgbm.", "xgboost.", "aes_ensemble.")
# Blends combine predictions on one scale; they take only the base learners' ``pred`` columns.
BLENDS = ("nnls", "hill", "mean", "vote")
BUILTINS = ("ridge", "nnls", "lgbm", "hill", "mean", "vote")


class _PoorScoreRegressor(RegressorMixin, BaseEstimator):
    """Blends of given columns cannot fit sklearn's generic test targets well: say so."""

    def __sklearn_tags__(self) -> Any:
        tags = super().__sklearn_tags__()
        tags.regressor_tags.poor_score = True
        return tags


class _WeightedBlend(_PoorScoreRegressor):
    """A blend whose fit sets ``coef_`` (one weight per column) and ``intercept_``."""

    def predict(self, X: Any) -> np.ndarray:
        check_is_fitted(self, "coef_")
        X = validate_data(self, X, reset=False)
        return X @ self.coef_ + self.intercept_


class NonNegativeLinear(_WeightedBlend):
    """Least squares with non-negative weights (``scipy.optimize.nnls``) and a free intercept.

    Non-negative weights keep a blend interpretable and stable when base learners are highly
    correlated: a learner that does not help gets weight 0 rather than a large +/- pair.
    """

    def __init__(self, fit_intercept: bool = True) -> None:
        self.fit_intercept = fit_intercept

    def fit(self, X: Any, y: Any) -> NonNegativeLinear:
        X, y = validate_data(self, X, y, y_numeric=True)
        y = np.asarray(y, dtype=float)
        if self.fit_intercept:
            x_mean, y_mean = X.mean(axis=0), float(y.mean())
            coef, _ = nnls(X - x_mean, y - y_mean)
            self.intercept_ = y_mean - float(x_mean @ coef)
        else:
            coef, _ = nnls(X, y)
            self.intercept_ = 0.0
        self.coef_ = coef
        return self


class HillClimbing(_WeightedBlend):
    """Caruana et al. (2004) ensemble selection with replacement.

    Starts from the best single column, then ``n_iter`` times adds (again, if it helps most) the
    column whose inclusion in the running average scores best; weights are pick counts over the
    total. ``metric="rmse"`` (default) scores the continuous blend; ``"qwk"`` scores it rounded
    to the nearest level seen in ``y`` (at most ``max_levels`` distinct values). Rounded QWK
    rewards spread, so it may pick a noisy column that widens the blend: on real ELLIPSE OOF a
    random learner got 14% weight under ``qwk`` and 0% under ``rmse``. The stack's cut points
    fix the spread afterwards, which is why ``rmse`` is the default. Ties between candidates are
    broken at random with ``random_state``.
    """

    def __init__(
        self,
        n_iter: int = 50,
        metric: str = "rmse",
        max_levels: int = 256,
        random_state: int | None = 0,
    ) -> None:
        self.n_iter = n_iter
        self.metric = metric
        self.max_levels = max_levels
        self.random_state = random_state

    def fit(self, X: Any, y: Any) -> HillClimbing:
        X, y = validate_data(self, X, y, y_numeric=True)
        y = np.asarray(y, dtype=float)
        if self.metric not in ("qwk", "rmse"):
            raise ValueError(f"metric must be 'qwk' or 'rmse', got {self.metric!r}")
        if self.n_iter < 0:
            raise ValueError(f"n_iter must be >= 0, got {self.n_iter}")
        score = self._scorer(y)
        rng = np.random.default_rng(self.random_state)
        n_features = X.shape[1]
        counts = np.zeros(n_features, dtype=np.int64)
        first = self._pick(score(X), rng)
        counts[first] = 1
        total = X[:, first].copy()
        picks, trace = [first], [float(score(X[:, [first]])[0])]
        for _ in range(self.n_iter):
            size = counts.sum()
            candidates = (total[:, None] + X) / (size + 1)
            scores = score(candidates)
            best = self._pick(scores, rng)
            counts[best] += 1
            total += X[:, best]
            picks.append(best)
            trace.append(float(scores[best]))
        self.counts_ = counts
        self.coef_ = counts / counts.sum()
        self.intercept_ = 0.0
        self.picks_ = np.asarray(picks, dtype=np.int64)
        self.scores_ = np.asarray(trace)
        return self

    @staticmethod
    def _pick(scores: np.ndarray, rng: np.random.Generator) -> int:
        best = np.flatnonzero(scores >= scores.max() - 1e-12)
        return int(best[0] if len(best) == 1 else rng.choice(best))

    def _scorer(self, y: np.ndarray) -> Any:
        """Higher-is-better score of each column of a candidate matrix against ``y``."""
        if self.metric == "rmse":
            return lambda P: -np.sqrt(((P - y[:, None]) ** 2).mean(axis=0))
        levels = np.unique(y)
        if len(levels) > self.max_levels:
            raise ValueError(
                f"metric='qwk' needs a discrete target, got {len(levels)} distinct values "
                f"(max_levels={self.max_levels}); use metric='rmse'"
            )
        k = len(levels)
        true_idx = np.searchsorted(levels, y)
        mids = (levels[:-1] + levels[1:]) / 2

        def qwk_columns(P: np.ndarray) -> np.ndarray:
            pred_idx = np.searchsorted(mids, P)
            codes = true_idx[:, None] * k + pred_idx + (k * k) * np.arange(P.shape[1])
            conf = np.bincount(codes.ravel(), minlength=P.shape[1] * k * k)
            return np.atleast_1d(kappa_from_confusion(conf.reshape(P.shape[1], k, k)))

        return qwk_columns


class MeanBlend(_WeightedBlend):
    """The plain average of the columns: the baseline every weighted stack must beat."""

    def fit(self, X: Any, y: Any) -> MeanBlend:
        X, _ = validate_data(self, X, y, y_numeric=True)
        self.coef_ = np.full(X.shape[1], 1.0 / X.shape[1])
        self.intercept_ = 0.0
        return self


class MajorityVote(_PoorScoreRegressor):
    """The most frequent value in each row (columns are levels); a tie goes to the tied value
    nearest the row's median, then to the lower one. The stack feeds it thresholded levels."""

    def fit(self, X: Any, y: Any) -> MajorityVote:
        X, _ = validate_data(self, X, y, y_numeric=True)
        self.coef_ = np.full(X.shape[1], 1.0 / X.shape[1])
        return self

    def predict(self, X: Any) -> np.ndarray:
        check_is_fitted(self, "coef_")
        return majority_vote(validate_data(self, X, reset=False))


def majority_vote(X: np.ndarray) -> np.ndarray:
    """:class:`MajorityVote`'s rule on a matrix (a saved stack applies it without the class)."""
    values = np.sort(np.round(X, 9), axis=1)
    counts = (values[:, :, None] == values[:, None, :]).sum(axis=2)
    median = np.median(values, axis=1, keepdims=True)
    distance = np.where(counts == counts.max(axis=1, keepdims=True), 0.0, np.inf)
    distance = distance + np.abs(values - median)
    return values[np.arange(len(values)), np.argmin(distance, axis=1)]


def _builtin(name: str, seed: int) -> Any:
    if name == "ridge":
        from sklearn.linear_model import Ridge

        return Ridge(alpha=1.0)
    if name == "nnls":
        return NonNegativeLinear()
    if name == "hill":
        return HillClimbing(random_state=seed)
    if name == "mean":
        return MeanBlend()
    if name == "vote":
        return MajorityVote()
    from lightgbm import LGBMRegressor

    # Few, shallow, regularised trees: a meta-learner sees a handful of strong, correlated columns.
    return LGBMRegressor(
        n_estimators=200,
        learning_rate=0.05,
        num_leaves=7,
        min_child_samples=50,
        subsample=0.8,
        subsample_freq=1,
        reg_lambda=1.0,
        random_state=seed,
        n_jobs=1,
        deterministic=True,
        force_row_wise=True,
        verbose=-1,
    )


def import_class(path: str, *, key: str = "meta.class") -> type:
    """The class at ``module.Class``, imported only from ``ALLOWED_PREFIXES``."""
    module_name, _, class_name = path.rpartition(".")
    if not module_name or not path.startswith(ALLOWED_PREFIXES):
        raise AesError(
            f"class '{path}' is not allowed: name a class under {', '.join(ALLOWED_PREFIXES)} "
            "(e.g. sklearn.linear_model.HuberRegressor)",
            key=key,
        )
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise AesError(f"cannot import module '{module_name}' ({exc})", key=key) from None
    cls = getattr(module, class_name, None)
    if not isinstance(cls, type):
        public = [n for n in dir(module) if not n.startswith("_")]
        raise AesError(
            f"module '{module_name}' has no class '{class_name}'{did_you_mean(class_name, public)}",
            key=key,
        )
    if not (callable(getattr(cls, "fit", None)) and callable(getattr(cls, "predict", None))):
        raise AesError(f"'{path}' is not an estimator (no fit/predict)", key=key)
    return cls


def set_params(estimator: Any, params: Mapping[str, Any], *, key: str) -> Any:
    """Apply ``params``, turning an unknown name into an ``AesError`` with a suggestion."""
    valid = estimator.get_params(deep=False)
    for name in params:
        if name not in valid:
            raise AesError(
                f"unknown parameter of {type(estimator).__name__}{did_you_mean(name, valid)}",
                key=f"{key}.{name}",
            )
    return estimator.set_params(**params)


def make_meta(
    meta: str, *, params: Mapping[str, Any] | None = None, class_path: str | None = None, seed: int
) -> Any:
    """A fresh, unfitted meta-learner: a built-in by name, or ``class_path`` with ``params``."""
    if class_path is not None:
        cls = import_class(class_path)
        try:
            estimator = cls()
        except TypeError as exc:
            raise AesError(f"cannot build '{class_path}' ({exc})", key="meta.class") from None
        estimator = set_params(estimator, params or {}, key="meta.params")
        if "random_state" in estimator.get_params(deep=False) and not (params or {}).get(
            "random_state"
        ):
            estimator.set_params(random_state=seed)
        return estimator
    if meta not in BUILTINS:
        raise AesError(f"unknown meta-learner '{meta}'{did_you_mean(meta, BUILTINS)}", key="meta")
    return set_params(_builtin(meta, seed), params or {}, key=f"options.{meta}")
