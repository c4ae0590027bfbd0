"""The validity statistics on small cases whose expected values are computed here from the
published formulas (Cohen 1960/1968, Haberman 2019, Williamson et al. 2012, Loukina et al. 2019
and 2020), never by calling the function under test; plus one comparison with RSMTool 12.0.0
itself where its separate environment exists (the full comparison is the nox ``peer`` session)."""

from __future__ import annotations

import json
import math
import subprocess
from pathlib import Path

import numpy as np
import pytest
from scipy import stats as scipy_stats

from aes_ensemble.errors import AesError
from aes_ensemble.report import fairness, flags, rsm_metrics, true_score
from aes_ensemble.scales import ScoreScale

H = np.array([1.0, 2.0, 3.0, 4.0, 4.0, 2.0, 3.0, 1.0])
M = np.array([1.0, 3.0, 3.0, 2.0, 4.0, 2.0, 4.0, 2.0])
SCALE = ScoreScale(1, 4)


def hand_weighted_kappa(a: list[float], b: list[float], levels: list[float], power: int) -> float:
    """Cohen's weighted kappa from the contingency table; power 0: unweighted, 2: quadratic."""
    n, k = len(a), len(levels)
    table = [[0.0] * k for _ in range(k)]
    for x, y in zip(a, b, strict=True):
        table[levels.index(x)][levels.index(y)] += 1 / n
    rows = [sum(r) for r in table]
    cols = [sum(table[i][j] for i in range(k)) for j in range(k)]

    def w(i: int, j: int) -> float:
        return float(i != j) if power == 0 else float((i - j) ** 2)

    observed = sum(w(i, j) * table[i][j] for i in range(k) for j in range(k))
    expected = sum(w(i, j) * rows[i] * cols[j] for i in range(k) for j in range(k))
    return 1 - observed / expected


def mean(x: list[float]) -> float:
    return sum(x) / len(x)


def sample_var(x: list[float]) -> float:
    mu = mean(x)
    return sum((v - mu) ** 2 for v in x) / (len(x) - 1)


# ---- rsm_metrics -------------------------------------------------------------------------


def test_agreement_on_levels_matches_the_textbook_formulas() -> None:
    h, m = H.tolist(), M.tolist()
    a = rsm_metrics.agreement(H, M, scale=SCALE)
    n = len(h)
    assert a.n == n
    assert a.h_mean == pytest.approx(mean(h)) and a.sys_mean == pytest.approx(mean(m))
    assert a.h_sd == pytest.approx(math.sqrt(sample_var(h)))
    assert a.sys_sd == pytest.approx(math.sqrt(sample_var(m)))
    cov = sum((x - mean(h)) * (y - mean(m)) for x, y in zip(h, m, strict=True)) / (n - 1)
    assert a.corr == pytest.approx(cov / math.sqrt(sample_var(h) * sample_var(m)))
    levels = [1.0, 2.0, 3.0, 4.0]
    assert a.wtkappa == pytest.approx(hand_weighted_kappa(h, m, levels, 2))
    assert a.kappa == pytest.approx(hand_weighted_kappa(h, m, levels, 0))
    diffs = [abs(x - y) for x, y in zip(h, m, strict=True)]
    assert a.exact_agr == pytest.approx(100 * sum(d == 0 for d in diffs) / n)
    assert a.adj_agr == pytest.approx(100 * sum(d <= 1 for d in diffs) / n)
    assert a.smd == pytest.approx((mean(m) - mean(h)) / math.sqrt(sample_var(h)))
    pooled = math.sqrt((sample_var(h) + sample_var(m)) / 2)
    assert a.smd_pooled == pytest.approx((mean(m) - mean(h)) / pooled)
    mse = sum(d * d for d in diffs) / n
    assert a.mse == pytest.approx(mse) and a.rmse == pytest.approx(math.sqrt(mse))
    ss_tot = sum((x - mean(h)) ** 2 for x in h)
    assert a.r2 == pytest.approx(1 - mse * n / ss_tot)
    assert set(a.as_dict()) >= {"n", "wtkappa", "kappa", "smd", "smd_pooled", "r2", "adj_agr"}


