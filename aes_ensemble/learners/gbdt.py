"""LightGBM and XGBoost regressors on the feature pipeline.

Early stopping watches an inner, seeded split of the *training* rows (stratified by prompt and
score where every stratum can be split), never the validation fold, so OOF predictions stay
honest. With ``refit_full`` the model is then refitted on all training rows for the best number
of rounds. Models are kept in the libraries' own formats (LightGBM text, XGBoost UBJSON) and every
prediction, right after fit or after load, goes through that serialised model, so a loaded model
predicts bit for bit what the fitted one did. The ordinal kinds (``gbdt_ordinal``) reuse these
settings and training helpers with a binary objective per cut point.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import lightgbm as lgb
import numpy as np
import xgboost as xgb
from pydantic import Field
from sklearn.model_selection import train_test_split

from aes_ensemble.config import StrictModel
from aes_ensemble.data import Essays
from aes_ensemble.errors import AesError
from aes_ensemble.io import atomic_path
from aes_ensemble.learners.registry import register
from aes_ensemble.learners.tabular import Matrix, TabularConfig, TabularLearner, model_file
from aes_ensemble.native_stderr import lightgbm_stderr

Scalar = float | int | str | bool


class EarlyStopping(StrictModel):
    """Rounds without improvement on the inner split before stopping, and that split's size."""

    n_estimators: int = 3000
    early_stopping_rounds: int = 100
    valid_fraction: float = 0.1
    refit_full: bool = True
    # Threads. 1 by default: OpenMP threads spinning on busy shared cores can run 10-50x slower.
    n_jobs: int = Field(default=1, ge=1)


class LgbmBoosting(EarlyStopping):
    """LightGBM's settings apart from the objective (the ordinal kind fixes its own)."""

    learning_rate: float = 0.03
    num_leaves: int = 31
    max_depth: int = -1
    min_child_samples: int = 20
    feature_fraction: float = 0.8
    bagging_fraction: float = 0.8
    bagging_freq: int = 1
    lambda_l1: float = 0.0
    lambda_l2: float = 1.0
    max_bin: int = 255
    extra: dict[str, Scalar] = Field(default_factory=dict)


class LgbmParams(LgbmBoosting):
    objective: Literal["regression", "huber", "regression_l1", "fair"] = "regression"


class XgbBoosting(EarlyStopping):
    """XGBoost's settings apart from the objective (the ordinal kind fixes its own)."""

    learning_rate: float = 0.03
    max_depth: int = 6
    min_child_weight: float = 1.0
    subsample: float = 0.8
    colsample_bytree: float = 0.8
    reg_lambda: float = 1.0
    reg_alpha: float = 0.0
    max_bin: int = 256
    extra: dict[str, Scalar] = Field(default_factory=dict)


class XgbParams(XgbBoosting):
    objective: Literal["reg:squarederror", "reg:pseudohubererror", "reg:absoluteerror"] = (
        "reg:squarederror"
    )


class LgbmConfig(TabularConfig):
    kind: Literal["lgbm"] = "lgbm"
    params: LgbmParams = LgbmParams()


class XgbConfig(TabularConfig):
    kind: Literal["xgb"] = "xgb"
    params: XgbParams = XgbParams()


class OrdinalSettings(StrictModel):
    """Where prompts have their own scales: at most this many classes (quantile bins of the
    normalised targets). On one global scale the classes are its levels."""

    max_classes: int = Field(default=10, ge=2)


class LgbmOrdinalConfig(TabularConfig):
    kind: Literal["lgbm_ordinal"] = "lgbm_ordinal"
    params: LgbmBoosting = LgbmBoosting()
    ordinal: OrdinalSettings = OrdinalSettings()


class XgbOrdinalConfig(TabularConfig):
    kind: Literal["xgb_ordinal"] = "xgb_ordinal"
    params: XgbBoosting = XgbBoosting()
    ordinal: OrdinalSettings = OrdinalSettings()


