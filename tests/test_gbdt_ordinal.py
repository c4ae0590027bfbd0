"""The ordinal (cumulative) view of the GBDTs: classes, probabilities, the expected value, and
the learners on the embedded ELLIPSE sample and on two prompts with their own scales."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pytest

from aes_ensemble.config import validate
from aes_ensemble.data import Essays, read_essays
from aes_ensemble.learners import learner_class
from aes_ensemble.learners.ordinal import class_proba, ordinal_classes
from aes_ensemble.sample import TRAIN, sample_path
from aes_ensemble.scales import ScoreScale, ScoreScales
from aes_ensemble.store import prediction_frame, validate_frame


def test_class_proba_differences_monotone_cumulative_probabilities() -> None:
    above = np.array([[0.9, 0.6, 0.2], [0.3, 0.5, 0.1], [1.2, -0.1, 0.0]])
    proba = class_proba(above)
    # Row 1 crosses (P(y > c2) > P(y > c1)): made monotone, 0.5 -> 0.3.
    expected = np.array([[0.1, 0.3, 0.4, 0.2], [0.7, 0.0, 0.2, 0.1], [0.0, 1.0, 0.0, 0.0]])
    np.testing.assert_allclose(proba, expected, atol=1e-12)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, atol=1e-12)


def test_classes_are_the_levels_of_a_global_scale() -> None:
    scales = ScoreScales(default=ScoreScale(1, 3, 0.5))
    classes = ordinal_classes(np.array([0.0, 0.5, 1.0]), scales, max_classes=3)
    np.testing.assert_allclose(classes.values, [0, 0.25, 0.5, 0.75, 1])
    np.testing.assert_allclose(classes.cuts, [0.125, 0.375, 0.625, 0.875])
    assert classes.labels == ("1", "1.5", "2", "2.5", "3")


def test_classes_on_per_prompt_scales_are_target_runs_at_most_max_classes() -> None:
    scales = ScoreScales(per_prompt={"a": ScoreScale(0, 3), "b": ScoreScale(0, 60)})
    y = np.array([0, 1 / 3, 1 / 3, 2 / 3, 1.0])
    few = ordinal_classes(y, scales, max_classes=10)
    np.testing.assert_allclose(few.cuts, [1 / 6, 0.5, 5 / 6])
    np.testing.assert_allclose(few.values, [0, 1 / 3, 2 / 3, 1])
    assert few.labels == ()
    y = np.arange(61) / 60
    binned = ordinal_classes(y, scales, max_classes=4)
    assert len(binned.values) == 4
    groups = np.searchsorted(binned.cuts, y)
    assert np.bincount(groups).tolist() == [16, 15, 15, 15]  # quantile edges 15/60, 30/60, ..
    np.testing.assert_allclose(binned.values, [y[groups == g].mean() for g in range(4)])


@pytest.fixture(scope="module")
def sample() -> Essays:
    return read_essays(sample_path(TRAIN)).take(np.arange(200))


def make(kind: str, essays: Essays, cache: Path, **ordinal: Any) -> Any:
    cls = learner_class(kind)
    data = {
        "kind": kind,
        "seed": 3,
        "features": {"handcrafted": True},
        "params": {"n_estimators": 200, "learning_rate": 0.1, "early_stopping_rounds": 20},
        "ordinal": ordinal,
    }
    return cls(validate(cls.config_model, data), essays.scales, cache)


@pytest.mark.parametrize("kind", ["lgbm_ordinal", "xgb_ordinal"])
def test_global_scale_gives_level_probabilities_and_their_expected_value(
    kind: str, sample: Essays, tmp_path: Path
) -> None:
    rows = np.arange(len(sample))
    train, valid = sample.take(rows[rows % 4 != 0]), sample.take(rows[rows % 4 == 0])
    learner = make(kind, train, tmp_path / "cache").fit(train)
    p = learner.predict(valid)
    scale = sample.scales.default
    assert p.proba is not None and p.proba.shape == (len(valid), scale.n_levels)
    assert p.proba_labels == tuple(scale.label(level) for level in scale.levels)
    assert (p.proba >= 0).all()
    np.testing.assert_allclose(p.proba.sum(axis=1), 1.0, atol=1e-12)
    np.testing.assert_allclose(p.pred, p.proba @ scale.levels, atol=1e-12)
    assert np.corrcoef(p.pred, valid.scores)[0, 1] > 0.3  # real signal on unseen essays
    # The store takes them as proba_<level> columns.
    ids = valid.ids
    frame = prediction_frame(
        ids, ["oof"] * len(ids), p.pred, fold=[0] * len(ids), proba=p.proba,
        proba_labels=p.proba_labels,
    )  # fmt: skip
    validate_frame(frame)
    assert "proba_4.5" in frame.columns
    learner.save(tmp_path / "model")
    loaded = type(learner).load(tmp_path / "model", learner.config, train.scales, tmp_path / "c")
    again = loaded.predict(valid)
    assert np.array_equal(again.pred, p.pred) and np.array_equal(again.proba, p.proba)


def test_per_prompt_members_on_one_global_scale_keep_the_level_probabilities(
    tmp_path: Path,
) -> None:
    essays = read_essays(sample_path(TRAIN))
    three = np.flatnonzero(np.isin(essays.prompts, sorted(set(essays.prompts))[:3]))
    train, test = essays.take(three[three % 4 != 0]), essays.take(three[three % 4 == 0])
    cls = learner_class("lgbm_ordinal")
    config = validate(
        cls.config_model,
        {
            "kind": "lgbm_ordinal",
            "per_prompt": True,
            "features": {"handcrafted": True},
            "params": {"n_estimators": 30, "learning_rate": 0.1, "early_stopping_rounds": 10},
        },
    )
    learner = cls(config, train.scales, tmp_path / "cache").fit(train)
    assert len(learner.members) == 3
    p = learner.predict(test)
    scale = essays.scales.default
    assert p.proba is not None and p.proba.shape == (len(test), scale.n_levels)
    assert p.proba_labels == tuple(scale.label(level) for level in scale.levels)
    np.testing.assert_allclose(p.proba.sum(axis=1), 1.0, atol=1e-12)
    np.testing.assert_allclose(p.pred, p.proba @ scale.levels, atol=1e-12)
    for prompt, member in learner.members.items():
        rows = np.flatnonzero(test.prompts == prompt)
        assert np.array_equal(p.proba[rows], member.predict(test.take(rows)).proba)
    learner.save(tmp_path / "model")
    loaded = cls.load(tmp_path / "model", config, train.scales, tmp_path / "cache")
    again = loaded.predict(test)
    assert again.proba is not None and np.array_equal(again.proba, p.proba)


def test_per_prompt_scales_give_the_expected_value_alone(sample: Essays, tmp_path: Path) -> None:
    prompt = np.where(np.arange(len(sample)) % 2 == 0, "a", "b")
    score = np.where(prompt == "a", sample.scores, (sample.scores - 1) * 2)
    frame = sample.frame.with_columns(pl.Series("prompt", prompt), pl.Series("score", score))
    scales = ScoreScales(per_prompt={"a": ScoreScale(1, 5, 0.5), "b": ScoreScale(0, 8, 1)})
    essays = Essays(frame, scales)
    rows = np.arange(len(essays))
    train, test = essays.take(rows[rows % 4 > 1]), essays.take(rows[rows % 4 <= 1])
    learner = make("lgbm_ordinal", train, tmp_path / "cache", max_classes=4).fit(train)
    assert set(learner.members) == {"a", "b"}
    assert all(len(m.classes.values) <= 4 for m in learner.members.values())
    p = learner.predict(test)
    assert p.proba is None
    a, b = test.prompts == "a", test.prompts == "b"
    assert p.pred[a].min() >= 1 and p.pred[a].max() <= 5
    assert p.pred[b].min() >= 0 and p.pred[b].max() <= 8
    learner.save(tmp_path / "model")
    loaded = type(learner).load(tmp_path / "model", learner.config, scales, tmp_path / "cache")
    assert np.array_equal(loaded.predict(test).pred, p.pred)