def test_continuous_wtkappa_is_habermans_formula_and_equals_qwk_on_levels() -> None:
    raw = np.array([1.2, 2.7, 3.1, 2.4, 3.8, 2.2, 3.6, 1.9])
    h, m = H.tolist(), raw.tolist()
    n = len(h)
    cov = sum((x - mean(h)) * (y - mean(m)) for x, y in zip(h, m, strict=True)) / n
    var_h = sum((x - mean(h)) ** 2 for x in h) / n
    var_m = sum((y - mean(m)) ** 2 for y in m) / n
    expected = 2 * cov / (var_h + var_m + (mean(m) - mean(h)) ** 2)
    assert rsm_metrics.agreement(H, raw, continuous=True).wtkappa == pytest.approx(expected)
    # on levels, Haberman's formula is Cohen's quadratic kappa (distance on the score scale)
    on_levels = rsm_metrics.continuous_qwk(H, M)
    assert on_levels == pytest.approx(hand_weighted_kappa(H.tolist(), M.tolist(), [1, 2, 3, 4], 2))


def test_kappa_rounds_floats_half_to_even_as_skll() -> None:
    human = np.array([2.0, 2.0, 3.0, 3.0, 4.0])
    machine = np.array([1.5, 2.5, 2.6, 3.5, 4.4])  # np.round: 2, 2, 3, 4, 4
    rounded = [2.0, 2.0, 3.0, 4.0, 4.0]
    got = rsm_metrics.agreement(human, machine, continuous=True).kappa
    assert got == pytest.approx(hand_weighted_kappa(human.tolist(), rounded, [2, 3, 4], 0))
    # every value on one integer: SKLL's "no disagreement can matter" case is 1.0
    assert rsm_metrics.cohen_kappa(np.array([3.0, 3.0]), np.array([3.2, 2.9])) == 1.0


def test_adjacent_agreement_on_a_half_point_scale() -> None:
    half = ScoreScale(1, 5, 0.5)
    h = np.array([1.0, 1.5, 2.0, 3.0])
    m = np.array([1.5, 2.5, 2.0, 4.5])  # off by 0.5, 1.0, 0, 1.5
    a = rsm_metrics.agreement(h, m, scale=half)
    assert a.exact_agr == pytest.approx(25.0)
    assert a.adj_agr == pytest.approx(75.0)  # RSMTool: within 1 score point
    assert a.adj_agr_level == pytest.approx(50.0)  # within one level (0.5)


def test_undefined_statistics_are_nan_not_errors() -> None:
    h = np.array([3.0, 3.0, 3.0])
    m = np.array([2.0, 3.0, 4.0])
    a = rsm_metrics.agreement(h, m, scale=SCALE)
    assert math.isnan(a.corr) and math.isnan(a.smd)
    assert a.r2 == 0.0  # constant human scores, not predicted exactly: scikit-learn's 0.0
    assert math.isnan(rsm_metrics.continuous_qwk(h, h))
    one = rsm_metrics.agreement([2.0], [3.0])
    assert math.isnan(one.h_sd) and math.isnan(one.r2) and one.mse == 1.0


@pytest.mark.parametrize(
    ("human", "machine", "needle"),
    [
        ([1.0, 2.0], [1.0], "human has 2 values but machine has 1"),
        ([1.0, float("nan")], [1.0, 2.0], "human has a missing"),
        ([1.0, 2.0], [1.0, float("inf")], "machine has a missing or infinite"),
        ([], [], "no scores"),
        ([1.0, 5.0], [1.0, 2.0], r"human value 5 is not a level of the scale 1\.\.4"),
        ([1.0, 2.0], [1.0, 2.5], r"row 2: machine value 2\.5 is not a level"),
    ],
)
def test_agreement_rejects_bad_input_naming_the_argument(
    human: list[float], machine: list[float], needle: str
) -> None:
    with pytest.raises(AesError, match=needle):
        rsm_metrics.agreement(human, machine, scale=SCALE)


def test_score_distribution_and_confusion_matrix_count_by_hand() -> None:
    levels = [1.0, 2.0, 3.0, 4.0]
    shares = rsm_metrics.score_distribution(H, M, levels)
    n = len(H)
    for share in shares:
        human_pct = 100 * sum(v == share.level for v in H) / n
        machine_pct = 100 * sum(v == share.level for v in M) / n
        assert share.human_pct == pytest.approx(human_pct)
        assert share.machine_pct == pytest.approx(machine_pct)
        assert share.difference == pytest.approx(machine_pct - human_pct)
    assert [s.level for s in shares] == levels
    conf = rsm_metrics.confusion_matrix(H, M, levels)
    for i, a in enumerate(levels):
        for j, b in enumerate(levels):
            assert conf[i, j] == sum(x == a and y == b for x, y in zip(H, M, strict=True))
    with pytest.raises(AesError, match=r"machine value 2\.5 is not one of the levels"):
        rsm_metrics.confusion_matrix(H, np.where(M == 2, 2.5, M), levels)


