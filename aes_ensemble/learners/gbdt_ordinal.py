"""The ordinal view of the GBDTs (kinds ``lgbm_ordinal``, ``xgb_ordinal``): one binary booster
per cut point estimates ``P(y > cut)`` (Frank & Hall 2001), on the same features, inner split
and early stopping as the regressors. ``pred`` is the expected value over the classes; on one
global scale the class probabilities go to the store as ``proba_<level>`` (see ``ordinal``).

Saved as one native booster file per cut (LightGBM text, XGBoost UBJSON) plus ``ordinal.json``
(the classes, and the constant ``P(y > cut)`` of a cut all training rows fall on one side of).
"""

from __future__ import annotations

import json
from abc import abstractmethod
from pathlib import Path
from typing import Any

import lightgbm as lgb
import numpy as np
import xgboost as xgb

from aes_ensemble.data import Essays
from aes_ensemble.errors import AesError
from aes_ensemble.io import atomic_path, write_json_atomic
from aes_ensemble.learners.gbdt import (
    LgbmOrdinalConfig,
    XgbOrdinalConfig,
    inner_split,
    lgbm_load,
    lgbm_params,
    lgbm_train,
    xgb_load,
    xgb_params,
    xgb_predict,
    xgb_train,
)
from aes_ensemble.learners.ordinal import OrdinalClasses, class_proba, ordinal_classes
from aes_ensemble.learners.registry import register
from aes_ensemble.learners.tabular import Matrix, TabularLearner, model_file
from aes_ensemble.store import Prediction

ORDINAL = "ordinal.json"


class OrdinalGbdt(TabularLearner):
    """Cumulative binary boosters; subclasses own only the library calls."""

    config: LgbmOrdinalConfig | XgbOrdinalConfig
    SUFFIX: str
    classes: OrdinalClasses
    boosters: list[Any]  # a booster per cut, or a float: a constant P(y > cut)

    def _fit_matrix(self, x: Matrix, y: np.ndarray, train: Essays) -> None:
        self.classes = ordinal_classes(y, self.scales, self.config.ordinal.max_classes)
        p = self.config.params
        rows = inner_split(y, train.prompts, p.valid_fraction, self.config.seed)
        self.boosters = []
        for cut in self.classes.cuts:
            above = (y > cut).astype(np.float64)
            if above.min() == above.max():
                self.boosters.append(float(above[0]))
            else:
                self.boosters.append(self._train_binary(x, above, rows))

    def _above(self, x: Matrix) -> np.ndarray:
        """``P(y > cut)`` per essay (rows) and cut (columns)."""
        columns = [
            np.full(x.shape[0], b) if isinstance(b, float) else self._predict_booster(b, x)
            for b in self.boosters
        ]
        return np.column_stack(columns) if columns else np.empty((x.shape[0], 0))

    def _predict_matrix(self, x: Matrix) -> np.ndarray:
        return class_proba(self._above(x)) @ self.classes.values

    def predict(self, essays: Essays) -> Prediction:
        """With class labels (one global scale): the expected score and the class
        probabilities; otherwise the expected score alone, as a regressor's."""
        if self.members or self.pipeline is None or not self.classes.labels:
            return super().predict(essays)
        proba = class_proba(self._above(self.pipeline.transform(essays)))
        pred = self.scales.denormalise(proba @ self.classes.values, essays.prompts)
        return Prediction(pred, proba, self.classes.labels)

    def _save_model(self, directory: Path) -> None:
        constants: list[float | None] = []
        for j, booster in enumerate(self.boosters):
            if isinstance(booster, float):
                constants.append(booster)
                continue
            constants.append(None)
            with atomic_path(directory / f"cut_{j}{self.SUFFIX}") as tmp:
                self._write_booster(booster, tmp)
        write_json_atomic(directory / ORDINAL, {**self.classes.to_dict(), "constants": constants})

    def _load_model(self, directory: Path) -> None:
        data = json.loads(model_file(directory, ORDINAL).read_text(encoding="utf-8"))
        try:
            self.classes = OrdinalClasses.from_dict(data)
            constants = list(data["constants"])
        except (KeyError, TypeError, ValueError) as exc:
            raise AesError(f"is not an ordinal model record ({exc}): refit the fold") from None
        if len(constants) != len(self.classes.cuts):
            raise AesError("has a constant per cut missing: refit the fold", path=directory)
        self.boosters = [
            float(c)
            if c is not None
            else self._read_booster(model_file(directory, f"cut_{j}{self.SUFFIX}"))
            for j, c in enumerate(constants)
        ]

    @abstractmethod
    def _train_binary(
        self, x: Matrix, above: np.ndarray, rows: tuple[np.ndarray, np.ndarray]
    ) -> Any: ...

    @abstractmethod
    def _predict_booster(self, booster: Any, x: Matrix) -> np.ndarray: ...

    @abstractmethod
    def _write_booster(self, booster: Any, path: Path) -> None: ...

    @abstractmethod
    def _read_booster(self, path: Path) -> Any: ...


@register
class LgbmOrdinalLearner(OrdinalGbdt):
    kind = "lgbm_ordinal"
    config_model = LgbmOrdinalConfig
    config: LgbmOrdinalConfig
    SUFFIX = ".lgb.txt"

    def _train_binary(
        self, x: Matrix, above: np.ndarray, rows: tuple[np.ndarray, np.ndarray]
    ) -> lgb.Booster:
        p = self.config.params
        return lgbm_train(lgbm_params(p, self.config.seed, "binary"), x, above, rows, p)

    def _predict_booster(self, booster: lgb.Booster, x: Matrix) -> np.ndarray:
        n_jobs = self.config.params.n_jobs
        return np.asarray(booster.predict(x, num_threads=n_jobs), dtype=np.float64)

    def _write_booster(self, booster: lgb.Booster, path: Path) -> None:
        booster.save_model(path)

    def _read_booster(self, path: Path) -> lgb.Booster:
        return lgbm_load(path)


@register
class XgbOrdinalLearner(OrdinalGbdt):
    kind = "xgb_ordinal"
    config_model = XgbOrdinalConfig
    config: XgbOrdinalConfig
    SUFFIX = ".xgb.ubj"

    def _train_binary(
        self, x: Matrix, above: np.ndarray, rows: tuple[np.ndarray, np.ndarray]
    ) -> xgb.Booster:
        p = self.config.params
        return xgb_train(xgb_params(p, self.config.seed, "binary:logistic"), x, above, rows, p)

    def _predict_booster(self, booster: xgb.Booster, x: Matrix) -> np.ndarray:
        return xgb_predict(booster, x, self.config.params.n_jobs)

    def _write_booster(self, booster: xgb.Booster, path: Path) -> None:
        path.write_bytes(bytes(booster.save_raw("ubj")))

    def _read_booster(self, path: Path) -> xgb.Booster:
        return xgb_load(path, self.config.params.n_jobs)
