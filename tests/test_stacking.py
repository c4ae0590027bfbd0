"""Stacking: meta-learners, nested grouped CV and cross-fitted thresholds.

Real cases stack OOF files fitted here on real ELLIPSE essays (TF-IDF ridge, a length model) on
real grouped folds; constructed cases check what must hold by construction.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import Ridge
from sklearn.utils.estimator_checks import check_estimator

from aes_ensemble.data import Essays, read_essays
from aes_ensemble.errors import AesError
from aes_ensemble.folds import assign_folds
from aes_ensemble.metrics import headline_qwk
from aes_ensemble.scales import AES2_SCALE
from aes_ensemble.stacking import (
    HillClimbing,
    MajorityVote,
    NonNegativeLinear,
    StackConfig,
    build_stack_data,
    length_features,
    nested_stack,
    run_stack,
)
from aes_ensemble.stacking.inputs import training_prompts
from aes_ensemble.stacking.meta import make_meta
from aes_ensemble.store import (
    PredictionMeta,
    PredictionSet,
    PredictionStore,
    prediction_frame,
)
from aes_ensemble.thresholds import cross_fit


def oof_set(name: str, essays: Essays, folds: np.ndarray, fit_predict, fhash: str) -> PredictionSet:
    """OOF predictions of ``fit_predict(train_idx, test_idx)`` over the folds, in store form."""
    pred = np.empty(len(essays))
    for k in np.unique(folds):
        held = np.flatnonzero(folds == k)
        train = np.flatnonzero(folds != k)
        pred[held] = fit_predict(train, held)
    frame = prediction_frame(
        essays.ids, ["oof"] * len(essays), pred, fold=folds, prompt=essays.prompts
    )
    meta = PredictionMeta(
        name=name, learner="sklearn", folds_hash=fhash, scales=essays.scales.to_dict()
    )
    return PredictionSet(frame, meta)


@pytest.fixture(scope="module")
def ellipse_sets(ellipse_csv_path: Path) -> tuple[Essays, np.ndarray, list[PredictionSet]]:
    """700 real ELLIPSE essays, grouped folds, and three learners: TF-IDF ridge, length, random."""
    essays = read_essays(ellipse_csv_path)
    essays = essays.take(np.random.default_rng(0).choice(len(essays), 700, replace=False))
    folds_obj = assign_folds(essays, 5, seed=42)
    folds = folds_obj.fold_array(essays)
    y = essays.scores
    tfidf = TfidfVectorizer(min_df=2, max_features=5000, sublinear_tf=True).fit_transform(
        essays.texts
    )
    words = length_features(essays.texts)
    rng = np.random.default_rng(1)
    noise = rng.uniform(1, 5, len(essays))

    def ridge(train, held):
        return Ridge(alpha=3.0).fit(tfidf[train], y[train]).predict(tfidf[held])

    def length(train, held):
        return Ridge(alpha=1.0).fit(words[train], y[train]).predict(words[held])

    sets = [
        oof_set("tfidf_ridge", essays, folds, ridge, folds_obj.hash),
        oof_set("length", essays, folds, length, folds_obj.hash),
        oof_set("random", essays, folds, lambda t, h: noise[h], folds_obj.hash),
    ]
    return essays, folds, sets


def data_of(essays: Essays, sets: list[PredictionSet]):
    return build_stack_data(sets, essays.ids, essays.scores, essays.prompts, essays.scales)


@pytest.mark.parametrize("meta", ["ridge", "nnls", "hill"])
def test_real_stack_ignores_the_random_learner(ellipse_sets, meta: str) -> None:
    essays, _, sets = ellipse_sets
    run = run_stack(data_of(essays, sets), StackConfig(meta=meta, n_boot=200))
    weights = run.summary["weights"]
    strongest = max(abs(w) for w in weights.values())
    assert abs(weights["random"]) < 0.1 * strongest
    board = {e["name"]: e for e in run.summary["leaderboard"]}
    assert board["random"]["cross"] < 0.15
    stack = board[f"stack_{meta}"]
    assert stack["cross"] > 0.4
    assert stack["cross"] >= board["tfidf_ridge"]["cross"] - 0.02
    assert stack["cross_ci"][0] <= stack["cross"] <= stack["cross_ci"][1]
    assert set(stack["per_prompt"]) == set(p for p in essays.prompts)
    assert run.summary["correlation"]["names"] == ["tfidf_ridge", "length", "random"]


def test_real_stack_writes_a_store_file_that_stacks_again(ellipse_sets, tmp_path: Path) -> None:
    essays, folds, sets = ellipse_sets
    run = run_stack(data_of(essays, sets[:2]), StackConfig(meta="lgbm", n_boot=100))
    assert set(run.summary["importances"]) == {"tfidf_ridge", "length"}
    store = PredictionStore(tmp_path)
    store.write(run.predictions)
    back = store.read("stack_lgbm", sets[0].meta.folds_hash, essays.ids)
    assert np.array_equal(back.oof["fold"].to_numpy(), folds)
    again = run_stack(data_of(essays, [back, sets[0]]), StackConfig(meta="mean", n_boot=100))
    assert again.summary["models"] == ["stack_lgbm", "tfidf_ridge"]


def test_same_seed_gives_identical_stacks(ellipse_sets) -> None:
    essays, _, sets = ellipse_sets
    data = data_of(essays, sets)
    a = run_stack(data, StackConfig(meta="hill", n_boot=100))
    b = run_stack(data, StackConfig(meta="hill", n_boot=100))
    assert np.array_equal(a.result.oof, b.result.oof)
    assert np.array_equal(a.result.cross, b.result.cross)
    assert a.summary["hill_picks"] == b.summary["hill_picks"]


def synthetic(n: int = 600, noises=(0.6,), seed: int = 0, fhash: str = "h"):
    rng = np.random.default_rng(seed)
    y = rng.integers(1, 7, n).astype(float)
    ids = [f"e{i}" for i in range(n)]
    folds = np.arange(n) % 5
    sets = []
    for j, noise in enumerate(noises):
        pred = y + rng.normal(0, noise, n)
        frame = prediction_frame(ids, ["oof"] * n, pred, fold=folds)
        sets.append(
            PredictionSet(frame, PredictionMeta(name=f"m{j}", learner="x", folds_hash=fhash))
        )
    prompts = np.full(n, None, dtype=object)
    return ids, y, prompts, sets


@pytest.mark.parametrize("meta", ["hill", "mean", "vote"])
def test_stack_of_one_learner_equals_that_learner(meta: str) -> None:
    ids, y, prompts, sets = synthetic()
    data = build_stack_data(sets, ids, y, prompts, AES2_SCALE)
    result = nested_stack(data, make_meta(meta, seed=0), level_inputs=meta == "vote")
    base = data.base[:, 0]
    expected = cross_fit(y, base, prompts, data.folds, AES2_SCALE, method="nelder-mead").pred
    assert np.array_equal(result.cross, expected)
    if meta != "vote":
        assert np.allclose(result.oof, base, atol=1e-9)


def test_cross_fitted_fold_never_sees_its_own_labels() -> None:
    """Change every label of fold 2: fold 2's OOF and thresholded levels must not move."""
    ids, y, prompts, sets = synthetic(noises=(0.6, 0.9, 1.5))
    data = build_stack_data(sets, ids, y, prompts, AES2_SCALE)
    held = data.folds == 2
    y2 = y.copy()
    y2[held] = 7 - y2[held]
    data2 = build_stack_data(sets, ids, y2, prompts, AES2_SCALE)
    a = nested_stack(data, Ridge())
    b = nested_stack(data2, Ridge())
    assert np.array_equal(a.oof[held], b.oof[held])
    assert np.array_equal(a.cross[held], b.cross[held])
    assert not np.array_equal(a.oof[~held], b.oof[~held])


