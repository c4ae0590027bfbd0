"""`aes-ensemble score` and `Ensemble`: a fitted stack scores new essays with the numbers
`predict` writes, and refuses bad input in one line."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from conftest import CliResult

from aes_ensemble.data import load_workspace_dataset
from aes_ensemble.demo import prepare_workspace
from aes_ensemble.engine import fit_learner
from aes_ensemble.errors import AesError
from aes_ensemble.folds import assign_folds, save_folds
from aes_ensemble.sample import TEST, TRAIN, sample_path
from aes_ensemble.scoring import Ensemble
from aes_ensemble.stacking import stack_config, stack_workspace, write_submission
from aes_ensemble.store import PredictionStore, aligned_rows
from aes_ensemble.workspace import Workspace

METAS = ("ridge", "nnls", "lgbm", "hill", "mean", "vote")
# Cheap learners: TF-IDF ridge and a LightGBM of few trees on the embedded sample.
LEARNERS = {
    "ridge_tfidf": [],
    "lgbm": ["params.n_estimators=40", "params.early_stopping_rounds=10"],
}


def fit_sample_workspace(root: Path, *, metas: tuple[str, ...] = ("nnls",)) -> Workspace:
    """The embedded sample in ``root``: 3 prompt-grouped folds, the cheap learners, and one
    stack per meta (``stack_<meta>``, few bootstrap draws)."""
    ws = Workspace.at(root)
    prepare_workspace(ws)
    train, _ = load_workspace_dataset(ws)
    save_folds(ws, assign_folds(train, n_folds=3, seed=42))
    for name, overrides in LEARNERS.items():
        fit_learner(ws, name, overrides=overrides, progress=False)
    for meta in metas:
        stack_workspace(ws, stack_config(ws, overrides={"meta": meta, "n_boot": 20}))
    return ws


@pytest.fixture(scope="module")
def fitted(tmp_path_factory: pytest.TempPathFactory) -> Workspace:
    return fit_sample_workspace(tmp_path_factory.mktemp("score") / "ws", metas=METAS)


@pytest.mark.slow
@pytest.mark.parametrize("meta", METAS)
def test_score_reproduces_predict(
    meta: str, fitted: Workspace, tmp_path: Path, run_cli: Callable[..., CliResult]
) -> None:
    """`score` on the workspace's own test file writes `predict`'s submission byte for byte,
    and the stack's continuous test predictions to 1e-9."""
    name = f"stack_{meta}"
    submission, _, _ = write_submission(fitted, name, output=tmp_path / "submission.csv")
    scores = tmp_path / "scores.csv"
    result = run_cli("score", sample_path(TEST), "-w", fitted.root, "--stack", name, "-o", scores)
    assert result.exit_code == 0, result.stderr
    assert scores.read_text() == submission.read_text()

    _, test = load_workspace_dataset(fitted)
    assert test is not None
    explained = Ensemble.load(fitted.root, name).score(test, explain=True)
    stack_rows = aligned_rows(PredictionStore(fitted.oof_dir).read(name), "test", test.ids)
    np.testing.assert_allclose(
        explained["pred"].to_numpy(), stack_rows["pred"].to_numpy(), rtol=0, atol=1e-9
    )
    for learner in LEARNERS:
        rows = aligned_rows(PredictionStore(fitted.oof_dir).read(learner), "test", test.ids)
        np.testing.assert_allclose(
            explained[learner].to_numpy(), rows["pred"].to_numpy(), rtol=0, atol=1e-9
        )


@pytest.mark.slow
def test_score_takes_texts_frames_and_essays(fitted: Workspace) -> None:
    """The three inputs give the same scores; ids follow the input (row numbers for texts)."""
    ensemble = Ensemble.load(fitted.root, "stack_nnls")
    _, test = load_workspace_dataset(fitted)
    assert test is not None
    subset = test.take(list(range(5)))
    from_essays = ensemble.score(subset)
    from_frame = ensemble.score(subset.frame.select("essay_id", "full_text", "prompt"))
    from_texts = ensemble.score(subset.texts)
    assert from_frame.equals(from_essays)
    assert from_texts["score"].to_list() == from_essays["score"].to_list()
    assert from_texts["essay_id"].to_list() == ["0", "1", "2", "3", "4"]
    assert sorted(ensemble.learners) == ["lgbm", "ridge_tfidf"]
    assert ensemble.stack_name == "stack_nnls"
    assert set(ensemble.manifest["learners"]) == {"ridge_tfidf", "lgbm"}


