"""A fitted meta-learner in a safe file format, and back.

Linear models (ridge, nnls, hill, mean, linear class-path regressors) are their weights in
JSON; LightGBM is its own model text; the vote is its per-learner cut points in JSON. Any other
scikit-learn regressor goes through skops (the optional ``skops`` extra), loaded with a
trusted-types list that admits scikit-learn's own types only. Nothing is pickled, so loading a
stranger's stack cannot run code. A fitted state none of these can hold is refused when the
stack is made.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Annotated, Any, Literal

import numpy as np
from pydantic import Field

from aes_ensemble.config import StrictModel
from aes_ensemble.errors import AesError
from aes_ensemble.io import atomic_path
from aes_ensemble.stacking.meta import majority_vote
from aes_ensemble.thresholds import Thresholds

FILES = {"lightgbm": "meta_lgbm.txt", "skops": "meta.skops"}
# A class-path meta-learner is stored as weights only when its predictions are X @ coef + b
# to this tolerance on the rows it was fitted on; a skops copy must predict them exactly.
_LINEAR_TOLERANCE = 1e-9
# Modules whose types a skops file may hold: scikit-learn's estimators and their parts.
_SKOPS_TRUSTED_PREFIX = "sklearn."
_INSTALL_SKOPS = "pip install 'aes-ensemble[skops]'"


@dataclass(frozen=True, eq=False)
class LinearMeta:
    """``X @ coef + intercept``."""

    coef: np.ndarray
    intercept: float

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, LinearMeta):
            return NotImplemented
        return self.intercept == other.intercept and np.array_equal(self.coef, other.coef)

    __hash__ = None  # type: ignore[assignment]

    def predict(self, X: np.ndarray) -> np.ndarray:
        return X @ self.coef + self.intercept


@dataclass(frozen=True)
class LightGBMMeta:
    """A LightGBM booster, kept as LightGBM's own model text (parsed once, on first use)."""

    text: str

    @cached_property
    def _booster(self) -> Any:
        import lightgbm

        return lightgbm.Booster(model_str=self.text)

    def predict(self, X: np.ndarray) -> np.ndarray:
        return np.asarray(self._booster.predict(X), dtype=float)

    def payload(self) -> bytes:
        return self.text.encode("utf-8")


@dataclass(frozen=True)
class VoteMeta:
    """Majority vote over the base learners' levels, each cut by its own final cut points."""

    level_cuts: tuple[Thresholds, ...]

    def predict(self, X: np.ndarray) -> np.ndarray:
        return majority_vote(X)


@dataclass(frozen=True)
class SkopsMeta:
    """Any other scikit-learn regressor, as a skops file and the estimator it loads to."""

    blob: bytes
    estimator: Any

    def predict(self, X: np.ndarray) -> np.ndarray:
        return np.asarray(self.estimator.predict(X), dtype=float)

    def payload(self) -> bytes:
        return self.blob


SavedMeta = LinearMeta | LightGBMMeta | VoteMeta | SkopsMeta


def capture_meta(estimator: Any, X: np.ndarray, what: str) -> SavedMeta:
    """The fitted state of ``estimator`` (fitted on ``X``) in a safe form: a LightGBM booster's
    text, a linear model's weights (checked to predict ``X``), or a scikit-learn estimator's
    skops file (checked to load back and predict ``X`` the same); else an ``AesError``."""
    booster = getattr(estimator, "booster_", None)
    if booster is not None and type(booster).__module__.startswith("lightgbm"):
        return LightGBMMeta(booster.model_to_string())
    expected = np.asarray(estimator.predict(X), dtype=float)
    coef = np.asarray(getattr(estimator, "coef_", np.empty(0)), dtype=float)
    intercept = np.asarray(getattr(estimator, "intercept_", np.nan), dtype=float).ravel()
    if coef.shape == (X.shape[1],) and intercept.size == 1:
        linear = LinearMeta(coef, float(intercept[0]))
        if np.allclose(linear.predict(X), expected, rtol=0.0, atol=_LINEAR_TOLERANCE):
            return linear
    refused = (
        f"the meta-learner '{what}' cannot be saved safely (it is not linear, and nothing is "
        "pickled)"
    )
    if not type(estimator).__module__.startswith(_SKOPS_TRUSTED_PREFIX):
        raise AesError(
            f"{refused}; use a scikit-learn class, lightgbm.LGBMRegressor or a built-in meta",
            key="meta",
        )
    sio = _skops(f"{refused}; install skops to keep it ({_INSTALL_SKOPS}) or use a linear class")
    blob = sio.dumps(estimator)
    saved = SkopsMeta(blob, _load_skops(blob, None))
    if not np.array_equal(saved.predict(X), expected):
        raise AesError(f"{refused}; its skops copy predicts differently", key="meta")
    return saved


