"""Meta-features: the base learners' predictions aligned to the essays, on one 0..1 scale.

Each learner's ``pred`` is normalised per prompt scale (``ScoreScales.normalise``) so ASAP's eight
scales pool into one column; ``proba_*`` columns (global scale only) and extra essay features
(``length_features``: log of the word count) and per-prompt weights (:func:`prompt_interactions`)
are optional. Rows follow the essays' order, so everything downstream works on plain arrays.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import polars as pl

from aes_ensemble.errors import AesError
from aes_ensemble.scales import ScoreScales
from aes_ensemble.store import (
    PredictionSet,
    aligned_rows,
    check_same_folds,
    prediction_digest,
)

LENGTH_FEATURE = "log_words"


@dataclass(frozen=True)
class StackData:
    """Aligned training (and optional test) rows for the stack.

    ``X``/``X_test``: meta-features; ``base``/``base_test``: each learner's ``pred`` on the score
    scale (column ``j`` is ``names[j]``); ``y`` scores; ``folds`` the outer folds taken from the
    OOF files; ``inputs`` what each learner's file was when read (:func:`input_record`) and
    ``data_hash`` the essays' fingerprint, so a stack can later tell that it went stale;
    ``proba_columns`` the ``proba_*`` columns each learner contributes to ``X``;
    ``prompt_levels`` the training prompts that get weights of their own (empty: none).
    """

    names: list[str]
    feature_names: list[str]
    X: np.ndarray
    base: np.ndarray
    y: np.ndarray
    prompts: np.ndarray
    folds: np.ndarray
    scales: ScoreScales
    folds_hash: str
    ids: list[str]
    X_test: np.ndarray | None = None
    base_test: np.ndarray | None = None
    test_ids: list[str] | None = None
    test_prompts: np.ndarray | None = None
    inputs: dict[str, dict[str, str]] = field(default_factory=dict)
    data_hash: str = ""
    proba_columns: dict[str, tuple[str, ...]] = field(default_factory=dict)
    prompt_levels: tuple[str, ...] = ()

    @property
    def n_pred_features(self) -> int:
        """The first ``len(names)`` columns of ``X`` are the normalised preds."""
        return len(self.names)

    def normalised_y(self) -> np.ndarray:
        return self.scales.normalise(self.y, self.prompts)


def input_record(ps: PredictionSet) -> dict[str, str]:
    """What a learner's file was when a stack read it: its config, folds and essays, when it
    was written, and a digest of its predictions (a rewrite with equal predictions keeps it)."""
    return {
        "config_hash": ps.meta.config_hash,
        "folds_hash": ps.meta.folds_hash,
        "data_hash": ps.meta.data_hash,
        "created": ps.meta.created,
        "digest": prediction_digest(ps.frame),
    }


def length_features(texts: Sequence[str]) -> np.ndarray:
    """``log(1 + words)`` per essay: length explains much of a holistic score, on a tame range."""
    return np.log1p(np.asarray([len(t.split()) for t in texts], dtype=float))[:, None]


def build_stack_data(
    sets: Sequence[PredictionSet],
    ids: Sequence[str],
    y: np.ndarray,
    prompts: np.ndarray,
    scales: ScoreScales,
    *,
    test_ids: Sequence[str] | None = None,
    test_prompts: np.ndarray | None = None,
    proba: bool = False,
    extra: np.ndarray | None = None,
    extra_test: np.ndarray | None = None,
    extra_names: Sequence[str] = (),
    prompt_levels: Sequence[str] = (),
    data_hash: str = "",
) -> StackData:
    """Align ``sets`` to the essays and build meta-features; refuse mixed folds or missing rows.
    ``data_hash`` (``data.data_fingerprint`` of the essays) is recorded with the stack."""
    if not sets:
        raise AesError("no base learners to stack")
    names = [ps.name for ps in sets]
    if len(set(names)) != len(names):
        raise AesError(f"base learner names repeat: {', '.join(names)}")
    for ps in sets[1:]:
        check_same_folds(sets[0], ps)
    y = np.asarray(y, dtype=float)
    prompts = np.asarray(prompts, dtype=object)
    oof = [aligned_rows(ps, "oof", ids) for ps in sets]
    folds = oof[0]["fold"].to_numpy().astype(np.int64)
    for ps, frame in zip(sets[1:], oof[1:], strict=True):
        diff = np.flatnonzero(frame["fold"].to_numpy() != folds)
        if len(diff):
            i = int(diff[0])
            raise AesError(
                f"'{ps.name}' puts essay '{ids[i]}' in fold {frame['fold'][i]} but "
                f"'{sets[0].name}' puts it in fold {folds[i]}"
            )
    if len(np.unique(folds)) < 3:
        raise AesError("stacking needs at least 3 folds (nested cross-validation)")
    if proba and scales.is_per_prompt:
        raise AesError("proba features need one global score scale (these scales are per prompt)")
    levels = tuple(prompt_levels)
    base, X, feature_names = _features(
        oof, sets, prompts, scales, proba, extra, extra_names, levels
    )
    base_test = X_test = None
    if test_ids is not None and len(test_ids):
        if extra is not None and extra_test is None:
            raise AesError("extra features are given for training rows but not test rows")
        test_prompts = np.asarray(
            test_prompts if test_prompts is not None else [None] * len(test_ids), dtype=object
        )
        test_frames = [aligned_rows(ps, "test", test_ids) for ps in sets]
        base_test, X_test, _ = _features(
            test_frames, sets, test_prompts, scales, proba, extra_test, extra_names, levels
        )
    return StackData(
        names=names,
        feature_names=feature_names,
        X=X,
        base=base,
        y=y,
        prompts=prompts,
        folds=folds,
        scales=scales,
        folds_hash=sets[0].meta.folds_hash,
        ids=list(ids),
        X_test=X_test,
        base_test=base_test,
        test_ids=None if test_ids is None else list(test_ids),
        test_prompts=test_prompts,
        inputs={ps.name: input_record(ps) for ps in sets},
        data_hash=data_hash,
        proba_columns=proba_columns(sets, proba),
        prompt_levels=levels,
    )


def feature_names(
    names: Sequence[str],
    columns: Mapping[str, Sequence[str]],
    extra_names: Sequence[str],
    prompt_levels: Sequence[str] = (),
) -> list[str]:
    """Names of the meta-feature columns, in the order :func:`meta_features` builds them;
    ``columns``: the ``proba_*`` columns each learner contributes."""
    out = list(names)
    for name in names:
        out.extend(f"{name}:{column}" for column in columns.get(name, ()))
    out.extend(extra_names)
    for level in prompt_levels:
        out.extend(f"{name}|prompt={level}" for name in names)
        out.append(f"prompt={level}")
    return out


def training_prompts(prompts: np.ndarray) -> tuple[str, ...]:
    """The prompts that get weights of their own: every prompt of the training essays, as text."""
    levels = sorted({str(p) for p in prompts if p is not None})
    if not levels:
        raise AesError("prompt_weights needs essays with prompts; these have none", key="features")
    return tuple(levels)


def prompt_interactions(
    norm_preds: np.ndarray, prompts: np.ndarray, levels: Sequence[str]
) -> np.ndarray:
    """For each prompt in ``levels``: every learner's normalised pred on that prompt's rows (0
    elsewhere), then the prompt's indicator. An essay of another prompt has only zeros here, so
    it is scored by the shared weights alone."""
    text = np.asarray([str(p) for p in prompts], dtype=object)
    blocks = []
    for level in levels:
        on = (text == level).astype(float)[:, None]
        blocks.extend([norm_preds * on, on])
    return np.hstack(blocks) if blocks else np.empty((len(prompts), 0))


def essay_features(texts: Sequence[str], length: bool) -> tuple[np.ndarray | None, list[str]]:
    """The extra essay features the stack config asks for, and their names."""
    if not length:
        return None, []
    return length_features(texts), [LENGTH_FEATURE]


def meta_features(
    base: np.ndarray,
    prompts: np.ndarray,
    scales: ScoreScales,
    proba: Sequence[np.ndarray] = (),
    extra: np.ndarray | None = None,
    prompt_levels: Sequence[str] = (),
) -> np.ndarray:
    """The meta-feature matrix: each learner's ``pred`` normalised per scale, then the proba
    blocks (one per learner, in learner order), then the essay features, then the per-prompt
    weights. Training rows, test rows and a saved stack scoring new essays all go through
    here, so they cannot drift."""
    norm = _normalised(base, prompts, scales)
    blocks = [norm, *proba]
    if extra is not None:
        blocks.append(np.asarray(extra, dtype=float).reshape(len(base), -1))
    if prompt_levels:
        blocks.append(prompt_interactions(norm, prompts, prompt_levels))
    return np.hstack(blocks)


def _features(
    frames: Sequence[pl.DataFrame],
    sets: Sequence[PredictionSet],
    prompts: np.ndarray,
    scales: ScoreScales,
    proba: bool,
    extra: np.ndarray | None,
    extra_names: Sequence[str],
    prompt_levels: Sequence[str],
) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Score-scale preds, the meta-feature matrix and its column names for aligned rows."""
    base = np.column_stack([f["pred"].to_numpy() for f in frames])
    columns = proba_columns(sets, proba)
    blocks = [
        frame.select(columns[ps.name]).to_numpy().astype(float)
        for ps, frame in zip(sets, frames, strict=True)
        if columns.get(ps.name)
    ]
    X = meta_features(base, prompts, scales, blocks, extra, prompt_levels)
    names = feature_names([ps.name for ps in sets], columns, extra_names, prompt_levels)
    if X.shape[1] != len(names):
        raise AesError(f"{X.shape[1]} meta-features but {len(names)} feature names")
    return base, X, names


def proba_columns(sets: Sequence[PredictionSet], proba: bool) -> dict[str, tuple[str, ...]]:
    """The ``proba_*`` columns each learner contributes (none unless ``proba``)."""
    if not proba:
        return {}
    return {ps.name: tuple(ps.proba_columns) for ps in sets if ps.proba_columns}


def _normalised(base: np.ndarray, prompts: np.ndarray, scales: ScoreScales) -> np.ndarray:
    return np.column_stack([scales.normalise(base[:, j], prompts) for j in range(base.shape[1])])