# ---- true_score ----------------------------------------------------------------------------

H1 = np.array([2.0, 3.0, 4.0, 1.0, 3.0, 2.0, 4.0])
H2 = np.array([3.0, 3.0, np.nan, 1.0, np.nan, 1.0, np.nan])
SYS = np.array([2.4, 3.1, 3.5, 1.6, 2.8, 2.1, 3.9])


def test_double_scored_and_consistency_on_the_double_scored_essays_only() -> None:
    mask = true_score.double_scored(H1, H2)
    assert mask.tolist() == [True, True, False, True, False, True, False]
    c = true_score.consistency(H1, H2, scale=SCALE)
    assert c is not None and c.n == 4
    a, b = H1[mask].tolist(), H2[mask].tolist()
    pooled = math.sqrt((sample_var(a) + sample_var(b)) / 2)
    assert c.agreement.smd == pytest.approx((mean(b) - mean(a)) / pooled)  # RSMTool: pooled
    assert c.agreement.exact_agr == pytest.approx(50.0)
    assert true_score.consistency(H1, np.full(len(H1), np.nan)) is None
    assert true_score.true_score(SYS, H1, np.full(len(H1), np.nan)) is None


def test_second_rating_must_match_in_length() -> None:
    with pytest.raises(AesError, match="human1 has 7 values but human2 has 2"):
        true_score.consistency(H1, [1.0, 2.0])
    with pytest.raises(AesError, match="human1 has a missing"):
        true_score.true_score(SYS, np.where(H2 > 0, H1, np.nan), H2)


def test_degradation_and_disattenuated_correlation() -> None:
    mh = rsm_metrics.agreement(H1, np.rint(SYS), scale=SCALE)
    hh = rsm_metrics.agreement(H1[:2], H2[:2], scale=SCALE, smd_method="pooled")
    deg = true_score.degradation(mh, hh)
    assert set(deg) == {"corr", "kappa", "wtkappa", "exact_agr", "adj_agr", "smd"}
    assert deg["wtkappa"] == pytest.approx(mh.wtkappa - hh.wtkappa)
    assert deg["exact_agr"] == pytest.approx(mh.exact_agr - hh.exact_agr)
    assert true_score.disattenuated_correlation(0.6, 0.81) == pytest.approx(0.6 / 0.9)
    assert math.isnan(true_score.disattenuated_correlation(0.6, -0.2))
    assert math.isnan(true_score.disattenuated_correlation(0.6, 0.0))


def test_prmse_follows_loukina_et_al_2020_with_partial_double_scoring() -> None:
    # Loukina et al. 2020, eqs. for V(e) (rater error), V(T) (true score) and MSE(T|M),
    # written per essay: c_i ratings, mean rating hbar_i, N essays, M ratings in all.
    ratings = [[x] if math.isnan(y) else [x, y] for x, y in zip(H1, H2, strict=True)]
    c = [len(r) for r in ratings]
    hbar = [mean(r) for r in ratings]
    n, total = len(ratings), sum(c)
    double = [r for r in ratings if len(r) > 1]
    var_e = sum(sample_var(r) * (len(r) - 1) for r in double) / sum(len(r) - 1 for r in double)
    grand = sum(sum(r) for r in ratings) / total
    var_t = (
        sum(ci * (hb - grand) ** 2 for ci, hb in zip(c, hbar, strict=True)) - (n - 1) * var_e
    ) / (total - sum(ci**2 for ci in c) / total)
    mse_t = (
        sum(ci * (hb - s) ** 2 for ci, hb, s in zip(c, hbar, SYS, strict=True)) - n * var_e
    ) / total
    ts = true_score.true_score(SYS, H1, H2)
    assert ts is not None
    assert (ts.n, ts.n_double, ts.n_single) == (7, 4, 3)
    assert ts.variance_errors_human == pytest.approx(var_e)
    assert ts.variance_true == pytest.approx(var_t)
    assert ts.mse_true == pytest.approx(mse_t)
    assert ts.prmse == pytest.approx(1 - mse_t / var_t)


