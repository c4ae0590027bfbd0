"""The string-kernel learner: its kernel against a direct sum of minima, and the learner on the
embedded ELLIPSE sample and on two prompts with their own scales."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pytest
from sklearn.svm import NuSVR

from aes_ensemble.config import validate
from aes_ensemble.data import Essays, read_essays
from aes_ensemble.errors import AesError
from aes_ensemble.learners import learner_class
from aes_ensemble.learners.ngram_kernel import IntersectionKernel, _order
from aes_ensemble.learners.string_kernel import fit_kernel_model
from aes_ensemble.sample import TRAIN, sample_path
from aes_ensemble.scales import ScoreScale, ScoreScales

TRAIN_TEXTS = [
    "the cat sat on the mat",
    "a cat! the cat? THE CAT.",
    "zzz",
    "thethethe the",
    "naïve café, déjà vu",
]
OTHER_TEXTS = ["the cat", "mat sat cat the the the", "qqq ü", "t", "café café"]


def direct_kernel(a: str, b: str, low: int, high: int) -> int:
    """Sum over n-grams of the smaller count, straight from the definition."""

    def grams(text: str) -> Counter[str]:
        return Counter(
            text[i : i + n] for n in range(low, high + 1) for i in range(len(text) - n + 1)
        )

    return sum((grams(a) & grams(b)).values())


@pytest.mark.parametrize(("low", "high"), [(1, 1), (1, 3), (2, 5), (3, 7), (6, 9)])
def test_kernel_equals_the_sum_of_minima(low: int, high: int) -> None:
    kernel = IntersectionKernel.fit(TRAIN_TEXTS, low, high)
    expected = np.array(
        [[direct_kernel(a, b, low, high) for b in TRAIN_TEXTS] for a in OTHER_TEXTS], float
    )
    # Unseen texts (unknown characters, n-grams no training text has) and the training texts.
    assert np.array_equal(kernel(OTHER_TEXTS, normalise=False), expected)
    gram = np.array(
        [[direct_kernel(a, b, low, high) for b in TRAIN_TEXTS] for a in TRAIN_TEXTS], float
    )
    assert np.array_equal(kernel.gram(normalise=False), gram)
    assert np.array_equal(kernel(TRAIN_TEXTS, normalise=False), gram)
    # Normalised: K(a, b) / sqrt(K(a, a) K(b, b)), with K(a, a) over all of a's n-grams.
    own = np.array([direct_kernel(a, a, low, high) for a in OTHER_TEXTS], float)
    norm = expected / np.sqrt(np.maximum(np.outer(own, np.diag(gram)), 1.0))
    np.testing.assert_allclose(kernel(OTHER_TEXTS, normalise=True), norm, rtol=1e-12)


def test_kernel_splits_dense_and_sparse_columns_on_real_essays() -> None:
    texts = read_essays(sample_path(TRAIN)).texts[:40]
    kernel = IntersectionKernel.fit(texts[:30], 3, 5)
    assert kernel.train_dense.shape[1] > 0 and kernel.train_tail.nnz > 0  # both paths used
    k = kernel(texts[30:], normalise=False)
    for i in (0, 9):
        for j in (0, 17, 29):
            assert k[i, j] == direct_kernel(texts[30 + i], texts[j], 3, 5)


@pytest.fixture(scope="module")
def sample() -> Essays:
    return read_essays(sample_path(TRAIN)).take(np.arange(160))


def make(essays: Essays, **params: Any) -> Any:
    cls = learner_class("string_kernel")
    data = {"kind": "string_kernel", "params": {"ngram_range": [3, 5], **params}}
    return cls(validate(cls.config_model, data), essays.scales, None)


@pytest.mark.parametrize("solver", ["krr", "nu_svr"])
def test_learner_predicts_on_scale_and_reloads_bit_for_bit(
    solver: str, sample: Essays, tmp_path: Path
) -> None:
    rows = np.arange(len(sample))
    train, valid = sample.take(rows[rows % 4 != 0]), sample.take(rows[rows % 4 == 0])
    learner = make(train, solver=solver).fit(train)
    pred = learner.predict(valid).pred
    assert pred.min() >= 1.0 and pred.max() <= 5.0
    assert np.corrcoef(pred, valid.scores)[0, 1] > 0.3  # real signal on unseen essays
    learner.save(tmp_path / "model")
    assert not list((tmp_path / "model").glob("*.pkl"))
    loaded = type(learner).load(tmp_path / "model", learner.config, train.scales)
    assert np.array_equal(loaded.predict(valid).pred, pred)


def test_nu_svr_predicts_from_its_support_texts_as_sklearn_does(sample: Essays) -> None:
    texts, y = sample.texts[:60], sample.scales.normalise(sample.scores[:60], sample.prompts[:60])
    params = make(sample, solver="nu_svr", C=0.1, nu=0.3).config.params
    model, kept = fit_kernel_model(texts, y, params)
    assert kept is None  # built from all texts, not the model's support texts
    kernel = IntersectionKernel.fit(texts, 3, 5)
    reference = NuSVR(kernel="precomputed", C=0.1, nu=0.3).fit(kernel.gram(normalise=True), y)
    new = sample.texts[60:80]
    expected = reference.predict(kernel(new, normalise=True))
    assert len(model.texts) == len(reference.support_) < len(texts)
    own = IntersectionKernel.fit(model.texts, 3, 5)  # the support texts' vocabulary only
    np.testing.assert_allclose(model.predict(new, own, params), expected, rtol=1e-9, atol=1e-12)


def two_prompts(essays: Essays) -> Essays:
    """The sample as two prompts with their own scales: 'a' on 1..5 by halves, 'b' on 0..8."""
    prompt = np.where(np.arange(len(essays)) % 2 == 0, "a", "b")
    score = np.where(prompt == "a", essays.scores, (essays.scores - 1) * 2)
    frame = essays.frame.with_columns(pl.Series("prompt", prompt), pl.Series("score", score))
    scales = ScoreScales(per_prompt={"a": ScoreScale(1, 5, 0.5), "b": ScoreScale(0, 8, 1)})
    return Essays(frame, scales)


def test_per_prompt_models_score_each_prompt_on_its_scale(sample: Essays, tmp_path: Path) -> None:
    essays = two_prompts(sample)
    rows = np.arange(len(essays))
    train, test = essays.take(rows[rows % 4 > 1]), essays.take(rows[rows % 4 <= 1])
    learner = make(train).fit(train)
    assert learner.known_prompts() == ("a", "b")
    pred = learner.predict(test).pred
    a, b = test.prompts == "a", test.prompts == "b"
    assert pred[a].min() >= 1 and pred[a].max() <= 5
    assert pred[b].min() >= 0 and pred[b].max() <= 8 and pred[b].mean() > 2
    learner.save(tmp_path / "model")
    loaded = type(learner).load(tmp_path / "model", learner.config, train.scales)
    assert np.array_equal(loaded.predict(test).pred, pred)
    unseen = Essays(test.frame.with_columns(pl.lit("c").alias("prompt")), test.scales)
    with pytest.raises(AesError, match="prompt 'c' has no model"):
        learner.predict(unseen.take([0]))


def test_bad_ngram_range_is_one_line() -> None:
    cls = learner_class("string_kernel")
    with pytest.raises(AesError, match=r"ngram_range.*1 <= low <= high"):
        validate(cls.config_model, {"kind": "string_kernel", "params": {"ngram_range": [5, 3]}})


@pytest.mark.parametrize("high", [10, 1 << 60])
def test_order_sorts_small_keys_by_packing_and_large_ones_directly(high: int) -> None:
    keys = np.random.default_rng(0).integers(0, high, size=5000, dtype=np.int64)
    order = _order(keys)
    assert sorted(order.tolist()) == list(range(len(keys)))
    assert np.array_equal(keys[order], np.sort(keys))
