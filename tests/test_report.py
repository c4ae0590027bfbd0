"""The report: validity arithmetic against hand-computed values, and the HTML page built from
real prediction files (TF-IDF and length ridges fitted on the shipped essay sample)."""

from __future__ import annotations

import base64
import json
import math
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import Ridge

from aes_ensemble.cli.main import main
from aes_ensemble.data import Essays, load_workspace_dataset
from aes_ensemble.errors import AesError
from aes_ensemble.folds import assign_folds
from aes_ensemble.metrics import headline_qwk
from aes_ensemble.report import write_report
from aes_ensemble.report.html import ReportContext, render
from aes_ensemble.report.leaderboard import LeaderboardRow, read_stack_summaries
from aes_ensemble.report.validity import (
    ALL,
    agreement_table,
    pooled_sd,
    smd,
    smd_table,
)
from aes_ensemble.sample import TEST, TRAIN, sample_path
from aes_ensemble.scales import ScoreScale, ScoreScales
from aes_ensemble.store import PredictionMeta, PredictionSet, PredictionStore, prediction_frame
from aes_ensemble.thresholds import fit_thresholds
from aes_ensemble.workspace import Workspace

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"

# --- validity: hand-computed values ---------------------------------------------------------


def test_smd_equal_spread_is_mean_difference_over_sd() -> None:
    # means 3 and 2, both sample variances 1 -> pooled SD 1 -> SMD 1
    assert smd([2, 3, 4], [1, 2, 3]) == pytest.approx(1.0)


def test_smd_unequal_spread_uses_root_mean_of_variances() -> None:
    # machine mean 2.5, var 5/3; human mean 3, var 4; pooled sqrt((5/3 + 4) / 2) = sqrt(17/6)
    assert pooled_sd(np.array([1.0, 2, 3, 4]), np.array([2.0, 2, 2, 6])) == pytest.approx(
        math.sqrt(17 / 6)
    )
    assert smd([1, 2, 3, 4], [2, 2, 2, 6]) == pytest.approx(-0.5 / math.sqrt(17 / 6))
    assert smd([1, 2, 3, 4], [2, 2, 2, 6]) == pytest.approx(-0.297044, abs=1e-6)


def test_smd_undefined_for_constant_or_tiny_groups() -> None:
    assert math.isnan(smd([3, 3], [3, 3]))
    assert math.isnan(smd([3], [2]))


def test_smd_table_flags_overall_at_015_and_subgroups_at_010() -> None:
    h = np.array([1.0, 2, 3, 4, 5] * 4)
    group = np.array(["a"] * 10 + ["b"] * 10, dtype=object)
    m = np.where(group == "b", h + 0.5, h)
    rows = smd_table(m, h, {"sex": group})
    overall, a, b = rows
    # overall: means 3.25 vs 3; variances 41.25/19 and 40/19
    assert overall.group == ALL and overall.column is None and overall.n == 20
    assert overall.smd == pytest.approx(0.25 / math.sqrt((41.25 / 19 + 40 / 19) / 2))
    assert overall.smd == pytest.approx(0.170970, abs=1e-6)
    assert overall.limit == 0.15 and overall.judged and overall.flagged
    # group a: identical scores; group b: shifted by 0.5 with SD sqrt(20/9)
    assert (a.group, a.smd, a.flagged) == ("a", 0.0, False)
    assert b.smd == pytest.approx(0.5 / math.sqrt(20 / 9))
    assert b.limit == 0.10 and b.flagged
    assert (b.human_mean, b.machine_mean) == (3.0, 3.5)


def test_smd_table_prompt_rows_use_the_overall_limit() -> None:
    h = np.array([1.0, 2, 3, 4, 5] * 4)
    prompt = np.array(["p1"] * 10 + ["p2"] * 10, dtype=object)
    m = np.where(prompt == "p2", h + 0.2, h)
    rows = smd_table(m, h, {"sex": ["f", "m"] * 10}, prompt)
    by = {(r.column, r.group): r for r in rows}
    # p2: shift 0.2 over SD sqrt(20/9) = 0.134 -> within 0.15 (a subgroup would fail 0.10)
    p2 = by[("prompt", "p2")]
    assert p2.smd == pytest.approx(0.2 / math.sqrt(20 / 9))
    assert p2.limit == 0.15 and p2.judged and not p2.flagged
    assert by[("prompt", "p1")].smd == 0.0
    assert [r.column for r in rows] == [None, "prompt", "prompt", "sex", "sex"]