@pytest.mark.slow
@pytest.mark.parametrize(
    ("essays", "message"),
    [
        ([], "no essays to score"),
        ("one essay", "a list of essay texts"),
        (["fine", "  "], "row 2: essay text is empty"),
        (pl.DataFrame({"essay_id": ["a"], "text": ["x"]}), "lacks column 'full_text'"),
        (pl.DataFrame({"essay_id": ["a", "a"], "full_text": ["x", "y"]}), "duplicate essay_id"),
    ],
)
def test_library_refuses_bad_essays(fitted: Workspace, essays: object, message: str) -> None:
    ensemble = Ensemble.load(fitted.root, "stack_mean")
    with pytest.raises(AesError, match=message):
        ensemble.score(essays)  # type: ignore[arg-type]


@pytest.mark.slow
def test_score_prints_qwk_where_the_file_has_scores(
    fitted: Workspace,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    run_cli: Callable[..., CliResult],
) -> None:
    monkeypatch.setenv("AES_PROGRESS_SECONDS", "0")  # every progress line, not one per 10 s
    train = pl.read_csv(sample_path(TRAIN), infer_schema=False).head(30)
    train.write_csv(tmp_path / "scored.csv")
    result = run_cli(
        "score", tmp_path / "scored.csv", "-w", fitted.root, "--stack", "stack_ridge",
        "-o", tmp_path / "out.csv", "--explain",
    )  # fmt: skip
    assert result.exit_code == 0, result.stderr
    assert "QWK against the file's scores: " in result.stdout
    assert "ridge_tfidf 30/30 essays" in result.stderr and "essays/s" in result.stderr
    written = pl.read_csv(tmp_path / "out.csv")
    assert written.columns == ["essay_id", "score", "pred", "lgbm", "ridge_tfidf"]
    assert written.height == 30


def _refused(run_cli: Callable[..., CliResult], out: Path, *args: object) -> str:
    """Run `score`, expect one `error:` line and exit 2, and that ``out`` was not written."""
    result = run_cli("score", *args, "-o", out)
    assert result.exit_code == 2, result.stdout
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), lines
    assert not out.exists()
    return lines[0]


@pytest.mark.slow
def test_score_refuses_bad_input(
    fitted: Workspace, tmp_path: Path, run_cli: Callable[..., CliResult]
) -> None:
    out = tmp_path / "scores.csv"
    ws = ("-w", fitted.root, "--stack", "stack_mean")
    (tmp_path / "header.csv").write_text("essay_id,full_text\n")
    assert "no essays" in _refused(run_cli, out, tmp_path / "header.csv", *ws)
    (tmp_path / "empty.csv").write_text("")
    assert "file is empty" in _refused(run_cli, out, tmp_path / "empty.csv", *ws)

    # a file the readers refuse: the same message as `data check`
    (tmp_path / "dup.csv").write_text("essay_id,full_text\na,one\na,two\n")
    line = _refused(run_cli, out, tmp_path / "dup.csv", *ws)
    check = run_cli("data", "check", tmp_path / "dup.csv")
    assert line == check.stderr.strip()
    assert "duplicate essay_id 'a'" in line

    line = _refused(run_cli, out, sample_path(TEST), "-w", fitted.root, "--stack", "lgbm")
    assert "'lgbm' is a learner, not a stack" in line
    line = _refused(run_cli, out, sample_path(TEST), "-w", fitted.root, "--stack", "stack_men")
    assert "no stack named 'stack_men' (did you mean 'stack_mean'?)" in line
    line = _refused(run_cli, out, sample_path(TEST), "-w", fitted.root)
    assert "several stacks" in line
    line = _refused(run_cli, out, sample_path(TEST), "--bundle", tmp_path)
    assert "not a bundle: no manifest.json" in line