def test_prmse_with_every_essay_double_scored_is_classical_test_theory() -> None:
    # The mean of two ratings has variance V(T) + V(e)/2 and expected squared distance to a
    # machine score MSE(T|M) + V(e)/2, with V(e) half the mean squared rater difference.
    h1 = np.array([2.0, 3.0, 4.0, 1.0, 3.0, 5.0])
    h2 = np.array([3.0, 3.0, 4.0, 2.0, 2.0, 5.0])
    sys = np.array([2.2, 3.4, 3.6, 1.1, 2.9, 4.4])
    var_e = float(np.mean((h1 - h2) ** 2)) / 2
    avg = (h1 + h2) / 2
    ts = true_score.true_score(sys, h1, h2)
    assert ts is not None and ts.n_single == 0
    assert ts.variance_true == pytest.approx(float(np.var(avg, ddof=1)) - var_e / 2)
    assert ts.mse_true == pytest.approx(float(np.mean((avg - sys) ** 2)) - var_e / 2)


# ---- fairness ------------------------------------------------------------------------------

GH = np.array([1.0, 2.0, 3.0, 4.0, 2.0, 3.0, 4.0, 3.0, 1.0, 2.0, 4.0, 3.0])
GM = np.array([1.5, 2.0, 3.5, 3.0, 2.5, 3.0, 4.0, 2.0, 1.0, 3.0, 3.5, 3.5])
LABELS = ["a", "a", "a", "a", "a", "b", "b", "b", "b", "c", "c", None]


def test_dsm_z_scores_on_the_whole_set_including_unlabelled_essays() -> None:
    rows = fairness.group_rows(GH, GM, LABELS, "l1", min_n=4, continuous=True)
    assert [r.group for r in rows] == ["a", "b", "c"]  # None forms no group
    mu_h, mu_m = mean(GH.tolist()), mean(GM.tolist())
    sd_h, sd_m = math.sqrt(sample_var(GH.tolist())), math.sqrt(sample_var(GM.tolist()))
    for row in rows:
        idx = [i for i, g in enumerate(LABELS) if g == row.group]
        z = [(GM[i] - mu_m) / sd_m - (GH[i] - mu_h) / sd_h for i in idx]
        assert row.dsm == pytest.approx(mean(z))
        assert row.n == len(idx) and row.column == "l1"
        assert row.h_mean == pytest.approx(mean([GH[i] for i in idx]))
        assert row.judged == (len(idx) >= 4)
        assert row.flagged == (row.judged and abs(row.dsm) > 0.10)
    assert not rows[2].judged and not rows[2].flagged  # 2 essays: statistics, no verdict
    assert any(r.flagged for r in rows)


def test_dsm_is_undefined_when_the_whole_set_is_constant() -> None:
    rows = fairness.group_rows([2.0] * 4, [1.0, 2.0, 3.0, 2.0], ["x", "x", "y", "y"], "g", min_n=1)
    assert all(math.isnan(r.dsm) and not r.judged and not r.flagged for r in rows)


def ols(y: np.ndarray, x: np.ndarray) -> tuple[np.ndarray, np.ndarray, float, float]:
    """Least squares by the normal equations: coefficients, their SEs, R2 and adjusted R2."""
    beta = np.linalg.solve(x.T @ x, x.T @ y)
    resid = y - x @ beta
    n, p = x.shape
    s2 = resid @ resid / (n - p)
    se = np.sqrt(np.diag(s2 * np.linalg.inv(x.T @ x)))
    r2 = 1 - resid @ resid / np.sum((y - y.mean()) ** 2)
    return beta, se, r2, 1 - (1 - r2) * (n - 1) / (n - p)


