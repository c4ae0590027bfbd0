"""The report: validity arithmetic against hand-computed values, and the HTML page built from
real prediction files (TF-IDF and length ridges fitted on the shipped essay sample)."""

from __future__ import annotations

import base64
import copy
import dataclasses
import io
import json
import re
import shutil
from collections.abc import Callable
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from conftest import CliResult
from rich.console import Console
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import Ridge

from aes_ensemble.cli.main import main
from aes_ensemble.cli.stack_commands import print_leaderboard
from aes_ensemble.data import Essays, load_workspace_dataset, read_essays
from aes_ensemble.demo import DemoResult, run_demo
from aes_ensemble.errors import AesError
from aes_ensemble.folds import assign_folds, save_folds
from aes_ensemble.metrics import headline_qwk
from aes_ensemble.report import write_report
from aes_ensemble.report.html import ReportContext, render
from aes_ensemble.report.leaderboard import (
    LeaderboardRow,
    Scored,
    Timing,
    leaderboard,
    measure,
    newest_stack_settings,
    read_stack_summaries,
)
from aes_ensemble.report.validity_doc import validity_document
from aes_ensemble.sample import TEST, TRAIN, sample_path
from aes_ensemble.stacking.qwk_numbers import LeaderboardSettings
from aes_ensemble.store import PredictionMeta, PredictionSet, PredictionStore, prediction_frame
from aes_ensemble.thresholds import fit_thresholds
from aes_ensemble.workspace import Workspace

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
TIMING = {
    "prepare": 700.25,
    "fit": {str(k): 1.0 + k for k in range(5)},
    "predict": {str(k): 0.5 for k in range(5)},
}

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
    extra: dict[str, object] | None = None,
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
        extra=extra or {},
    )
    PredictionStore(ws.oof_dir).write(PredictionSet(frame, meta))


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> Workspace:
    """A workspace on the shipped sample: two ridge learners and a mean stack in ``oof/``, and
    the stack's summary JSON (weights, final cut points) in ``reports/``. ``ridge_tfidf``
    records where its time went (``extra["timing"]``); ``ridge_length`` is an older file that
    does not."""
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
        extra = {"timing": TIMING} if name == "ridge_tfidf" else None
        _store(
            ws, train, test, folds, assigned.hash, name, f"ridge:{features}", oof, test_pred, extra
        )
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
    # confusion, correlation, cut points, per prompt, score distributions, DSM per group
    assert len(page.images) == 6
    for src in page.images:
        assert src.startswith("data:image/png;base64,")
        png = base64.b64decode(src.split(",", 1)[1])
        assert png.startswith(PNG_MAGIC) and len(png) > 5_000
    heads = [t[0][0] for t in _tables(report)]
    # leaderboard, stack weights, cut points, every model, the stack in detail, per prompt,
    # one score distribution (one scale), group rows and fairness models per subgroup column,
    # stacking and fairness, flagged rows, rules; no human-human table (ELLIPSE has no second
    # rating)
    assert heads[:7] == ["#", "learner", "scale", "model", "statistic", "prompt", "level"]
    assert heads[7:15] == ["group", "analysis"] * 4
    assert heads[15:] == ["model", "where", "rule"]
    for name in ("confusion", "correlation", "cutpoints", "per_prompt", "distribution", "dsm"):
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
    assert "The essays carry no second human rating, so consistency" in text


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
    train = read_essays(sample_path(TRAIN), data_format="ellipse", subgroups=("gender",))
    hostile = "<script>alert(1)</script>"
    essays = dataclasses.replace(
        train, frame=train.frame.with_columns(pl.lit(hostile).alias("gender")).with_row_index()
    )
    essays = dataclasses.replace(
        essays,
        frame=essays.frame.with_columns(
            pl.when(pl.col("index") % 2 == 0)
            .then(pl.lit("<b>bold</b>"))
            .otherwise("gender")
            .alias("gender")
        ).drop("index"),
    )
    levels = essays.scores
    scored = Scored("m", hostile, False, levels, levels, levels, Timing(), LeaderboardSettings())
    row = LeaderboardRow("m", hostile, False, 3, 0.5, (0.4, 0.6), 0.5, (0.4, 0.6), Timing())
    ctx = ReportContext(
        title="t",
        dataset={"prompts": "<b>bold</b>"},
        leaderboard=[row],
        featured="m",
        featured_is_stack=False,
        summaries=[],
        cutpoints=[],
        cutpoints_source="",
        validity=validity_document(essays, [scored], n_boot=20),
    )
    html = render(ctx)
    assert "<script>" not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "<b>bold</b>" not in html and "&lt;b&gt;bold&lt;/b&gt;" in html


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