@pytest.mark.slow
def test_score_refuses_a_stale_stack(
    fitted: Workspace, tmp_path: Path, run_cli: Callable[..., CliResult]
) -> None:
    """A learner refit since the stack was made (other settings, so other predictions), or a
    saved model from another run than the stack's predictions: "restack", nothing written."""
    root = tmp_path / "copy"
    shutil.copytree(fitted.root, root)
    out = tmp_path / "scores.csv"
    out.write_text("kept\n")
    saved = root / "base_models"
    shutil.rmtree(saved / "stack_ridge")
    shutil.copytree(saved / "stack_nnls", saved / "stack_ridge")
    result = run_cli("score", sample_path(TEST), "-w", root, "--stack", "stack_ridge", "-o", out)
    assert result.exit_code == 2
    assert "not the one its predictions came from" in result.stderr
    assert "restack: run aes-ensemble stack --meta ridge" in result.stderr

    record = root / "base_models" / "ridge_tfidf" / "fold_1" / "done.json"
    original = record.read_text()
    record.write_text(original.replace('"data_hash": "', '"data_hash": "0'))
    result = run_cli("score", sample_path(TEST), "-w", root, "--stack", "stack_mean", "-o", out)
    assert result.exit_code == 2
    assert "'ridge_tfidf' was refit since stack 'stack_mean' was made (data hash differs)" in (
        result.stderr
    )
    record.write_text(original)

    fit_learner(Workspace.at(root), "lgbm", overrides=["params.n_estimators=30"], progress=False)
    result = run_cli("score", sample_path(TEST), "-w", root, "--stack", "stack_nnls", "-o", out)
    assert result.exit_code == 2
    assert "'lgbm' that were refit since; run aes-ensemble stack" in result.stderr
    assert out.read_text() == "kept\n"


@pytest.mark.slow
@pytest.mark.parametrize(
    ("data", "per_prompt"),
    [
        ("", "true"),  # one scale, one model per prompt
        ("per_prompt_scales: {Being busy: '1-5:0.5', Self-reliance: '1-5:0.5'}\n", "false"),
    ],
    ids=["per-prompt-models", "per-prompt-scales"],
)
def test_score_refuses_a_prompt_without_a_model(
    data: str, per_prompt: str, tmp_path: Path, run_cli: Callable[..., CliResult]
) -> None:
    """Per-prompt learners (or scales) cover only the prompts they were fitted on: an essay of
    another prompt is one line naming it and the known prompts."""
    root = tmp_path / "ws"
    (root / "configs").mkdir(parents=True)
    essays = pl.read_csv(sample_path(TRAIN), infer_schema=False)
    known = ["Being busy", "Self-reliance"]
    essays.filter(pl.col("prompt").is_in(known)).write_csv(root / "train.csv")
    (root / "configs" / "data.yaml").write_text(f"train: train.csv\nformat: ellipse\n{data}")
    ws = Workspace.at(root)
    train, _ = load_workspace_dataset(ws)
    save_folds(ws, assign_folds(train, n_folds=3, seed=42, method="stratified"))
    fit_learner(ws, "ridge_tfidf", overrides=[f"per_prompt={per_prompt}"], progress=False)
    stack_workspace(ws, stack_config(ws, overrides={"meta": "mean", "n_boot": 10}))
    new = essays.filter(pl.col("prompt").is_in([*known, "Career commitment"])).drop("Overall")
    new.write_csv(tmp_path / "new.csv")
    out = tmp_path / "scores.csv"
    line = _refused(run_cli, out, tmp_path / "new.csv", "-w", root)
    assert "has prompt 'Career commitment'" in line
    assert "Being busy, Self-reliance" in line
    seen = new.filter(pl.col("prompt").is_in(known)).rename({"text_id_kaggle": "essay_id"})
    assert Ensemble.load(root).score(seen)["essay_id"].to_list() == seen["essay_id"].to_list()
