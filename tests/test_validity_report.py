"""The validity document (reports/validity.json): what goes into each table, the overall rows
where prompts have their own scales, the bootstrap intervals, flags and the notes bad input
leaves. Real essays (the shipped ELLIPSE sample) or small synthetic sets with a second rater;
the statistics themselves are tested in test_validity_stats.py."""

from __future__ import annotations

import dataclasses
import json
import math
from html import unescape

import numpy as np
import polars as pl
import pytest

from aes_ensemble.data import Essays, read_essays
from aes_ensemble.metrics import bootstrap_interval, headline_qwk, mean_qwk
from aes_ensemble.report.bootstrap import moment_intervals
from aes_ensemble.report.leaderboard import Scored, Timing
from aes_ensemble.report.rsm_metrics import agreement
from aes_ensemble.report.true_score import true_score
from aes_ensemble.report.validity_doc import SCHEMA_VERSION, rating_step, validity_document
from aes_ensemble.sample import TRAIN, sample_path
from aes_ensemble.scales import ScoreScale, ScoreScales
from aes_ensemble.stacking.qwk_numbers import LeaderboardSettings

SUBGROUPS = ("gender", "grade", "race_ethnicity", "SES")


def _scored(name: str, essays: Essays, noise: float, seed: int, stack: bool = False) -> Scored:
    """A model whose continuous prediction is the human score plus noise; levels rounded."""
    rng = np.random.default_rng(seed)
    pred = essays.scores + rng.normal(0, noise, len(essays))
    levels = essays.scales.round(pred, essays.prompts)
    return Scored(
        name,
        "stack" if stack else "ridge",
        stack,
        pred,
        levels,
        levels,
        Timing(),
        LeaderboardSettings(n_boot=200, seed=3),
    )


@pytest.fixture(scope="module")
def ellipse() -> Essays:
    return read_essays(sample_path(TRAIN), data_format="ellipse", subgroups=SUBGROUPS)


@pytest.fixture(scope="module")
def ellipse_doc(ellipse: Essays) -> dict:
    scored = [_scored("ridge", ellipse, 0.5, 0), _scored("stack", ellipse, 0.4, 1, stack=True)]
    return validity_document(ellipse, scored)


def _two_raters(n_per_prompt: int = 60, seed: int = 0) -> Essays:
    """Two prompts on their own scales (1-6 and 0-3), like ASAP; every other essay of prompt a
    and all of prompt b double-scored, the resolved score the first rating."""
    rng = np.random.default_rng(seed)
    scales = ScoreScales(per_prompt={"a": ScoreScale(1, 6), "b": ScoreScale(0, 3)})
    rows = []
    for prompt, scale in scales.per_prompt.items():
        first = rng.integers(scale.low, scale.high + 1, n_per_prompt).astype(float)
        second = np.clip(first + rng.integers(-1, 2, n_per_prompt), scale.low, scale.high)
        if prompt == "a":
            second[::2] = np.nan
        rows += [
            (f"{prompt}{i}", f"essay {prompt}{i}", f, prompt, None, f, s)
            for i, (f, s) in enumerate(zip(first, second, strict=True))
        ]
    frame = pl.DataFrame(
        rows,
        schema={
            "essay_id": pl.String,
            "full_text": pl.String,
            "score": pl.Float64,
            "prompt": pl.String,
            "source": pl.String,
            "rater1": pl.Float64,
            "rater2": pl.Float64,
        },
        orient="row",
    )
    return Essays(frame, scales)


def test_document_is_strict_json_with_every_model_and_section(ellipse_doc: dict) -> None:
    text = json.dumps(ellipse_doc, allow_nan=False)  # NaN would not be JSON
    assert json.loads(text) == ellipse_doc
    assert ellipse_doc["schema_version"] == SCHEMA_VERSION == 1
    assert [m["name"] for m in ellipse_doc["models"]] == ["ridge", "stack"]
    model = ellipse_doc["models"][1]
    assert set(model) >= {
        "overall",
        "intervals",
        "per_prompt",
        "distribution",
        "confusion",
        "consistency",
        "fairness",
        "flags",
    }
    assert len(model["per_prompt"]) == 10
    assert ellipse_doc["dataset"]["fairness_columns"] == list(SUBGROUPS)
    assert set(ellipse_doc["rules"]) >= {"qwk_low", "dsm_high", "smd_high", "hh_exact_low"}