def test_fairness_models_are_loukina_2019_regressions_with_the_largest_group_as_base() -> None:
    rng = np.random.default_rng(8)  # the most frequent human score is 2, not the lowest
    n = 60
    h = rng.integers(1, 5, n).astype(float)
    labels = np.array(["b"] * 25 + ["a"] * 20 + ["c"] * 15)
    m = h + rng.normal(0, 0.6, n) + np.where(labels == "c", 0.4, 0.0)
    models = {fm.analysis: fm for fm in fairness.fairness_analyses(h, m, labels.tolist())}
    assert list(models) == ["osa", "osd", "csd"]
    groups = ["b", "a", "c"]  # by size, the largest ("b") the base
    dummies = np.column_stack([np.ones(n)] + [(labels == g).astype(float) for g in groups[1:]])
    t = scipy_stats.t.ppf(0.975, n - 3)
    error = m - h
    for key, y in (("osa", error**2), ("osd", error)):
        beta, se, _, adj = ols(y, dummies)
        fm = models[key]
        assert fm.base_group == "b" and fm.n == n
        assert fm.r2 == pytest.approx(adj)
        assert [e.group for e in fm.estimates] == ["Intercept (b)", "a", "c"]
        # the intercept is the base group's mean, each coefficient a difference of means
        assert fm.estimates[0].estimate == pytest.approx(y[labels == "b"].mean())
        assert fm.estimates[2].estimate == pytest.approx(
            y[labels == "c"].mean() - y[labels == "b"].mean()
        )
        for e, b, s in zip(fm.estimates, beta, se, strict=True):
            assert (e.ci_low, e.ci_high) == (pytest.approx(b - t * s), pytest.approx(b + t * s))
            assert e.p_value == pytest.approx(2 * scipy_stats.t.sf(abs(b / s), n - 3))
    # CSD: the human score as a category whose base level is the most frequent score
    counts = {v: int(np.sum(h == v)) for v in set(h.tolist())}
    levels = sorted(counts, key=lambda v: (-counts[v], v))
    human_dummies = [(h == v).astype(float) for v in levels[1:]]
    null = np.column_stack([np.ones(n), *human_dummies])
    full = np.column_stack([dummies, *human_dummies])
    beta, _, _, adj_full = ols(error, full)
    assert models["csd"].r2 == pytest.approx(adj_full - ols(error, null)[3])
    assert [e.estimate for e in models["csd"].estimates] == pytest.approx(beta[:3].tolist())
    assert models["osd"].estimates[2].p_value < 0.05  # the shifted group is found


def test_fairness_needs_two_groups() -> None:
    with pytest.raises(AesError, match="1 group"):
        fairness.fairness_analyses([1.0, 2.0, 3.0], [1.0, 2.0, 2.0], ["x", "x", None])
    with pytest.raises(AesError, match="labels has 2 values but the scores have 3"):
        fairness.fairness_analyses([1.0, 2.0, 3.0], [1.0, 2.0, 2.0], ["x", "y"])


def test_ordered_by_size_breaks_ties_alphabetically() -> None:
    assert fairness.ordered_by_size(["b", "c", "a", "c", "a"]) == ["a", "c", "b"]
    assert fairness.ordered_by_size([3.0, 10.0, 2.0]) == [2.0, 3.0, 10.0]


# ---- flags ---------------------------------------------------------------------------------


def test_every_issue_rule_is_there_with_threshold_and_source() -> None:
    expected = {
        "qwk_low": ("<", 0.70),
        "corr_low": ("<", 0.70),
        "degradation_low": ("<", -0.10),
        "smd_high": ("abs>", 0.15),
        "dsm_high": ("abs>", 0.10),
        "disattenuated_low": ("<", 0.90),
        "level_share_diff": ("abs>", 5.0),
        "hh_exact_low": ("<", 50.0),
        "hh_adjacent_low": ("<", 95.0),
    }
    assert {k: (r.comparison, r.threshold) for k, r in flags.RULES.items()} == expected
    assert all(r.key == k and r.source and r.text for k, r in flags.RULES.items())


@pytest.mark.parametrize(
    ("key", "value", "verdict"),
    [
        ("qwk_low", 0.69, True),
        ("qwk_low", 0.70, False),  # RSMTool highlights strictly beyond the bound
        ("smd_high", -0.16, True),
        ("smd_high", 0.15, False),
        ("dsm_high", 0.11, True),
        ("degradation_low", -0.11, True),
        ("degradation_low", 0.2, False),
        ("level_share_diff", -5.5, True),
        ("hh_adjacent_low", 94.9, True),
        ("disattenuated_low", math.nan, False),
        ("disattenuated_low", None, False),
        ("corr_low", np.float64(0.5), True),
    ],
)
def test_flagged(key: str, value: float | None, verdict: bool) -> None:
    assert flags.flagged(key, value) is verdict


def test_unknown_rule_suggests_the_closest() -> None:
    with pytest.raises(AesError, match="did you mean 'qwk_low'"):
        flags.flagged("qwk_lo", 0.5)


# ---- RSMTool itself ------------------------------------------------------------------------

RSMVENV = Path("/tmp/rsmvenv/bin/python")