class LinearState(StrictModel):
    kind: Literal["linear"]
    coef: list[float]
    intercept: float


class FileState(StrictModel):
    kind: Literal["lightgbm", "skops"]
    file: str
    sha256: str


class VoteState(StrictModel):
    kind: Literal["vote"]
    level_cuts: list[dict[str, Any]]


MetaState = Annotated[LinearState | FileState | VoteState, Field(discriminator="kind")]


def save_meta(meta: SavedMeta, directory: Path) -> dict[str, Any]:
    """Write the meta-learner's file (if it has one) into ``directory``; returns its JSON
    record for ``stack.json`` (with the file's SHA-256, so damage is caught on load)."""
    if isinstance(meta, LinearMeta):
        return {
            "kind": "linear",
            "coef": [float(c) for c in meta.coef],
            "intercept": float(meta.intercept),
        }
    if isinstance(meta, VoteMeta):
        return {"kind": "vote", "level_cuts": [t.to_dict() for t in meta.level_cuts]}
    kind = "lightgbm" if isinstance(meta, LightGBMMeta) else "skops"
    payload = meta.payload()
    with atomic_path(directory / FILES[kind]) as tmp:
        tmp.write_bytes(payload)
    return {"kind": kind, "file": FILES[kind], "sha256": hashlib.sha256(payload).hexdigest()}


def load_meta(state: LinearState | FileState | VoteState, directory: Path) -> SavedMeta:
    """The meta-learner a ``stack.json`` record describes, its file checked against the record."""
    if isinstance(state, LinearState):
        if not np.isfinite(state.coef).all() or not np.isfinite(state.intercept):
            raise AesError("the meta-learner's weights are not finite", key="meta.coef")
        return LinearMeta(np.asarray(state.coef, dtype=float), state.intercept)
    if isinstance(state, VoteState):
        return VoteMeta(tuple(_thresholds(t) for t in state.level_cuts))
    if state.file != FILES[state.kind]:
        raise AesError(f"a {state.kind} meta-learner is kept in {FILES[state.kind]}", key="meta")
    path = directory / state.file
    try:
        payload = path.read_bytes()
    except OSError as exc:
        raise AesError(f"cannot read the meta-learner ({exc.strerror or exc})", path=path) from None
    if hashlib.sha256(payload).hexdigest() != state.sha256:
        raise AesError("the meta-learner file was changed or truncated", path=path)
    if state.kind == "lightgbm":
        try:
            return LightGBMMeta(payload.decode("utf-8"))
        except UnicodeDecodeError as exc:
            raise AesError(f"is not LightGBM model text ({exc})", path=path) from None
    return SkopsMeta(payload, _load_skops(payload, path))


class MissingSkopsError(AesError):
    """skops is not installed: the stack is fine, the environment lacks the extra."""


def _skops(refusal: str) -> Any:
    try:
        import skops.io as sio
    except ImportError:
        raise MissingSkopsError(refusal, key="meta") from None
    return sio


def _load_skops(blob: bytes, path: Path | None) -> Any:
    """The estimator in a skops file, trusting scikit-learn's types only."""
    sio = _skops(f"this stack's meta-learner is a skops file; install skops ({_INSTALL_SKOPS})")
    try:
        untrusted = sio.get_untrusted_types(data=blob)
        foreign = [t for t in untrusted if not t.startswith(_SKOPS_TRUSTED_PREFIX)]
        if foreign:
            raise AesError(
                f"the skops file holds type '{foreign[0]}', which is not trusted (only "
                f"{_SKOPS_TRUSTED_PREFIX}* types are)",
                path=path,
            )
        return sio.loads(blob, trusted=untrusted)
    except AesError:
        raise
    except Exception as exc:  # skops raises many kinds on a damaged file; all mean the same
        raise AesError(f"is not a readable skops file ({type(exc).__name__})", path=path) from None


def _thresholds(data: dict[str, Any]) -> Thresholds:
    try:
        return Thresholds.from_dict(data)
    except AesError as exc:
        raise AesError(exc.message, key="meta.level_cuts") from None
