"""CPU base learners on a few hundred real ELLIPSE essays (and two ASAP prompts for scales)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sklearn.svm import SVR

from aes_ensemble.config import validate
from aes_ensemble.data import Essays, read_essays
from aes_ensemble.errors import AesError
from aes_ensemble.learners import learner_class
from aes_ensemble.learners.gbdt import inner_split

KINDS = ("lgbm", "xgb", "ridge", "svr")
TFIDF = {"word_ngram_range": [1, 1], "char_ngram_range": None, "max_features": 2000}
FEATURES: dict[str, dict[str, Any]] = {
    "lgbm": {"handcrafted": True, "tfidf": TFIDF, "svd_components": 16},
    "xgb": {"handcrafted": True, "tfidf": TFIDF, "svd_components": 16},
    "ridge": {"handcrafted": True, "tfidf": TFIDF, "scale": True},
    "svr": {"handcrafted": True, "scale": True},
}
PARAMS: dict[str, dict[str, Any]] = {
    "lgbm": {"n_estimators": 300, "learning_rate": 0.1, "num_leaves": 7, "min_child_samples": 10},
    "xgb": {"n_estimators": 300, "learning_rate": 0.1, "max_depth": 3},
    "ridge": {"alpha": 10.0},
    "svr": {"C": 1.0, "epsilon": 0.05},
}


def make(kind: str, essays: Essays, cache: Path, **params: Any) -> Any:
    cls = learner_class(kind)
    data = {"kind": kind, "seed": 7, "features": FEATURES[kind], "params": PARAMS[kind] | params}
    return cls(validate(cls.config_model, data), essays.scales, cache)


@pytest.fixture(scope="module")
def ellipse(ellipse_csv_path: Path) -> Essays:
    return read_essays(ellipse_csv_path).take(np.arange(300))


@pytest.fixture(scope="module")
def split(ellipse: Essays) -> tuple[Essays, Essays]:
    rows = np.arange(len(ellipse))
    return ellipse.take(rows[rows % 5 != 0]), ellipse.take(rows[rows % 5 == 0])


@pytest.mark.parametrize("kind", KINDS)
def test_learner_fits_predicts_on_scale_and_reloads_bit_for_bit(
    kind: str, split: tuple[Essays, Essays], tmp_path: Path
) -> None:
    train, valid = split
    learner = make(kind, train, tmp_path / "cache").fit(train)
    pred = learner.predict(valid).pred
    assert pred.shape == (len(valid),)
    assert np.isfinite(pred).all()
    assert pred.min() >= 1.0 and pred.max() <= 5.0
    # Real signal on unseen essays: predictions track the human scores.
    assert np.corrcoef(pred, valid.scores)[0, 1] > 0.3
    learner.save(tmp_path / "model")
    loaded = type(learner).load(tmp_path / "model", learner.config, train.scales, tmp_path / "c2")
    assert np.array_equal(loaded.predict(valid).pred, pred)


@pytest.mark.parametrize("kind", ["lgbm", "xgb"])
def test_gbdt_is_deterministic_and_never_fits_on_valid(
    kind: str, split: tuple[Essays, Essays], ellipse: Essays, tmp_path: Path
) -> None:
    train, valid = split
    a = make(kind, train, tmp_path / "a").fit(train, valid).predict(valid).pred
    other = ellipse.take(np.arange(0, 300, 3))  # a different "validation" fold changes nothing
    b = make(kind, train, tmp_path / "b").fit(train, other).predict(valid).pred
    c = make(kind, train, tmp_path / "c").fit(train).predict(valid).pred
    assert np.array_equal(a, b) and np.array_equal(a, c)


def test_gbdt_refit_and_best_iteration_models_differ(
    split: tuple[Essays, Essays], tmp_path: Path
) -> None:
    train, valid = split
    full = make("lgbm", train, tmp_path).fit(train)
    kept = make("lgbm", train, tmp_path, refit_full=False).fit(train)
    assert not np.array_equal(full.predict(valid).pred, kept.predict(valid).pred)
    assert full.booster.num_trees() == kept.booster.num_trees() < 300


def test_inner_split_is_seeded_disjoint_and_stratified(ellipse: Essays) -> None:
    y = ellipse.scales.normalise(ellipse.scores, ellipse.prompts)
    fit_rows, stop_rows = inner_split(y, ellipse.prompts, 0.1, seed=3)
    assert len(np.intersect1d(fit_rows, stop_rows)) == 0
    assert len(fit_rows) + len(stop_rows) == len(y)
    assert len(stop_rows) == 30
    again = inner_split(y, ellipse.prompts, 0.1, seed=3)
    assert np.array_equal(again[1], stop_rows)
    assert not np.array_equal(inner_split(y, ellipse.prompts, 0.1, seed=4)[1], stop_rows)
    # Stratified: the stopping rows' mean score is close to the whole set's.
    assert abs(y[stop_rows].mean() - y.mean()) < 0.03
    with pytest.raises(AesError, match="valid_fraction"):
        inner_split(y, ellipse.prompts, 1.5, seed=3)


def test_svr_predicts_from_saved_arrays_as_sklearn_does(
    split: tuple[Essays, Essays], tmp_path: Path
) -> None:
    train, valid = split
    learner = make("svr", train, tmp_path).fit(train)
    pipeline = learner.pipeline
    y = train.scales.normalise(train.scores, train.prompts)
    p = learner.config.params
    reference = SVR(C=p.C, epsilon=p.epsilon, gamma=p.gamma).fit(pipeline.transform(train), y)
    expected = np.clip(reference.predict(pipeline.transform(valid)), 0, 1)
    ours = train.scales.normalise(learner.predict(valid).pred, valid.prompts)
    np.testing.assert_allclose(ours, expected, atol=1e-9)


@pytest.mark.parametrize("per_prompt", [False, True])
def test_ridge_on_two_asap_scales_predicts_on_each_prompts_scale(
    per_prompt: bool, asap_csv_path: Path, tmp_path: Path
) -> None:
    asap = read_essays(asap_csv_path)
    prompts = asap.prompts
    rows = np.concatenate([np.flatnonzero(prompts == p)[:150] for p in ("3", "8")])
    essays = asap.take(rows)
    fit_rows = np.arange(len(essays)) % 4 != 0
    train, test = essays.take(np.flatnonzero(fit_rows)), essays.take(np.flatnonzero(~fit_rows))
    learner = make("ridge", train, tmp_path / "cache")
    learner = type(learner)(
        learner.config.model_copy(update={"per_prompt": per_prompt}), train.scales, tmp_path
    ).fit(train)
    pred = learner.predict(test).pred
    p3, p8 = test.prompts == "3", test.prompts == "8"
    assert pred[p3].min() >= 0 and pred[p3].max() <= 3
    assert pred[p8].min() >= 0 and pred[p8].max() <= 60
    # Normalised targets: each prompt's predictions sit in the range its own scores do.
    assert pred[p8].mean() > 20
    for mask in (p3, p8):
        assert np.corrcoef(pred[mask], test.scores[mask])[0, 1] > 0.3
    learner.save(tmp_path / "model")
    loaded = type(learner).load(tmp_path / "model", learner.config, train.scales, tmp_path)
    assert np.array_equal(loaded.predict(test).pred, pred)
    assert len(learner.members) == (2 if per_prompt else 0)
    if per_prompt:
        other = asap.take(np.flatnonzero(prompts == "5")[:3])
        with pytest.raises(AesError, match="prompt '5' has no model"):
            learner.predict(other)


def test_unknown_param_names_the_closest_key() -> None:
    cls = learner_class("lgbm")
    data = {"kind": "lgbm", "features": {"handcrafted": True}, "params": {"learning_rat": 0.1}}
    with pytest.raises(AesError, match=r"params\.learning_rat.*did you mean 'learning_rate'"):
        validate(cls.config_model, data)


def test_load_without_model_file_names_it(tmp_path: Path, split: tuple[Essays, Essays]) -> None:
    train, _ = split
    learner = make("ridge", train, tmp_path / "cache").fit(train)
    learner.save(tmp_path / "model")
    (tmp_path / "model" / "ridge.safetensors").unlink()
    with pytest.raises(AesError, match=r"ridge\.safetensors"):
        type(learner).load(tmp_path / "model", learner.config, train.scales)


@pytest.mark.slow
def test_svr_on_minilm_embeddings_reloads_bit_for_bit(ellipse: Essays, tmp_path: Path) -> None:
    # Few essays, one short window each: MiniLM embeds only ~5-10 essays/s on a shared CPU.
    essays = ellipse.take(np.arange(10))
    train, valid = essays.take(np.arange(7)), essays.take(np.arange(7, 10))
    cls = learner_class("svr")
    embeddings = {"chunking": False, "max_seq_length": 64}
    features = {"handcrafted": False, "embeddings": embeddings, "scale": True}
    config = validate(cls.config_model, {"kind": "svr", "features": features})
    learner = cls(config, train.scales, tmp_path / "cache").fit(train)
    assert learner.pipeline.embedding_dim == 384
    pred = learner.predict(valid).pred
    assert np.isfinite(pred).all() and pred.min() >= 1 and pred.max() <= 5
    learner.save(tmp_path / "model")
    loaded = cls.load(tmp_path / "model", config, train.scales, tmp_path / "cache")
    assert np.array_equal(loaded.predict(valid).pred, pred)