RSMTOOL_SCRIPT = """
import json, sys, warnings
import numpy as np, pandas as pd
warnings.simplefilter("ignore")
from rsmtool.analyzer import Analyzer
from rsmtool.fairness_utils import get_fairness_analyses
from rsmtool.utils.prmse import get_true_score_evaluations
d = json.load(open(sys.argv[1]))
h, m = pd.Series(d["h"]), pd.Series(d["m"])
h2 = pd.Series([np.nan if v is None else v for v in d["h2"]])
a = Analyzer()
out = {"eval": a.metrics_helper(h, m).to_dict(),
       "levels": a.metrics_helper(h, m.round()).to_dict()}
df = pd.DataFrame({"sc1": h, "raw": m, "sc2": h2})
out["consistency"] = a.compute_metrics(df, include_second_score=True)[2].iloc[0].to_dict()
out["true"] = get_true_score_evaluations(df, ["raw"], ["sc1", "sc2"]).iloc[0].to_dict()
g = pd.DataFrame({"sc1": h, "raw": m, "raw_trim": m, "raw_trim_round": m.round(), "g": d["g"]})
out["dsm"] = a.compute_metrics_by_group(g, "g")[0]["DSM.raw_trim"].to_dict()
fair = get_fairness_analyses(g, "g", "raw")[1]
out["fair"] = fair["fairness_metrics_by_g"].drop(columns="base_category").to_dict()
out["csd"] = fair["estimates_csd_by_g"]["estimate"].to_dict()
print(json.dumps(out, default=float))
"""


@pytest.mark.slow  # importing rsmtool alone takes 15-45 s on 2 shared cores
@pytest.mark.skipif(not RSMVENV.exists(), reason="RSMTool's separate environment is absent")
def test_same_numbers_as_rsmtool_12(tmp_path: Path) -> None:
    rng = np.random.default_rng(11)
    n = 150
    h = rng.integers(1, 7, n).astype(float)
    m = np.clip(h + rng.normal(0, 0.9, n), 1, 6)
    h2 = np.where(rng.random(n) < 0.4, np.clip(h + rng.integers(-1, 2, n), 1, 6), np.nan)
    g = rng.choice(["x", "y", "z"], n, p=[0.5, 0.3, 0.2])
    data = tmp_path / "scores.json"
    data.write_text(
        json.dumps(
            {"h": h.tolist(), "m": m.tolist(), "g": g.tolist()}
            | {"h2": [None if math.isnan(v) else v for v in h2]}
        )
    )
    done = subprocess.run(
        [str(RSMVENV), "-c", RSMTOOL_SCRIPT, str(data)],
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    )
    ref = json.loads(done.stdout)
    ours = {
        "eval": rsm_metrics.agreement(h, m, continuous=True).as_dict(),
        "levels": rsm_metrics.agreement(h, np.round(m), scale=ScoreScale(1, 6)).as_dict(),
    }
    consistency = true_score.consistency(h, h2, scale=ScoreScale(1, 6))
    assert consistency is not None
    ours["consistency"] = {
        k.replace("h_", "h1_").replace("sys_", "h2_"): v
        for k, v in consistency.agreement.as_dict().items()
    }
    compared = 0
    for table in ("eval", "levels", "consistency"):
        for name, value in ref[table].items():
            key = name.lower()
            if key in ours[table]:
                assert ours[table][key] == pytest.approx(value, abs=1e-9), (table, name)
                compared += 1
    assert compared >= 45
    ts = true_score.true_score(m, h, h2)
    assert ts is not None
    assert ts.prmse == pytest.approx(ref["true"]["PRMSE true"], abs=1e-9)
    assert ts.variance_true == pytest.approx(ref["true"]["True score var"], abs=1e-9)
    assert ts.variance_errors_human == pytest.approx(ref["true"]["Variance of errors"], abs=1e-9)
    rows = fairness.group_rows(h, m, g.tolist(), "g", min_n=1, continuous=True)
    assert {r.group: r.dsm for r in rows} == pytest.approx(
        {k: v for k, v in ref["dsm"].items() if k != "All data"}, abs=1e-9
    )
    models = {f.analysis: f for f in fairness.fairness_analyses(h, m, g.tolist())}
    for analysis, column in fairness.ANALYSES.items():
        assert models[analysis].r2 == pytest.approx(ref["fair"][column]["R2"], abs=1e-9)
        assert models[analysis].p_value == pytest.approx(ref["fair"][column]["sig"], abs=1e-9)
    assert {e.group: e.estimate for e in models["csd"].estimates} == pytest.approx(
        ref["csd"], abs=1e-9
    )