def test_mixed_folds_hashes_are_refused() -> None:
    ids, y, prompts, sets = synthetic(noises=(0.6,))
    _, _, _, other = synthetic(noises=(0.6,), fhash="other")
    renamed = PredictionSet(
        other[0].frame, PredictionMeta(name="m9", learner="x", folds_hash="other")
    )
    with pytest.raises(AesError, match="'m0' has folds hash h but 'm9' has other"):
        build_stack_data([sets[0], renamed], ids, y, prompts, AES2_SCALE)


def test_missing_essay_and_moved_fold_are_refused() -> None:
    ids, y, prompts, sets = synthetic(noises=(0.6, 0.8))
    short = PredictionSet(sets[1].frame.slice(1), sets[1].meta)
    with pytest.raises(AesError, match="'m1' has no oof prediction for essay 'e0'"):
        build_stack_data([sets[0], short], ids, y, prompts, AES2_SCALE)
    moved = sets[1].frame.with_columns(fold=(sets[1].frame["fold"] + 1) % 5)
    with pytest.raises(AesError, match="'m1' puts essay 'e0' in fold 1 but 'm0' puts it in fold 0"):
        build_stack_data([sets[0], PredictionSet(moved, sets[1].meta)], ids, y, prompts, AES2_SCALE)


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.SkipTestWarning")
@pytest.mark.parametrize(
    "estimator",
    [NonNegativeLinear(), HillClimbing(), HillClimbing(metric="qwk")],
    ids=["nnls", "hill-rmse", "hill-qwk"],
)
def test_own_meta_learners_pass_check_estimator(estimator) -> None:
    check_estimator(estimator)