def test_report_after_new_folds_names_the_files_still_on_the_old_ones(
    workspace: Workspace, tmp_path: Path, run_cli: Callable[..., CliResult]
) -> None:
    """`folds --force`, then one learner refitted: the report blames the stale files."""
    root = tmp_path / "ws"
    shutil.copytree(workspace.root, root)
    ws = Workspace.at(root)
    train, test = load_workspace_dataset(ws)
    assert test is not None
    new = assign_folds(train, 5, seed=7, method="grouped")
    save_folds(ws, new)
    folds = new.fold_array(train)
    oof, test_pred = _fit_oof(train, test, folds, "tfidf")
    _store(ws, train, test, folds, new.hash, "ridge_tfidf", "ridge:tfidf", oof, test_pred)
    result = run_cli("report", "-w", root)
    assert result.exit_code == 2
    assert result.stderr.startswith(f"error: {ws.oof_path('ridge_length')}: was made with other")
    assert "ridge_tfidf" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_report_writes_the_validity_document_beside_the_page(
    workspace: Workspace, report: Path
) -> None:
    document = json.loads((report.parent / "validity.json").read_text(encoding="utf-8"))
    assert document["schema_version"] == 1
    assert {m["name"] for m in document["models"]} == {"ridge_tfidf", "ridge_length", "stack_mean"}
    # the leaderboard's thresholded QWK and interval are the document's, digit for digit
    rows = _leaderboard_rows(report)
    for model in document["models"]:
        levels = model["overall"]["levels"]["wtkappa"]
        low, high = model["intervals"]["levels"]["wtkappa"]
        assert f"{levels:.3f} [{low:.3f}, {high:.3f}]" in " ".join(rows[model["name"]])


