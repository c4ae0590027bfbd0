"""QWK against scikit-learn, the scale-distance convention, per-prompt means, bootstrap."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.metrics import cohen_kappa_score

from aes_ensemble.errors import AesError
from aes_ensemble.metrics import (
    NO_PROMPT,
    bootstrap_interval,
    headline_qwk,
    mean_qwk,
    qwk,
    qwk_by_prompt,
)
from aes_ensemble.scales import ASAP_SCALES, ELLIPSE_SCALE, ScoreScale, ScoreScales


def distance_kappa(y_true: Sequence[float], y_pred: Sequence[float]) -> float:
    """Kappa with disagreement ``(a - b)**2`` on the raw scores, written out row by row."""
    n = len(y_true)
    observed = sum((a - b) ** 2 for a, b in zip(y_true, y_pred, strict=True))
    expected = sum((a - b) ** 2 for a in y_true for b in y_pred) / n
    return 1 - observed / expected


@st.composite
def full_range_labels(draw: st.DrawFn, step: float) -> tuple[np.ndarray, np.ndarray]:
    """Two label arrays whose union covers every level between their lowest and highest."""
    n_levels = draw(st.integers(2, 9))
    low = draw(st.integers(-3, 6))
    extra = draw(st.integers(0, 60))
    idx = st.integers(0, n_levels - 1)
    t = draw(st.lists(idx, min_size=extra, max_size=extra))
    p = draw(st.lists(idx, min_size=extra + n_levels, max_size=extra + n_levels))
    t_idx = np.array([*range(n_levels), *t])
    perm = draw(st.permutations(range(len(t_idx))))
    return low + step * t_idx[list(perm)], low + step * np.array(p)


@settings(max_examples=150, deadline=None)
@given(full_range_labels(step=1.0))
def test_qwk_equals_sklearn_on_integer_labels(pair: tuple[np.ndarray, np.ndarray]) -> None:
    t, p = pair
    assert qwk(t, p) == pytest.approx(cohen_kappa_score(t, p, weights="quadratic"), abs=1e-9)


@settings(max_examples=150, deadline=None)
@given(full_range_labels(step=0.5))
def test_qwk_equals_sklearn_on_half_points(pair: tuple[np.ndarray, np.ndarray]) -> None:
    t, p = pair
    ref = cohen_kappa_score((t * 2).astype(int), (p * 2).astype(int), weights="quadratic")
    assert qwk(t, p) == pytest.approx(ref, abs=1e-9)
    assert qwk(t, p, scale=ScoreScale(float(min(t.min(), p.min())) - 1, 20.0, 0.5)) == (
        pytest.approx(ref, abs=1e-9)
    )


def test_missing_level_weighs_by_scale_distance_not_rank() -> None:
    # level 3 never occurs: sklearn treats 4 as one rank above 2, the competition metric as two.
    t = [1, 2, 4, 4, 1, 2]
    p = [1, 4, 4, 2, 2, 2]
    expected = distance_kappa(t, p)
    assert qwk(t, p) == pytest.approx(expected, abs=1e-12)
    assert qwk(t, p, scale=ScoreScale(1, 6)) == pytest.approx(expected, abs=1e-12)
    assert abs(qwk(t, p) - cohen_kappa_score(t, p, weights="quadratic")) > 0.01


def test_level_indices_with_n_levels() -> None:
    t = np.array([0, 1, 2, 2, 4])
    p = np.array([0, 2, 2, 1, 3])
    assert qwk(t, p, n_levels=5) == pytest.approx(distance_kappa(list(t), list(p)), abs=1e-12)
    with pytest.raises(AesError, match="row 5"):
        qwk(t, [0, 2, 2, 1, 5], n_levels=5)


def test_degenerate_inputs_return_zero_not_nan() -> None:
    assert qwk([], []) == 0.0
    assert qwk([3, 3, 3], [3, 3, 3]) == 0.0
    assert qwk([3, 3, 3], [2, 3, 4]) == 0.0
    assert qwk([3, 3], [3, 3], scale=ScoreScale(1, 6)) == 0.0
    assert not math.isnan(qwk([2.5], [2.5], scale=ScoreScale(1, 5, 0.5)))


def test_bad_input_names_the_problem() -> None:
    with pytest.raises(AesError, match="3 values but y_pred has 2"):
        qwk([1, 2, 3], [1, 2])
    with pytest.raises(AesError, match="row 2"):
        qwk([1, float("nan")], [1, 2])
    with pytest.raises(AesError, match=r"row 3: y_pred value 2\.7 is not a level"):
        qwk([1, 2, 3], [1, 2, 2.7], scale=ScoreScale(1, 6))
    with pytest.raises(AesError, match="pass scale="):
        qwk([1.0, 1.25], [1.0, 1.25])


def asap_like(n_per_prompt: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Scores on the ASAP prompt scales with predictions one noisy step away."""
    rng = np.random.default_rng(seed)
    ys, ps, prompts = [], [], []
    for prompt in ("1", "3", "4", "8"):
        scale = ASAP_SCALES.for_prompt(prompt)
        y = rng.choice(scale.levels, n_per_prompt)
        noise = rng.normal(0, 0.1 * (scale.high - scale.low), n_per_prompt)
        ys.append(y)
        ps.append(scale.round(y + noise))
        prompts += [prompt] * n_per_prompt
    return np.concatenate(ys), np.concatenate(ps), np.array(prompts, dtype=object)


