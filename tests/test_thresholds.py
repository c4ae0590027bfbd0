"""Cut points: monotone, deterministic, never worse than rounding, honest when cross-fitted."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import Ridge
from sklearn.model_selection import KFold, cross_val_predict

from aes_ensemble.errors import AesError
from aes_ensemble.metrics import qwk
from aes_ensemble.scales import ASAP_SCALES, ELLIPSE_SCALE, ScoreScale
from aes_ensemble.thresholds import (
    Cutpoints,
    Method,
    Thresholds,
    cross_fit,
    fit_cutpoints,
    fit_thresholds,
)

HALF = ScoreScale(1, 5, 0.5)


@pytest.fixture(scope="module")
def ellipse_oof(ellipse_path: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Real out-of-fold predictions: TF-IDF + Ridge on 400 ELLIPSE essays, 4 folds."""
    frame = pl.read_csv(
        ellipse_path / "ELLIPSE_Final_github_test.csv", columns=["full_text", "prompt", "Overall"]
    ).head(400)
    x = TfidfVectorizer(ngram_range=(1, 2), min_df=2, sublinear_tf=True).fit_transform(
        frame["full_text"].to_list()
    )
    y = frame["Overall"].to_numpy().astype(float)
    cv = KFold(n_splits=4, shuffle=True, random_state=0)
    pred = cross_val_predict(Ridge(alpha=1.0), x, y, cv=cv)
    folds = np.empty(len(y), dtype=np.int64)
    for k, (_, test) in enumerate(cv.split(x)):
        folds[test] = k
    return y, pred, frame["prompt"].to_numpy().astype(object), folds


def test_cutpoints_validate_count_and_order() -> None:
    with pytest.raises(AesError, match="needs 8 cut points, got 2"):
        Cutpoints(HALF, np.array([1.5, 2.5]))
    with pytest.raises(AesError, match="increase strictly"):
        Cutpoints(ScoreScale(1, 4), np.array([1.5, 1.5, 3.5]))


def test_midpoints_are_plain_rounding() -> None:
    pred = np.random.default_rng(0).uniform(0, 6, 1000)
    assert np.array_equal(Cutpoints.midpoints(HALF).apply(pred), HALF.round(pred))


def test_apply_cuts_with_searchsorted_semantics() -> None:
    cuts = Cutpoints(ScoreScale(1, 4), np.array([1.2, 2.9, 3.1]))
    assert list(cuts.apply(np.array([-5.0, 1.19, 1.2, 2.95, 3.1, 99.0]))) == [1, 1, 2, 3, 4, 4]


@pytest.mark.parametrize("method", ["nelder-mead", "optuna"])
def test_fit_on_real_predictions_is_monotone_deterministic_and_beats_rounding(
    ellipse_oof: tuple[np.ndarray, ...], method: Method
) -> None:
    y, pred, _, _ = ellipse_oof
    first = fit_cutpoints(y, pred, HALF, method=method, seed=3, n_trials=80)
    again = fit_cutpoints(y, pred, HALF, method=method, seed=3, n_trials=80)
    assert first == again
    assert (np.diff(first.cuts) > 0).all()
    rounded = qwk(y, HALF.round(pred), scale=HALF)
    fitted = qwk(y, first.apply(pred), scale=HALF)
    assert fitted >= rounded
    if method == "nelder-mead":
        # Ridge shrinks towards the mean, so moving the cuts must gain on real predictions.
        assert fitted > rounded + 0.01


@pytest.mark.parametrize("method", ["nelder-mead", "optuna"])
def test_no_gain_keeps_plain_rounding(method: Method) -> None:
    y = np.repeat(HALF.levels, 5)
    assert fit_cutpoints(y, y, HALF, method=method, n_trials=30) == Cutpoints.midpoints(HALF)


def test_thresholds_round_trip_through_json(ellipse_oof: tuple[np.ndarray, ...]) -> None:
    y, pred, prompts, _ = ellipse_oof
    fitted = fit_thresholds(y, pred, prompts, ELLIPSE_SCALE)
    loaded = Thresholds.from_dict(json.loads(json.dumps(fitted.to_dict())))
    assert loaded == fitted
    assert np.array_equal(
        loaded.apply(pred, prompts, ELLIPSE_SCALE), fitted.apply(pred, prompts, ELLIPSE_SCALE)
    )
    with pytest.raises(AesError, match="malformed"):
        Thresholds.from_dict({"cutpoints": [{"cuts": [1.5]}]})