def test_hill_climbing_and_vote_behave() -> None:
    rng = np.random.default_rng(0)
    y = rng.integers(0, 5, 400) / 4
    X = np.column_stack([y + rng.normal(0, s, 400) for s in (0.05, 0.2)] + [rng.uniform(0, 1, 400)])
    hill = HillClimbing(n_iter=20, metric="qwk").fit(X, y)
    assert hill.picks_[0] == 0 and hill.coef_[2] == 0 and hill.coef_.sum() == pytest.approx(1)
    assert np.all(np.diff(hill.scores_) >= -0.02)
    votes = np.array([[1, 1, 2], [1, 2, 3], [0, 3, 3], [1, 2, 2.0]])
    assert MajorityVote().fit(votes, np.zeros(4)).predict(votes).tolist() == [1, 2, 3, 2]


def test_class_path_meta_learners_are_allow_listed() -> None:
    huber = make_meta(
        "class", class_path="sklearn.linear_model.HuberRegressor", params={"epsilon": 1.5}, seed=0
    )
    assert huber.epsilon == 1.5
    with pytest.raises(AesError, match=r"'os\.system' is not allowed"):
        make_meta("class", class_path="os.system", seed=0)
    with pytest.raises(AesError, match="did you mean 'HuberRegressor'"):
        make_meta("class", class_path="sklearn.linear_model.HuberRegresor", seed=0)
    with pytest.raises(AesError, match=r"key 'meta\.params\.epsilom'.*did you mean 'epsilon'"):
        make_meta(
            "class", class_path="sklearn.linear_model.HuberRegressor", params={"epsilom": 1}, seed=0
        )
    with pytest.raises(AesError, match="unknown meta-learner 'rige' \\(did you mean 'ridge'"):
        make_meta("rige", seed=0)


def test_blends_refuse_extra_features() -> None:
    with pytest.raises(AesError, match="meta 'hill' blends predictions"):
        StackConfig(meta="hill", features={"length": True}).check()


def test_prompt_weights_learn_which_learner_is_good_on_which_prompt() -> None:
    """Learner m0 is sharp on prompt A and noisy on B, m1 the other way round: one shared
    weight per learner must compromise, weights per prompt need not."""
    rng = np.random.default_rng(3)
    n = 1200
    y = rng.integers(1, 7, n).astype(float)
    ids = [f"e{i}" for i in range(n)]
    folds = np.arange(n) % 5
    prompts = np.where(np.arange(n) % 2 == 0, "A", "B").astype(object)
    on_a = prompts == "A"
    noise = {"m0": np.where(on_a, 0.3, 1.5), "m1": np.where(on_a, 1.5, 0.3)}
    sets = [
        PredictionSet(
            prediction_frame(ids, ["oof"] * n, y + rng.normal(0, s), fold=folds, prompt=prompts),
            PredictionMeta(name=name, learner="x", folds_hash="h"),
        )
        for name, s in noise.items()
    ]
    shared = build_stack_data(sets, ids, y, prompts, AES2_SCALE)
    per_prompt = build_stack_data(sets, ids, y, prompts, AES2_SCALE, prompt_levels=("A", "B"))
    assert per_prompt.feature_names == [
        "m0", "m1", "m0|prompt=A", "m1|prompt=A", "prompt=A", "m0|prompt=B", "m1|prompt=B",
        "prompt=B",
    ]  # fmt: skip
    assert np.array_equal(per_prompt.X[:, :2], shared.X)
    assert np.array_equal(per_prompt.X[~on_a, 2:5], np.zeros((int((~on_a).sum()), 3)))
    qwk = {}
    for label, data in (("shared", shared), ("per_prompt", per_prompt)):
        result = nested_stack(data, Ridge(alpha=1.0), seed=0)
        qwk[label] = headline_qwk(y, result.cross, prompts, AES2_SCALE)
    assert qwk["per_prompt"] > qwk["shared"] + 0.02, qwk


def test_prompt_weights_need_prompts_and_a_meta_that_takes_features() -> None:
    with pytest.raises(AesError, match="prompt_weights needs essays with prompts"):
        training_prompts(np.full(4, None, dtype=object))
    assert training_prompts(np.asarray([2, 1, 2, None], dtype=object)) == ("1", "2")
    with pytest.raises(AesError, match="proba/length/prompt_weights"):
        StackConfig(meta="nnls", features={"prompt_weights": True}).check()