def test_overall_rows_are_the_statistics_of_all_essays(ellipse: Essays, ellipse_doc: dict) -> None:
    stack = _scored("stack", ellipse, 0.4, 1, stack=True)
    model = ellipse_doc["models"][1]
    levels = agreement(ellipse.scores, stack.thresholded, scale=ellipse.scales.default)
    continuous = agreement(
        ellipse.scores, stack.pred, scale=ellipse.scales.default, continuous=True
    )
    assert model["overall"]["levels"] == pytest.approx(levels.as_dict(), nan_ok=True)
    assert model["overall"]["continuous"] == pytest.approx(continuous.as_dict(), nan_ok=True)
    # the leaderboard's headline QWK and, with its n_boot and seed, its very interval
    assert model["overall"]["levels"]["wtkappa"] == headline_qwk(
        ellipse.scores, stack.thresholded, ellipse.prompts, ellipse.scales
    )
    assert model["intervals"]["levels"]["wtkappa"] == list(
        bootstrap_interval(
            ellipse.scores,
            stack.thresholded,
            prompts=ellipse.prompts,
            scales=ellipse.scales,
            n_boot=200,
            seed=3,
        )
    )
    confusion = np.asarray(model["confusion"][0]["matrix"])
    assert confusion.shape == (9, 9) and confusion.sum() == len(ellipse)
    shares = model["distribution"][0]["levels"]
    assert sum(s["human_pct"] for s in shares) == pytest.approx(100)


def test_no_second_rating_says_so_and_leaves_consistency_empty(ellipse_doc: dict) -> None:
    assert ellipse_doc["human_human"] is None
    assert all(m["consistency"] is None for m in ellipse_doc["models"])
    assert ellipse_doc["dataset"]["n_double_scored"] is None
    assert any("no second human rating" in n for n in ellipse_doc["notes"])


def test_small_groups_get_statistics_and_no_verdict(ellipse_doc: dict) -> None:
    grade = ellipse_doc["models"][1]["fairness"]["grade"]["levels"]
    nine = next(g for g in grade["groups"] if g["group"] == "9")
    assert nine["n"] == 3 and nine["dsm"] is not None
    assert not nine["judged"] and not nine["flagged"]
    assert [a["analysis"] for a in grade["analyses"]] == ["osa", "osd", "csd"]
    osa, osd, csd = grade["analyses"]
    for model in (osa, osd):
        assert -1 < model["r2_ci_low"] < model["r2_ci_high"] < 1
    assert csd["r2_ci_low"] is None
    assert any("'grade' = '9' has 3 essays" in n for n in ellipse_doc["notes"])
    flagged_where = {f["where"] for f in ellipse_doc["models"][1]["flags"]}
    assert "grade = 9" not in flagged_where


def test_every_flag_carries_its_rule_threshold_and_source(ellipse_doc: dict) -> None:
    flags = [f for m in ellipse_doc["models"] for f in m["flags"]]
    assert flags, "noisy predictions on the sample break at least one rule"
    rules = ellipse_doc["rules"]
    for flag in flags:
        rule = rules[flag["rule"]]
        assert flag["threshold"] == rule["threshold"] and flag["source"] == rule["source"]
        value, limit = flag["value"], flag["threshold"]
        broken = {"<": value < limit, ">": value > limit, "abs>": abs(value) > limit}
        assert broken[flag["comparison"]], flag
    # a per-prompt QWK below 0.70 is flagged where it happens
    model = ellipse_doc["models"][0]
    low = [p for p, k in model["per_prompt"].items() if k["levels"]["wtkappa"] < 0.70]
    assert {f["where"] for f in model["flags"] if f["rule"] == "qwk_low"} >= set(low)


def test_per_prompt_scales_pool_overall_and_keep_prompt_rows_on_their_scale() -> None:
    essays = _two_raters()
    s = _scored("m", essays, 0.6, 2)
    doc = validity_document(essays, [s], n_boot=100, seed=0)
    model = doc["models"][0]
    assert doc["dataset"]["per_prompt_scales"]
    assert doc["dataset"]["overall"]["scores"] == "normalised to 0-1 on each prompt's scale"
    a = essays.prompts == "a"
    prompt_a = agreement(essays.scores[a], s.thresholded[a], scale=ScoreScale(1, 6))
    assert model["per_prompt"]["a"]["levels"] == pytest.approx(prompt_a.as_dict(), nan_ok=True)
    overall = model["overall"]["levels"]
    # QWK: the ASAP protocol (mean of the prompts'); agreement rates pooled over all essays
    assert overall["wtkappa"] == pytest.approx(
        mean_qwk(essays.scores, s.thresholded, essays.prompts, essays.scales)
    )
    assert overall["exact_agr"] == pytest.approx(100 * np.mean(essays.scores == s.thresholded))
    normalised = essays.scales.normalise(s.thresholded, essays.prompts)
    human = essays.scales.normalise(essays.scores, essays.prompts)
    assert overall["corr"] == pytest.approx(np.corrcoef(human, normalised)[0, 1])