def test_smd_table_small_and_missing_groups_are_shown_not_judged() -> None:
    h = np.array([1.0, 2, 3, 4, 5] * 2 + [2.0, 4.0])
    m = h + np.r_[np.zeros(10), 1.0, 1.0]
    rows = smd_table(m, h, {"SES": ["x"] * 10 + [None, None]})
    missing = next(r for r in rows if r.group == "(missing)")
    assert missing.n == 2 and missing.smd == pytest.approx(1.0 / math.sqrt(2))
    assert not missing.judged and not missing.flagged


def test_agreement_degradation_against_second_rater() -> None:
    # machine vs human on scale 1-2: C = [[1, 1], [0, 2]], observed 1, expected (2*3 + 2*1)/4 = 2
    # -> QWK 1 - 1/2 = 0.5; raters agree perfectly -> 1.0; degradation 0.5 > 0.10.
    # The fifth essay has no second rating and must not count.
    scales = ScoreScales(default=ScoreScale(1, 2))
    rows = agreement_table(
        human=[1, 1, 2, 2, 1],
        machine=[1, 2, 2, 2, 2],
        rater1=[1, 1, 2, 2, 1],
        rater2=[1, 1, 2, 2, np.nan],
        prompts=[None] * 5,
        scales=scales,
    )
    overall = rows[0]
    assert overall.prompt == ALL and overall.n == 4
    assert overall.human_machine_qwk == pytest.approx(0.5)
    assert overall.human_human_qwk == pytest.approx(1.0)
    assert overall.degradation == pytest.approx(0.5)
    assert overall.flagged and overall.below_minimum


def test_agreement_per_prompt_scales_average_prompts() -> None:
    # prompt b on 0-3: machine exact (QWK 1); raters opposite at the ends: observed 18,
    # expected 9 -> QWK -1. Prompt a as above: 0.5 and 1.0.
    scales = ScoreScales(per_prompt={"a": ScoreScale(1, 2), "b": ScoreScale(0, 3)})
    rows = agreement_table(
        human=[1, 1, 2, 2, 0, 3],
        machine=[1, 2, 2, 2, 0, 3],
        rater1=[1, 1, 2, 2, 0, 3],
        rater2=[1, 1, 2, 2, 3, 0],
        prompts=["a"] * 4 + ["b"] * 2,
        scales=scales,
    )
    overall, a, b = rows
    assert (a.prompt, b.prompt) == ("a", "b")
    assert b.human_machine_qwk == pytest.approx(1.0)
    assert b.human_human_qwk == pytest.approx(-1.0)
    assert not b.flagged
    assert overall.human_machine_qwk == pytest.approx(0.75)
    assert overall.human_human_qwk == pytest.approx(0.0)


def test_agreement_without_second_ratings_is_empty() -> None:
    scales = ScoreScales(default=ScoreScale(1, 2))
    nan = [np.nan, np.nan]
    assert agreement_table([1, 2], [1, 2], nan, nan, [None, None], scales) == []


# --- the report on real prediction files ----------------------------------------------------


def _length_features(texts: list[str]) -> np.ndarray:
    words = [t.split() for t in texts]
    return np.column_stack(
        [
            np.log1p([len(w) for w in words]),
            [len(set(w)) / max(len(w), 1) for w in words],
            [np.mean([len(x) for x in w]) if w else 0.0 for w in words],
            np.log1p([t.count(".") + t.count("!") + t.count("?") for t in texts]),
        ]
    )


def _fit_oof(
    train: Essays, test: Essays, folds: np.ndarray, features: str
) -> tuple[np.ndarray, np.ndarray]:
    """OOF and test predictions of a ridge on TF-IDF words or on length statistics."""

    def design(fit_texts: list[str], other: list[str]) -> tuple[np.ndarray, np.ndarray]:
        if features == "tfidf":
            vec = TfidfVectorizer(ngram_range=(1, 2), min_df=2, sublinear_tf=True)
            return vec.fit_transform(fit_texts), vec.transform(other)
        return _length_features(fit_texts), _length_features(other)

    y, texts = train.scores, np.asarray(train.texts, dtype=object)
    oof = np.empty(len(y))
    for k in np.unique(folds):
        fit, held = folds != k, folds == k
        x_fit, x_held = design(list(texts[fit]), list(texts[held]))
        oof[held] = Ridge(alpha=1.0).fit(x_fit, y[fit]).predict(x_held)
    x_all, x_test = design(list(texts), test.texts)
    return oof, Ridge(alpha=1.0).fit(x_all, y).predict(x_test)