def inner_split(
    y: np.ndarray, prompts: np.ndarray, fraction: float, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Seeded (fit rows, stopping rows) of the training rows: stratified by prompt and score
    decile where every stratum has two rows, else by score decile, else plain random."""
    if not 0 < fraction < 1:
        raise AesError(f"valid_fraction {fraction} must lie strictly between 0 and 1")
    rows = np.arange(len(y))
    bins = np.rint(np.asarray(y) * 10).astype(np.int64).astype(str)
    by_prompt = np.asarray([f"{p}|{b}" for p, b in zip(prompts, bins, strict=True)])
    for strata in (by_prompt, bins, None):
        try:
            fit_rows, stop_rows = train_test_split(
                rows, test_size=fraction, random_state=seed, stratify=strata
            )
        except ValueError:
            continue
        return np.sort(fit_rows), np.sort(stop_rows)
    raise AesError(f"cannot split {len(y)} training rows for early stopping")


@register
class LgbmLearner(TabularLearner):
    kind = "lgbm"
    config_model = LgbmConfig
    config: LgbmConfig
    MODEL = "model.lgb.txt"

    booster: lgb.Booster

    def _native_params(self) -> dict[str, Scalar]:
        return lgbm_params(self.config.params, self.config.seed, self.config.params.objective)

    def _fit_matrix(self, x: Matrix, y: np.ndarray, train: Essays) -> None:
        p = self.config.params
        rows = inner_split(y, train.prompts, p.valid_fraction, self.config.seed)
        self.booster = lgbm_train(self._native_params(), x, y, rows, p)

    def _predict_matrix(self, x: Matrix) -> np.ndarray:
        return np.asarray(self.booster.predict(x, num_threads=self.config.params.n_jobs))

    def _save_model(self, directory: Path) -> None:
        with atomic_path(directory / self.MODEL) as tmp:
            self.booster.save_model(tmp)

    def _load_model(self, directory: Path) -> None:
        self.booster = lgbm_load(model_file(directory, self.MODEL))


def lgbm_params(p: LgbmBoosting, seed: int, objective: str) -> dict[str, Scalar]:
    """LightGBM's native parameters: deterministic, ``p.n_jobs`` threads."""
    return {
        "objective": objective,
        "learning_rate": p.learning_rate,
        "num_leaves": p.num_leaves,
        "max_depth": p.max_depth,
        "min_child_samples": p.min_child_samples,
        "feature_fraction": p.feature_fraction,
        "bagging_fraction": p.bagging_fraction,
        "bagging_freq": p.bagging_freq,
        "lambda_l1": p.lambda_l1,
        "lambda_l2": p.lambda_l2,
        "max_bin": p.max_bin,
        "seed": seed,
        "num_threads": p.n_jobs,
        "deterministic": True,
        "force_row_wise": True,
        "verbosity": -1,
        **p.extra,
    }


def lgbm_train(
    params: dict[str, Scalar],
    x: Matrix,
    y: np.ndarray,
    rows: tuple[np.ndarray, np.ndarray],
    p: EarlyStopping,
) -> lgb.Booster:
    """Early stopping on the inner split ``rows`` (fit, stop), then (``refit_full``) all rows
    for the best number of rounds; returned as parsed from its own text, as a load would."""
    fit_rows, stop_rows = rows
    dfit = lgb.Dataset(x[fit_rows], y[fit_rows], params=params, free_raw_data=False)
    dstop = lgb.Dataset(x[stop_rows], y[stop_rows], reference=dfit)
    with lightgbm_stderr():
        booster = lgb.train(
            params,
            dfit,
            num_boost_round=p.n_estimators,
            valid_sets=[dstop],
            callbacks=[lgb.early_stopping(p.early_stopping_rounds, verbose=False)],
        )
        rounds = booster.best_iteration or p.n_estimators
        if p.refit_full:
            booster = lgb.train(params, lgb.Dataset(x, y, params=params), num_boost_round=rounds)
        return lgb.Booster(model_str=booster.model_to_string(num_iteration=rounds))


def lgbm_load(path: Path) -> lgb.Booster:
    """A saved LightGBM model; a damaged file fails as our one error line alone."""
    with lightgbm_stderr():
        return lgb.Booster(model_file=path)


@register
class XgbLearner(TabularLearner):
    kind = "xgb"
    config_model = XgbConfig
    config: XgbConfig
    MODEL = "model.xgb.ubj"

    booster: xgb.Booster

    def _native_params(self) -> dict[str, Scalar]:
        return xgb_params(self.config.params, self.config.seed, self.config.params.objective)

    def _fit_matrix(self, x: Matrix, y: np.ndarray, train: Essays) -> None:
        p = self.config.params
        rows = inner_split(y, train.prompts, p.valid_fraction, self.config.seed)
        self.booster = xgb_train(self._native_params(), x, y, rows, p)

    def _predict_matrix(self, x: Matrix) -> np.ndarray:
        return xgb_predict(self.booster, x, self.config.params.n_jobs)

    def _save_model(self, directory: Path) -> None:
        with atomic_path(directory / self.MODEL) as tmp:
            tmp.write_bytes(bytes(self.booster.save_raw("ubj")))

    def _load_model(self, directory: Path) -> None:
        self.booster = xgb_load(model_file(directory, self.MODEL), self.config.params.n_jobs)


def xgb_params(p: XgbBoosting, seed: int, objective: str) -> dict[str, Scalar]:
    """XGBoost's native parameters: ``hist`` trees, ``p.n_jobs`` threads."""
    return {
        "objective": objective,
        "eta": p.learning_rate,
        "max_depth": p.max_depth,
        "min_child_weight": p.min_child_weight,
        "subsample": p.subsample,
        "colsample_bytree": p.colsample_bytree,
        "lambda": p.reg_lambda,
        "alpha": p.reg_alpha,
        "max_bin": p.max_bin,
        "tree_method": "hist",
        "seed": seed,
        "nthread": p.n_jobs,
        "verbosity": 0,
        **p.extra,
    }


def xgb_train(
    params: dict[str, Scalar],
    x: Matrix,
    y: np.ndarray,
    rows: tuple[np.ndarray, np.ndarray],
    p: EarlyStopping,
) -> xgb.Booster:
    """As ``lgbm_train``: early stopping on ``rows``, then the refit; returned as reloaded from
    its UBJSON bytes."""
    fit_rows, stop_rows = rows
    dfit = xgb.DMatrix(x[fit_rows], label=y[fit_rows], nthread=p.n_jobs)
    dstop = xgb.DMatrix(x[stop_rows], label=y[stop_rows], nthread=p.n_jobs)
    booster = xgb.train(
        params,
        dfit,
        num_boost_round=p.n_estimators,
        evals=[(dstop, "stop")],
        early_stopping_rounds=p.early_stopping_rounds,
        verbose_eval=False,
    )
    rounds = booster.best_iteration + 1
    if p.refit_full:
        booster = xgb.train(params, xgb.DMatrix(x, label=y, nthread=p.n_jobs), rounds)
    else:
        booster = booster[:rounds]
    loaded = xgb.Booster(model_file=bytearray(booster.save_raw("ubj")))
    loaded.set_param({"nthread": p.n_jobs})
    return loaded


def xgb_predict(booster: xgb.Booster, x: Matrix, n_jobs: int) -> np.ndarray:
    return np.asarray(booster.predict(xgb.DMatrix(x, nthread=n_jobs)), dtype=np.float64)


def xgb_load(path: Path, n_jobs: int) -> xgb.Booster:
    booster = xgb.Booster(model_file=bytearray(path.read_bytes()))
    booster.set_param({"nthread": n_jobs})
    return booster