def test_second_rating_gives_consistency_degradation_and_prmse() -> None:
    essays = _two_raters()
    s = _scored("m", essays, 0.6, 2)
    doc = validity_document(essays, [s], n_boot=100, seed=0)
    first, second = essays.human_ratings()
    both = np.isfinite(second)
    assert doc["dataset"]["n_double_scored"] == int(both.sum()) == 90
    hh = doc["human_human"]
    b = essays.prompts == "b"
    expected = agreement(first[b], second[b], scale=ScoreScale(0, 3), smd_method="pooled")
    row = dict(hh["per_prompt"]["b"])
    assert row.pop("rating_step") == 1.0
    pair = b & both
    within_one = np.abs(first[pair] - second[pair]) <= 1
    assert row.pop("adj_agr_rating") == pytest.approx(100 * within_one.mean())
    assert row == pytest.approx(expected.as_dict(), nan_ok=True)
    block = doc["models"][0]["consistency"]["per_prompt"]["b"]["levels"]
    mh = doc["models"][0]["per_prompt"]["b"]["levels"]
    assert block["degradation"]["wtkappa"] == pytest.approx(mh["wtkappa"] - expected.wtkappa)
    assert block["disattenuated_corr"] == pytest.approx(mh["corr"] / math.sqrt(expected.corr))
    prmse = true_score(s.thresholded[b], first[b], second[b])
    assert prmse is not None
    assert block["true_score"]["prmse"] == pytest.approx(prmse.prmse)


