"""Ridge and SVR (scikit-learn) on embeddings and/or TF-IDF, saved without pickle.

scikit-learn has no native model format, so each model is reduced to the arrays that define its
prediction (Ridge: coefficients and intercept; SVR: support vectors, dual coefficients,
intercept and the resolved kernel parameters) in a safetensors file plus JSON. Predictions are
always computed from those arrays, after fit as after load, so a loaded model predicts bit for
bit what the fitted one did.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal

import numpy as np
import scipy.sparse as sp
from safetensors.numpy import load_file, save_file
from sklearn.linear_model import Ridge
from sklearn.metrics.pairwise import (
    linear_kernel,
    polynomial_kernel,
    rbf_kernel,
    sigmoid_kernel,
)
from sklearn.svm import SVR

from aes_ensemble.config import StrictModel
from aes_ensemble.data import Essays
from aes_ensemble.io import atomic_path, write_json_atomic
from aes_ensemble.learners.registry import register
from aes_ensemble.learners.tabular import Matrix, TabularConfig, TabularLearner, model_file

PREDICT_BATCH = 2048  # rows per kernel block: bounds memory to batch x support vectors


class RidgeParams(StrictModel):
    alpha: float = 1.0
    fit_intercept: bool = True
    solver: Literal["auto", "cholesky", "lsqr", "sparse_cg", "svd"] = "auto"


class SvrParams(StrictModel):
    kernel: Literal["rbf", "linear", "poly", "sigmoid"] = "rbf"
    C: float = 1.0
    epsilon: float = 0.05
    gamma: Literal["scale", "auto"] | float = "scale"
    degree: int = 3
    coef0: float = 0.0
    tol: float = 1e-3
    cache_size: float = 500.0
    max_iter: int = -1


class RidgeConfig(TabularConfig):
    kind: Literal["ridge"] = "ridge"
    params: RidgeParams = RidgeParams()


class SvrConfig(TabularConfig):
    kind: Literal["svr"] = "svr"
    params: SvrParams = SvrParams()


def _save_arrays(directory: Path, name: str, arrays: dict[str, np.ndarray]) -> None:
    with atomic_path(directory / name) as tmp:
        save_file({k: np.ascontiguousarray(v) for k, v in arrays.items()}, str(tmp))


def _sparse_arrays(prefix: str, matrix: Matrix) -> dict[str, np.ndarray]:
    """A matrix as named arrays: dense as is, CSR as its data/indices/indptr/shape."""
    if sp.issparse(matrix):
        csr = sp.csr_matrix(matrix)
        return {
            f"{prefix}.data": csr.data,
            f"{prefix}.indices": csr.indices.astype(np.int64),
            f"{prefix}.indptr": csr.indptr.astype(np.int64),
            f"{prefix}.shape": np.asarray(csr.shape, dtype=np.int64),
        }
    return {prefix: np.asarray(matrix)}


def _matrix_from(prefix: str, arrays: dict[str, np.ndarray]) -> Matrix:
    if prefix in arrays:
        return arrays[prefix]
    shape = tuple(int(n) for n in arrays[f"{prefix}.shape"])
    return sp.csr_matrix(
        (arrays[f"{prefix}.data"], arrays[f"{prefix}.indices"], arrays[f"{prefix}.indptr"]),
        shape=shape,
    )


@register
class RidgeLearner(TabularLearner):
    kind = "ridge"
    config_model = RidgeConfig
    config: RidgeConfig
    MODEL = "ridge.safetensors"

    coef: np.ndarray
    intercept: float

    def _fit_matrix(self, x: Matrix, y: np.ndarray, train: Essays) -> None:
        p = self.config.params
        model = Ridge(
            alpha=p.alpha,
            fit_intercept=p.fit_intercept,
            solver=p.solver,
            random_state=self.config.seed,
        )
        model.fit(x, y)
        self.coef = np.asarray(model.coef_, dtype=np.float64).ravel()
        self.intercept = float(np.asarray(model.intercept_).ravel()[0]) if p.fit_intercept else 0.0

    def _predict_matrix(self, x: Matrix) -> np.ndarray:
        return np.asarray(x @ self.coef, dtype=np.float64).ravel() + self.intercept

    def _save_model(self, directory: Path) -> None:
        arrays = {"coef": self.coef, "intercept": np.asarray([self.intercept])}
        _save_arrays(directory, self.MODEL, arrays)

    def _load_model(self, directory: Path) -> None:
        arrays = load_file(str(model_file(directory, self.MODEL)))
        self.coef = arrays["coef"]
        self.intercept = float(arrays["intercept"][0])


@register
class SvrLearner(TabularLearner):
    kind = "svr"
    config_model = SvrConfig
    config: SvrConfig
    MODEL = "svr.safetensors"
    KERNEL = "svr_kernel.json"

    support_vectors: Matrix
    dual_coef: np.ndarray
    intercept: float
    kernel: dict[str, Any]

    def _fit_matrix(self, x: Matrix, y: np.ndarray, train: Essays) -> None:
        p = self.config.params
        model = SVR(
            kernel=p.kernel,
            C=p.C,
            epsilon=p.epsilon,
            gamma=p.gamma,
            degree=p.degree,
            coef0=p.coef0,
            tol=p.tol,
            cache_size=p.cache_size,
            max_iter=p.max_iter,
        )
        model.fit(x, y)
        self.support_vectors = model.support_vectors_
        dual = model.dual_coef_  # sparse when the features are
        dual = dual.toarray() if sp.issparse(dual) else dual
        self.dual_coef = np.asarray(dual, dtype=np.float64).ravel()
        self.intercept = float(model.intercept_[0])
        # `_gamma` is the value "scale"/"auto" resolved to on the training rows.
        self.kernel = {
            "kernel": p.kernel,
            "gamma": float(model._gamma),
            "degree": p.degree,
            "coef0": p.coef0,
        }

    def _kernel(self, x: Matrix) -> np.ndarray:
        k, sv = self.kernel, self.support_vectors
        if k["kernel"] == "rbf":
            return rbf_kernel(x, sv, gamma=k["gamma"])
        if k["kernel"] == "linear":
            return linear_kernel(x, sv)
        if k["kernel"] == "poly":
            return polynomial_kernel(x, sv, degree=k["degree"], gamma=k["gamma"], coef0=k["coef0"])
        return sigmoid_kernel(x, sv, gamma=k["gamma"], coef0=k["coef0"])

    def _predict_matrix(self, x: Matrix) -> np.ndarray:
        out = np.empty(x.shape[0], dtype=np.float64)
        for start in range(0, x.shape[0], PREDICT_BATCH):
            block = x[start : start + PREDICT_BATCH]
            out[start : start + PREDICT_BATCH] = self._kernel(block) @ self.dual_coef
        return out + self.intercept

    def _save_model(self, directory: Path) -> None:
        arrays = {
            **_sparse_arrays("support_vectors", self.support_vectors),
            "dual_coef": self.dual_coef,
            "intercept": np.asarray([self.intercept]),
        }
        _save_arrays(directory, self.MODEL, arrays)
        write_json_atomic(directory / self.KERNEL, self.kernel)

    def _load_model(self, directory: Path) -> None:
        arrays = load_file(str(model_file(directory, self.MODEL)))
        self.support_vectors = _matrix_from("support_vectors", arrays)
        self.dual_coef = arrays["dual_coef"]
        self.intercept = float(arrays["intercept"][0])
        self.kernel = json.loads(model_file(directory, self.KERNEL).read_text(encoding="utf-8"))