def _store(
    ws: Workspace,
    train: Essays,
    test: Essays,
    folds: np.ndarray,
    folds_hash: str,
    name: str,
    learner: str,
    oof: np.ndarray,
    test_pred: np.ndarray,
) -> None:
    frame = prediction_frame(
        [*train.ids, *test.ids],
        ["oof"] * len(train) + ["test"] * len(test),
        np.r_[oof, test_pred],
        fold=[*folds.tolist(), *[None] * len(test)],
        prompt=[*train.prompts, *test.prompts],
    )
    meta = PredictionMeta(
        name=name,
        learner=learner,
        folds_hash=folds_hash,
        seed=0,
        fit_seconds={str(k): 0.5 for k in np.unique(folds)},
        fold_qwk={},
        scales=train.scales.to_dict(),
    )
    PredictionStore(ws.oof_dir).write(PredictionSet(frame, meta))


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> Workspace:
    """A workspace on the shipped sample: two ridge learners and a mean stack in ``oof/``, and
    the stack's summary JSON (weights, final cut points) in ``reports/``."""
    root = tmp_path_factory.mktemp("ws")
    (root / "configs").mkdir()
    (root / "configs" / "data.yaml").write_text(
        f"train: {sample_path(TRAIN)}\ntest: {sample_path(TEST)}\nformat: ellipse\n"
        "subgroups: [gender, grade, race_ethnicity, SES]\n",
        encoding="utf-8",
    )
    ws = Workspace.at(root)
    train, test = load_workspace_dataset(ws)
    assert test is not None
    assigned = assign_folds(train, 5, seed=42, method="grouped")
    folds = assigned.fold_array(train)
    preds = {}
    for name, features in (("ridge_tfidf", "tfidf"), ("ridge_length", "length")):
        oof, test_pred = _fit_oof(train, test, folds, features)
        _store(ws, train, test, folds, assigned.hash, name, f"ridge:{features}", oof, test_pred)
        preds[name] = (oof, test_pred)
    stack_oof = np.mean([p[0] for p in preds.values()], axis=0)
    stack_test = np.mean([p[1] for p in preds.values()], axis=0)
    _store(ws, train, test, folds, assigned.hash, "stack_mean", "stack:mean", stack_oof, stack_test)
    cuts = fit_thresholds(train.scores, stack_oof, train.prompts, train.scales)
    (root / "reports").mkdir()
    (root / "reports" / "stack_mean.json").write_text(
        json.dumps(
            {
                "name": "stack_mean",
                "weights": {"ridge_tfidf": 0.5, "ridge_length": 0.5},
                "final_thresholds": cuts.to_dict(),
                "correlation": "ignored by the report",
            }
        ),
        encoding="utf-8",
    )
    return ws