def test_bad_input_becomes_notes_and_the_rest_is_written() -> None:
    essays = _two_raters()
    frame = essays.frame.with_columns(
        # a second rating off the 0-3 scale of prompt b
        pl.when(pl.col("essay_id") == "b3").then(7.0).otherwise(pl.col("rater2")).alias("rater2"),
        pl.lit(None, dtype=pl.String).alias("empty"),
        pl.lit("all").alias("single"),
        pl.Series("sex", [None] * 12 + ["f", "m"] * (len(essays) // 2 - 6)),
    )
    essays = dataclasses.replace(essays, frame=frame, subgroups=("empty", "single", "sex"))
    doc = validity_document(essays, [_scored("m", essays, 0.6, 2)], n_boot=50)
    notes = " ".join(doc["notes"])
    assert "1 second human rating(s) are not levels of their scale (first: essay b3, value 7)" in (
        notes
    )
    assert "Subgroup column 'empty' is empty" in notes
    assert "Subgroup column 'single' has one group only ('all')" in notes
    assert doc["dataset"]["fairness_columns"] == ["sex"]
    assert doc["human_human"]["n"] == 89  # the bad rating is left out
    assert list(doc["models"][0]["fairness"]) == ["sex"]
    # essays without a value form their own group, as RSMTool's "No info", everywhere
    assert "Subgroup column 'sex' has no value for 12 essays: they form the group '(missing)'" in (
        notes
    )
    sex = doc["models"][0]["fairness"]["sex"]["levels"]
    assert [(g["group"], g["n"]) for g in sex["groups"]] == [
        ("(missing)", 12),
        ("f", 54),
        ("m", 54),
    ]
    osd = next(a for a in sex["analyses"] if a["analysis"] == "osd")
    assert {e["group"] for e in osd["estimates"]} == {"Intercept (f)", "m", "(missing)"}


def test_no_double_scored_essay_is_a_note_not_a_crash() -> None:
    essays = _two_raters()
    essays = dataclasses.replace(
        essays, frame=essays.frame.with_columns(pl.lit(None, dtype=pl.Float64).alias("rater2"))
    )
    doc = validity_document(essays, [_scored("m", essays, 0.6, 2)], n_boot=50)
    assert doc["human_human"] is None and doc["models"][0]["consistency"] is None
    assert any("No essay has two human ratings" in n for n in doc["notes"])


def test_moment_intervals_are_percentiles_of_explicit_resamples() -> None:
    rng = np.random.default_rng(5)
    h = rng.integers(1, 7, 40).astype(float)
    m = h + rng.normal(0, 0.8, 40)
    found = moment_intervals(h, m, rates={"exact_agr": np.rint(m) == h}, n_boot=300, seed=11)
    # the same draws, one resample at a time through the statistics module
    draws = np.random.default_rng(11).integers(0, 40, size=(300, 40))
    rows = [agreement(h[i], m[i], continuous=True) for i in draws]
    for name in ("corr", "wtkappa", "smd", "smd_pooled", "rmse", "r2"):
        expected = np.quantile([getattr(r, name) for r in rows], [0.025, 0.975])
        assert found[name] == pytest.approx(tuple(expected), rel=1e-9), name
    exact = np.quantile([100 * np.mean(np.rint(m[i]) == h[i]) for i in draws], [0.025, 0.975])
    assert found["exact_agr"] == pytest.approx(tuple(exact))


def test_document_builder_is_deterministic(ellipse: Essays, ellipse_doc: dict) -> None:
    scored = [_scored("ridge", ellipse, 0.5, 0), _scored("stack", ellipse, 0.4, 1, stack=True)]
    assert validity_document(ellipse, scored) == ellipse_doc


def test_page_shows_consistency_and_the_human_bar_per_prompt() -> None:
    from aes_ensemble.report import prompt_series
    from aes_ensemble.report.html import ReportContext, render
    from aes_ensemble.report.leaderboard import LeaderboardRow

    essays = _two_raters()
    stack, single = _scored("stack", essays, 0.5, 2, stack=True), _scored("m", essays, 0.7, 3)
    doc = validity_document(essays, [stack, single], n_boot=50)
    series = prompt_series(stack, single, essays, doc)
    assert list(series) == ["stack", "m (best single learner)", "human-human"]
    assert series["human-human"] == {
        p: row["wtkappa"] for p, row in doc["human_human"]["per_prompt"].items()
    }
    rows = [
        LeaderboardRow(
            s.name, s.learner, s.is_stack, 120, 0.5, (0.4, 0.6), 0.5, (0.4, 0.6), Timing()
        )
        for s in (stack, single)
    ]
    html = render(
        ReportContext(
            title="t",
            dataset={},
            leaderboard=rows,
            featured="stack",
            featured_is_stack=True,
            summaries=[],
            cutpoints=[],
            cutpoints_source="",
            validity=doc,
        )
    )
    text = " ".join(unescape(html).split())
    assert "<th>human 1 vs human 2</th>" in text and "degradation QWK" in text
    prmse = doc["models"][0]["consistency"]["overall"]["levels"]["true_score"]["prmse"]
    assert f"{prmse:.3f}" in text
    assert "no second human rating" not in text
    assert "normalised to 0-1 on each prompt's scale" in text


def test_osa_osd_r2_intervals_are_percentiles_of_refitted_models() -> None:
    import pandas as pd
    import statsmodels.formula.api as smf

    from aes_ensemble.report.bootstrap import group_r2_intervals

    rng = np.random.default_rng(4)
    labels = np.asarray(rng.choice(["a", "b", "c"], 120).tolist() + [None] * 5, dtype=object)
    error = rng.normal(0, 1, 125) + (labels == "b") * 0.4
    found = group_r2_intervals({"osd": error, "osa": error**2}, labels, n_boot=40, seed=9)
    known = labels != None  # noqa: E711 (elementwise on an object array)
    draws = np.random.default_rng(9).integers(0, 120, size=(40, 120))
    for name, y in (("osd", error[known]), ("osa", error[known] ** 2)):
        fits = [
            smf.ols("y ~ g", data=pd.DataFrame({"y": y[i], "g": labels[known][i]})).fit()
            for i in draws
        ]
        expected = np.quantile([f.rsquared_adj for f in fits], [0.025, 0.975])
        assert found[name] == pytest.approx(tuple(expected), rel=1e-9), name


def test_adjacent_human_agreement_is_one_rating_step_apart() -> None:
    """Ratings doubled onto the resolved scale (ASAP prompts 1, 7, 8) differ in steps of 2:
    one step apart is adjacent, where RSMTool's one-point ``adj_agr`` calls it a disagreement."""
    assert rating_step(np.array([2.0, 4.0, 8.0, np.nan])) == 2.0
    assert rating_step(np.array([1.0, 1.5, 3.0])) == 0.5
    assert rating_step(np.array([3.0, 3.0])) == 1.0
    essays = _two_raters()
    first, second = essays.human_ratings()
    doubled = essays.frame.with_columns(pl.col("rater1") * 2, pl.col("rater2") * 2)
    scales = ScoreScales(per_prompt={"a": ScoreScale(2, 12), "b": ScoreScale(0, 6)})
    frame = doubled.with_columns(pl.col("score") * 2)
    twice = dataclasses.replace(essays, frame=frame, scales=scales)
    doc = validity_document(twice, [_scored("m", twice, 0.6, 2)], n_boot=20, seed=0)
    row = doc["human_human"]["overall"]
    both = np.isfinite(second)
    assert row["adj_agr_rating"] == pytest.approx(100 * np.mean(np.abs(first - second)[both] <= 1))
    assert row["adj_agr"] == pytest.approx(100 * np.mean(first[both] == second[both]))