def test_cli_validity_prints_the_flags_and_exits_0(
    workspace: Workspace, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ws = Workspace.at(tmp_path / "ws")
    shutil.copytree(workspace.root, ws.root)
    (ws.reports_dir / "validity.json").unlink(missing_ok=True)
    assert main(["validity", "-w", str(ws.root), "--stack", "stack_mean"]) == 0
    out = " ".join(capsys.readouterr().out.split())
    document = json.loads((ws.reports_dir / "validity.json").read_text(encoding="utf-8"))
    stack = next(m for m in document["models"] if m["name"] == "stack_mean")
    assert stack["flags"], "the sample's ridges break some rule"
    assert f"stack_mean: {len(stack['flags'])} flagged rows" in out
    assert "quadratic weighted kappa below 0.70" in out
    assert "Williamson, Xi & Breyer 2012" in out
    assert f"wrote {ws.reports_dir / 'validity.json'}" in out


def test_cli_validity_unknown_stack_is_one_line_with_a_suggestion(
    workspace: Workspace, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["validity", "-w", str(workspace.root), "--stack", "stack_maen"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "oof: no stack named 'stack_maen'" in err
    assert "did you mean 'stack_mean'?" in err and len(err.strip().splitlines()) == 1


class _Tables(HTMLParser):
    """Every table of a page as rows of whitespace-normalised cell texts."""

    def __init__(self) -> None:
        super().__init__()
        self.tables: list[list[list[str]]] = []
        self._cell: list[str] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "table":
            self.tables.append([])
        elif tag == "tr":
            self.tables[-1].append([])
        elif tag in ("td", "th"):
            self._cell = []

    def handle_endtag(self, tag: str) -> None:
        if tag in ("td", "th") and self._cell is not None:
            self.tables[-1][-1].append(" ".join("".join(self._cell).split()))
            self._cell = None

    def handle_data(self, data: str) -> None:
        if self._cell is not None:
            self._cell.append(data)


def _tables(path: Path) -> list[list[list[str]]]:
    parser = _Tables()
    parser.feed(path.read_text(encoding="utf-8"))
    return parser.tables


def _leaderboard_rows(path: Path) -> dict[str, list[str]]:
    """Leaderboard cells by model name (the name cell may carry a 'stack' tag)."""
    header, *rows = _tables(path)[0]
    assert header[1] == "model"
    return {row[1].removesuffix(" stack"): row for row in rows}


def test_report_shows_prepare_fit_and_predict_time(report: Path) -> None:
    rows = _leaderboard_rows(report)
    header = _tables(report)[0][0]
    at = {name: header.index(name) for name in ("prepare s", "fit s", "predict s", "waited s")}
    tfidf = rows["ridge_tfidf"]
    assert tfidf[at["prepare s"]] == "700.2"
    assert tfidf[at["fit s"]] == "15.0"  # 1 + 2 + 3 + 4 + 5
    assert tfidf[at["predict s"]] == "2.5"
    assert tfidf[at["waited s"]] == "717.8"
    # an older file without a timing record: its fit seconds, nothing invented
    length = rows["ridge_length"]
    assert length[at["prepare s"]] == "—" and length[at["predict s"]] == "—"
    assert length[at["fit s"]] == length[at["waited s"]] == "2.5"


def test_fairness_rows_judge_big_groups_and_show_small_ones(report: Path) -> None:
    tables = _tables(report)
    grade = next(t for t in tables if t[0][0] == "group" and any(r[0] == "9" for r in t[1:]))
    rows = {r[0]: r for r in grade[1:]}
    # three grade-9 essays in the sample: numbers shown, no verdict
    assert rows["9"][1] == "3" and rows["9"][-1] == "not judged"
    assert all(r[-1] in ("✓ ok", "✗ |DSM| > 0.10") for g, r in rows.items() if g != "9")
    text = " ".join(" ".join(_parse(report).text).split())
    assert "Subgroup 'grade' = '9' has 3 essays (fewer than 10)" in text


def test_report_holds_no_absolute_path_of_the_machine(workspace: Workspace, report: Path) -> None:
    html = report.read_text(encoding="utf-8")
    for path in (workspace.root, workspace.root.resolve(), sample_path(TRAIN).parent):
        assert str(path) not in html
    text = " ".join(" ".join(_parse(report).text).split())
    assert f"workspace {workspace.root.name}" in text
    assert "from ellipse_train.csv (the embedded sample)" in text


def test_report_shows_a_file_inside_the_workspace_relative_to_it(tmp_path: Path) -> None:
    from aes_ensemble.report import _shown_path

    root = tmp_path / "ws"
    assert _shown_path(root / "data" / "train.csv", root) == "data/train.csv"
    assert _shown_path(tmp_path / "train.csv", root) == "../train.csv"
    assert _shown_path(sample_path(TRAIN), root) == "ellipse_train.csv (the embedded sample)"


# --- the per-prompt figure at ELLIPSE's 44 prompts ------------------------------------------


def _prompts_44() -> tuple[dict[str, dict[str, float]], dict[str, int]]:
    rng = np.random.default_rng(0)
    names = [f"prompt {i:02d}" for i in range(44)]
    counts = {p: int(n) for p, n in zip(names, rng.integers(30, 120, 44), strict=True)}
    counts["prompt 07"] = 2
    stack = {p: float(q) for p, q in zip(names, rng.uniform(0.3, 0.9, 44), strict=True)}
    single = {p: q - 0.02 for p, q in stack.items()}
    return {"stack": stack, "ridge (best single learner)": single}, counts


def test_per_prompt_rows_are_sorted_counted_and_small_ones_marked() -> None:
    from aes_ensemble.report.plots import prompt_rows

    series, counts = _prompts_44()
    rows = prompt_rows(series, counts, small_n=10)
    qwks = [series["stack"][r.prompt] for r in rows]
    assert qwks == sorted(qwks, reverse=True)
    assert all(r.label.startswith(f"{r.prompt} (n={counts[r.prompt]}") for r in rows)
    assert [r.prompt for r in rows if r.small] == ["prompt 07"]
    assert next(r for r in rows if r.small).label == "prompt 07 (n=2, too few)"


def test_per_prompt_figure_stays_compact_at_44_prompts() -> None:
    from matplotlib.image import imread

    from aes_ensemble.report.plots import per_prompt_png

    series, counts = _prompts_44()
    png = per_prompt_png(series, counts, 0.7, 10)
    height, _width = imread(io.BytesIO(png)).shape[:2]
    assert height <= 1100, f"{height} px for 44 prompts"
    few = per_prompt_png({k: dict(list(v.items())[:8]) for k, v in series.items()}, counts, 0.7, 10)
    assert imread(io.BytesIO(few)).shape[0] < height


# --- one number everywhere: the demo's terminal, JSON and report ----------------------------


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> tuple[Workspace, DemoResult, str]:
    """The demo run once into a temp workspace, and what its leaderboard printed at 80 columns."""
    ws = Workspace.at(tmp_path_factory.mktemp("demo"))
    result = run_demo(ws)
    out = Console(width=80, record=True, file=io.StringIO())
    print_leaderboard(result.stack, out)
    return ws, result, out.export_text()


def test_stack_qwk_is_one_number_in_terminal_json_and_report(
    demo: tuple[Workspace, DemoResult, str],
) -> None:
    ws, result, terminal = demo
    summary = json.loads((ws.reports_dir / f"{result.stack.name}.json").read_text())
    entries = {e["name"]: e for e in summary["leaderboard"]}
    assert result.stack.name in entries and len(entries) >= 3
    lines = terminal.splitlines()
    html_rows = _leaderboard_rows(result.report)
    essays, _ = load_workspace_dataset(ws)
    sets = PredictionStore(ws.oof_dir).read_many(list(entries), expected_ids=essays.ids)
    settings = newest_stack_settings(sets)
    computed = {
        r.name: r for r in leaderboard([measure(ps, essays, settings) for ps in sets], essays)
    }
    for name, e in entries.items():
        # terminal: one line per learner with its numbers
        (line,) = [ln for ln in lines if re.match(rf"│ {re.escape(name)}\*? ", ln)]
        assert f"{e['plain']:.4f}" in line and f"{e['cross']:.4f}" in line
        assert f"{e['cross_ci'][0]:.4f}-{e['cross_ci'][1]:.4f}" in line
        # report: the very same numbers, not a recomputation by another method
        row = computed[name]
        assert row.qwk_thresholded == e["cross"] and list(row.ci_thresholded) == e["cross_ci"]
        assert row.qwk_rounded == e["plain"] and list(row.ci_rounded) == e["plain_ci"]
        cells = " ".join(html_rows[name])
        assert f"{e['cross']:.3f} [{e['cross_ci'][0]:.3f}, {e['cross_ci'][1]:.3f}]" in cells


def test_leaderboard_fits_80_columns_and_prints_per_prompt_qwk(
    demo: tuple[Workspace, DemoResult, str],
) -> None:
    _, result, terminal = demo
    assert max(len(line) for line in terminal.splitlines()) <= 80
    summary = result.stack.summary
    best = summary["best_single"]
    assert re.search(rf"│ {best}\* +│", terminal)
    assert "(best single)" not in terminal and "* best single learner" in terminal
    per_prompt = next(e for e in summary["leaderboard"] if e["role"] == "stack")["per_prompt"]
    assert len(per_prompt) == 10
    for prompt, value in per_prompt.items():
        (line,) = [ln for ln in terminal.splitlines() if f"│ {prompt} " in ln]
        assert re.search(rf"│ +48 │ +{value:.4f} │", line)
    assert f"{np.mean(list(per_prompt.values())):.4f}" in terminal


def test_stack_run_offers_its_leaderboard_as_a_dataframe(
    demo: tuple[Workspace, DemoResult, str],
) -> None:
    _, result, _ = demo
    frame = result.stack.leaderboard
    assert isinstance(frame, pl.DataFrame)
    assert frame.columns[:2] == ["name", "role"]
    entries = {e["name"]: e for e in result.stack.summary["leaderboard"]}
    assert sorted(frame["name"].to_list()) == sorted(entries)
    assert frame["qwk_cross"].to_list() == sorted(frame["qwk_cross"].to_list(), reverse=True)
    for row in frame.iter_rows(named=True):
        assert row["qwk_cross"] == entries[row["name"]]["cross"]
        assert [row["cross_low"], row["cross_high"]] == entries[row["name"]]["cross_ci"]


def test_demo_report_holds_no_absolute_path_of_the_workspace(
    demo: tuple[Workspace, DemoResult, str],
) -> None:
    ws, result, _ = demo
    html = result.report.read_text(encoding="utf-8")
    assert str(ws.root) not in html and str(ws.root.resolve()) not in html


def test_per_prompt_terminal_table_stays_short_at_44_prompts(
    demo: tuple[Workspace, DemoResult, str],
) -> None:
    _, result, _ = demo
    series, _ = _prompts_44()
    summary = copy.deepcopy(result.stack.summary)
    for entry in summary["leaderboard"]:
        entry["per_prompt"] = series["stack"]
    out = Console(width=80, record=True, file=io.StringIO())
    print_leaderboard(dataclasses.replace(result.stack, summary=summary), out)
    text = out.export_text()
    assert max(len(line) for line in text.splitlines()) <= 80
    weakest = sorted(series["stack"], key=series["stack"].__getitem__)
    listed = [p for p in series["stack"] if re.search(rf"│ {p} +│", text)]
    assert sorted(listed) == sorted(weakest[:10])
    assert "34 more prompts in reports/report.html" in text


def test_demo_report_shows_the_validity_sections(
    demo: tuple[Workspace, DemoResult, str],
) -> None:
    ws, result, _ = demo
    text = " ".join(" ".join(_parse(result.report).text).split())
    stack = result.stack.name
    for heading in (
        "Validity: RSMTool's statistics for every model",
        "Every model, overall",
        f"{stack} in detail",
        f"Score distributions: {stack}",
        "Consistency and true score",
        "Fairness by subgroup",
        f"gender: {stack}",
        "Did stacking change fairness?",
        f"Flags: {stack}",
    ):
        assert heading in text, heading
    # ELLIPSE has no second rating: the consistency section says so
    assert "The essays carry no second human rating, so consistency" in text
    document = json.loads((ws.reports_dir / "validity.json").read_text(encoding="utf-8"))
    assert document["dataset"]["fairness_columns"] == ["gender", "grade", "race_ethnicity", "SES"]