@pytest.fixture(scope="module")
def report(workspace: Workspace, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_report(workspace, tmp_path_factory.mktemp("out"))


class _Page(HTMLParser):
    """Collects what a self-contained page must and must not have."""

    def __init__(self) -> None:
        super().__init__()
        self.images: list[str] = []
        self.tables = 0
        self.urls: list[str] = []
        self.tags: list[str] = []
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        values = dict(attrs)
        if tag == "img":
            self.images.append(values.get("src") or "")
        if tag == "table":
            self.tables += 1
        for key in ("href", "src", "srcset", "action", "data", "poster"):
            value = values.get(key) or ""
            if value and not value.startswith(("data:", "#")):
                self.urls.append(value)

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def _parse(path: Path) -> _Page:
    page = _Page()
    page.feed(path.read_text(encoding="utf-8"))
    return page


def test_report_is_self_contained_with_images_and_tables(report: Path) -> None:
    page = _parse(report)
    assert page.urls == []
    assert "link" not in page.tags and "script" not in page.tags
    assert "url(" not in report.read_text(encoding="utf-8")
    # confusion, correlation, cut points, per prompt
    assert len(page.images) == 4
    for src in page.images:
        assert src.startswith("data:image/png;base64,")
        png = base64.b64decode(src.split(",", 1)[1])
        assert png.startswith(PNG_MAGIC) and len(png) > 5_000
    # leaderboard, stack weights, cut points, SMD (no second rating in ELLIPSE)
    assert page.tables == 4
    for name in ("confusion", "correlation", "cutpoints", "per_prompt"):
        assert (report.parent / f"{name}.png").read_bytes().startswith(PNG_MAGIC)


def test_report_numbers_are_the_metrics_of_the_files(workspace: Workspace, report: Path) -> None:
    train, _ = load_workspace_dataset(workspace)
    ps = PredictionStore(workspace.oof_dir).read("ridge_tfidf")
    oof = dict(zip(ps.oof["essay_id"].to_list(), ps.oof["pred"].to_list(), strict=True))
    pred = np.asarray([oof[i] for i in train.ids])
    rounded = headline_qwk(
        train.scores, train.scales.round(pred, train.prompts), None, train.scales
    )
    text = " ".join(" ".join(_parse(report).text).split())
    assert "ridge_tfidf stack" not in text
    assert f"{rounded:.3f}" in text
    assert "stack_mean stack" in text
    assert "Confusion matrix: stack_mean" in text
    assert "Final cut points of the stack, read from stack_mean.json" in text
    for group in ("Female", "Male", "Economically disadvantaged", "Hispanic/Latino"):
        assert group in text
    assert "no second human rating" in text


def test_stack_summary_weights_and_cuts_are_read(workspace: Workspace) -> None:
    (summary,) = read_stack_summaries(workspace.reports_dir, ["stack_mean"])
    assert summary.name == "stack_mean"
    assert summary.weights == {"ridge_tfidf": 0.5, "ridge_length": 0.5}
    assert summary.thresholds is not None
    assert len(summary.thresholds.cutpoints[0].cuts) == 8


def test_broken_stack_summary_names_the_file(tmp_path: Path) -> None:
    (tmp_path / "stack_x.json").write_text("{not json", encoding="utf-8")
    with pytest.raises(AesError, match=r"stack_x\.json"):
        read_stack_summaries(tmp_path, ["stack_x"])


def test_report_is_bit_identical_on_rerun(
    workspace: Workspace, report: Path, tmp_path: Path
) -> None:
    again = write_report(workspace, tmp_path)
    assert again.read_bytes() == report.read_bytes()
    assert (tmp_path / "confusion.png").read_bytes() == (
        report.parent / "confusion.png"
    ).read_bytes()


def test_user_text_is_escaped() -> None:
    row = LeaderboardRow(
        "m", "<script>alert(1)</script>", False, 3, 0.5, (0.4, 0.6), 0.5, (0.4, 0.6), None
    )
    ctx = ReportContext(
        title="t",
        dataset={"prompts": "<b>bold</b>"},
        leaderboard=[row],
        featured="m",
        featured_is_stack=False,
        summaries=[],
        cutpoints=[],
        cutpoints_source="",
        agreement=[],
        smd=[],
        subgroups=[],
    )
    html = render(ctx)
    assert "<script>" not in html and "&lt;script&gt;" in html
    assert "<b>bold</b>" not in html


def test_cli_report_writes_the_page_and_fails_cleanly_without_predictions(
    workspace: Workspace, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["report", "--workdir", str(workspace.root), "--out", str(tmp_path)]) == 0
    assert (tmp_path / "report.html").is_file()
    empty = tmp_path / "empty"
    shutil.copytree(workspace.configs_dir, empty / "configs")
    assert main(["report", "--workdir", str(empty)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "fit-base" in err and len(err.strip().splitlines()) == 1


CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed: no headless render")
def test_report_renders_in_headless_chromium(report: Path, tmp_path: Path) -> None:
    shot = tmp_path / "report.png"
    subprocess.run(
        [
            str(CHROMIUM),
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            f"--user-data-dir={tmp_path / 'profile'}",
            f"--screenshot={shot}",
            "--window-size=1280,4000",
            report.resolve().as_uri(),
        ],
        check=True,
        capture_output=True,
        timeout=120,
    )
    from matplotlib.image import imread

    image = imread(shot)
    assert image.shape[:2] == (4000, 1280)
    # a blank or error page is near-uniform; the report has text, tables and figures
    gray = image[..., :3].mean(axis=2)
    assert gray.std() > 0.05
    assert (gray < 0.5).mean() > 0.01