def test_cross_fit_never_uses_a_folds_own_rows(ellipse_oof: tuple[np.ndarray, ...]) -> None:
    y, pred, prompts, folds = ellipse_oof
    honest = cross_fit(y, pred, prompts, folds, ELLIPSE_SCALE)
    corrupted = y.copy()
    corrupted[folds == 2] = 6.0 - y[folds == 2]  # mirror fold 2's labels on the 1..5 scale
    after = cross_fit(corrupted, pred, prompts, folds, ELLIPSE_SCALE)
    assert after.per_fold[2] == honest.per_fold[2]
    assert np.array_equal(after.pred[folds == 2], honest.pred[folds == 2])
    assert after.per_fold[0] != honest.per_fold[0]
    for k, thresholds in honest.per_fold.items():
        rows = folds == k
        assert np.array_equal(
            honest.pred[rows], thresholds.apply(pred[rows], prompts[rows], ELLIPSE_SCALE)
        )
        refit = fit_thresholds(y[~rows], pred[~rows], prompts[~rows], ELLIPSE_SCALE)
        assert refit == thresholds


def asap_like(seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Prompts 3 and 4 share the 0-3 scale, prompt 1 runs 2-12; predictions shrink to the mean."""
    rng = np.random.default_rng(seed)
    ys, preds, prompts = [], [], []
    for prompt, n in (("1", 300), ("3", 250), ("4", 250)):
        scale = ASAP_SCALES.for_prompt(prompt)
        y = rng.choice(scale.levels, n)
        mid = (scale.low + scale.high) / 2
        preds.append(mid + 0.6 * (y - mid) + rng.normal(0, 0.12 * (scale.high - scale.low), n))
        ys.append(y)
        prompts += [prompt] * n
    return np.concatenate(ys), np.concatenate(preds), np.array(prompts, dtype=object)


def test_per_scale_fitting_pools_prompts_that_share_a_scale() -> None:
    y, pred, prompts = asap_like(seed=0)
    fitted = fit_thresholds(y, pred, prompts, ASAP_SCALES)
    assert {c.scale for c in fitted.cutpoints} == {ScoreScale(2, 12), ScoreScale(0, 3)}
    pooled = np.isin(prompts, ["3", "4"])
    assert fitted.for_scale(ScoreScale(0, 3)) == fit_cutpoints(
        y[pooled], pred[pooled], ScoreScale(0, 3)
    )
    out = fitted.apply(pred, prompts, ASAP_SCALES)
    for prompt in ("1", "3", "4"):
        rows = prompts == prompt
        assert ASAP_SCALES.for_prompt(prompt).is_level(out[rows]).all()
    with pytest.raises(AesError, match=r"no cut points were fitted for scale 0\.\.60"):
        fitted.apply(np.array([30.0]), np.array(["8"], dtype=object), ASAP_SCALES)


def test_cross_fit_rounds_a_scale_that_no_other_fold_holds() -> None:
    y, pred, prompts = asap_like(seed=1)
    folds = np.where(prompts == "1", 0, np.arange(len(y)) % 2 + 1)
    result = cross_fit(y, pred, prompts, folds, ASAP_SCALES)
    assert result.per_fold[0].for_scale(ScoreScale(2, 12)) == Cutpoints.midpoints(ScoreScale(2, 12))
    rows = prompts == "1"
    assert np.array_equal(result.pred[rows], ScoreScale(2, 12).round(pred[rows]))


def test_bad_input_is_an_aes_error() -> None:
    with pytest.raises(AesError, match="unknown threshold method 'powell'"):
        fit_cutpoints([1, 2], [1.0, 2.0], ScoreScale(1, 6), method="powell")  # type: ignore[arg-type]
    with pytest.raises(AesError, match=r"row 2: y_true value 2\.2 is not a level"):
        fit_cutpoints([1, 2.2], [1.0, 2.0], ScoreScale(1, 6))
    with pytest.raises(AesError, match="3, 3 and 2 values"):
        cross_fit([1, 2, 3], [1.0, 2.0, 3.0], None, [0, 1], ELLIPSE_SCALE)


def test_threshold_functions_accept_the_config_spellings() -> None:
    rng = np.random.default_rng(5)
    y = rng.integers(2, 11, 400) / 2
    pred = y + rng.normal(0, 0.6, len(y))
    folds = np.arange(len(y)) % 4
    assert Cutpoints.midpoints("1-5:0.5") == Cutpoints.midpoints(HALF)
    assert fit_cutpoints(y, pred, "1-5:0.5") == fit_cutpoints(y, pred, HALF)
    fitted = fit_thresholds(y, pred, None, "1-5:0.5")
    assert fitted == fit_thresholds(y, pred, None, ELLIPSE_SCALE)
    assert fitted.for_scale("1-5:0.5") == fitted.for_scale(HALF)
    assert np.array_equal(fitted.apply(pred, None, "1-5:0.5"), fitted.apply(pred, None, HALF))
    crossed = cross_fit(y, pred, None, folds, "1-5:0.5").pred
    assert np.array_equal(crossed, cross_fit(y, pred, None, folds, ELLIPSE_SCALE).pred)