def test_qwk_by_prompt_uses_each_prompts_scale_and_mean_is_asap_protocol() -> None:
    y, p, prompts = asap_like(80, seed=1)
    per = qwk_by_prompt(y, p, prompts, ASAP_SCALES)
    assert sorted(per) == ["1", "3", "4", "8"]
    for prompt, value in per.items():
        rows = prompts == prompt
        assert value == qwk(y[rows], p[rows], scale=ASAP_SCALES.for_prompt(prompt))
    assert mean_qwk(y, p, prompts, ASAP_SCALES) == pytest.approx(np.mean(list(per.values())))
    assert headline_qwk(y, p, prompts, ASAP_SCALES) == mean_qwk(y, p, prompts, ASAP_SCALES)


def test_headline_is_one_qwk_on_a_global_scale() -> None:
    rng = np.random.default_rng(3)
    y = rng.choice(ELLIPSE_SCALE.for_prompt(None).levels, 300)
    p = ELLIPSE_SCALE.round(y + rng.normal(0, 0.5, 300), np.full(300, None))
    prompts = rng.choice(["a", "b", "c"], 300).astype(object)
    pooled = qwk(y, p, scale=ScoreScale(1, 5, 0.5))
    assert headline_qwk(y, p, prompts, ELLIPSE_SCALE) == pooled
    assert headline_qwk(y, p, None, ELLIPSE_SCALE) == pooled
    assert headline_qwk(y, p, prompts, ELLIPSE_SCALE) != mean_qwk(y, p, prompts, ELLIPSE_SCALE)


def test_rows_without_prompt_are_grouped_under_no_prompt() -> None:
    scales = ScoreScales(default=ScoreScale(1, 6))
    per = qwk_by_prompt(
        [1, 2, 3, 4, 5, 6], [1, 2, 3, 4, 5, 5], ["x", "x", "x", None, None, None], scales
    )
    assert sorted(per) == [NO_PROMPT, "x"]
    assert per["x"] == 1.0


def noisy(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = rng.integers(1, 7, n)
    return y, np.clip(y + rng.integers(-1, 2, n) * (rng.random(n) < 0.5), 1, 6)


def test_bootstrap_contains_point_estimate_and_narrows_with_more_data() -> None:
    widths = []
    for n in (200, 5000):
        y, p = noisy(n, seed=n)
        lo, hi = bootstrap_interval(y, p, scales=ScoreScales(default=ScoreScale(1, 6)))
        assert lo < qwk(y, p, scale=ScoreScale(1, 6)) < hi
        widths.append(hi - lo)
    assert widths[1] < widths[0] / 3


def test_bootstrap_matches_row_resampling_and_is_seeded() -> None:
    y, p = noisy(500, seed=7)
    lo, hi = bootstrap_interval(y, p, n_boot=2000, seed=0)
    rng = np.random.default_rng(1)
    naive = [qwk(y[i], p[i]) for i in rng.integers(0, len(y), (2000, len(y)))]
    n_lo, n_hi = np.quantile(naive, [0.025, 0.975])
    assert (hi - lo) == pytest.approx(n_hi - n_lo, rel=0.15)
    assert (lo + hi) / 2 == pytest.approx((n_lo + n_hi) / 2, abs=0.01)
    assert bootstrap_interval(y, p, seed=0) == bootstrap_interval(y, p, seed=0)
    assert bootstrap_interval(y, p, seed=0) != bootstrap_interval(y, p, seed=1)


def test_bootstrap_per_prompt_brackets_the_mean() -> None:
    y, p, prompts = asap_like(60, seed=2)
    lo, hi = bootstrap_interval(y, p, prompts=prompts, scales=ASAP_SCALES, n_boot=500)
    assert lo < mean_qwk(y, p, prompts, ASAP_SCALES) < hi
    with pytest.raises(AesError, match="alpha"):
        bootstrap_interval(y, p, alpha=1.5)


@pytest.mark.parametrize(
    ("spelling", "scale"),
    [
        ("1-6", ScoreScale(1, 6)),
        ("1-5:0.5", ScoreScale(1, 5, 0.5)),
        ("1..5:0.5", ScoreScale(1, 5, 0.5)),
    ],
)
def test_scale_accepts_the_config_spellings(spelling: str, scale: ScoreScale) -> None:
    y, p = noisy(300, seed=3)
    if scale.step == 0.5:  # levels 1, 1.5, ..., 3.5 of the half-point scale
        y, p = (y + 1) / 2, (p + 1) / 2
    assert qwk(y, p, scale=spelling) == qwk(y, p, scale=scale)
    assert headline_qwk(y, p, None, spelling) == headline_qwk(y, p, None, ScoreScales(scale))
    assert qwk_by_prompt(y, p, None, spelling) == qwk_by_prompt(y, p, None, ScoreScales(scale))
    assert bootstrap_interval(y, p, scales=spelling, n_boot=50) == bootstrap_interval(
        y, p, scales=ScoreScales(scale), n_boot=50
    )


def test_bad_scale_spelling_is_a_clear_error() -> None:
    with pytest.raises(AesError, match=r"1-6 or 1-5:0\.5"):
        qwk([1, 2], [1, 2], scale="one to six")
    with pytest.raises(AesError, match="ScoreScale or text"):
        qwk([1, 2], [1, 2], scale=6)  # type: ignore[arg-type]
