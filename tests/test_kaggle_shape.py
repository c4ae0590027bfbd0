"""A competition shaped as on Kaggle, from the command line: a training file with demographic
columns (ELLIPSE's, kept as subgroups by default) and a test file with only id, text and prompt.
Scores, second ratings and subgroups describe training rows; the test file, a file given to
``score`` and a request to the server never need them."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import polars as pl
import pytest
import yaml
from conftest import CliResult

from aes_ensemble.sample import TEST, TRAIN, sample_path

KAGGLE_TEST_COLUMNS = ["text_id_kaggle", "full_text", "prompt"]
SUBGROUPS = ["gender", "grade", "race_ethnicity", "SES"]


def kaggle_files(folder: Path) -> tuple[Path, Path]:
    """train.csv: essays with score and demographic columns; test.csv: id, text, prompt."""
    folder.mkdir()
    train, test = folder / "train.csv", folder / "test.csv"
    pl.read_csv(sample_path(TRAIN), infer_schema=False).head(240).write_csv(train)
    sample_test = pl.read_csv(sample_path(TEST), infer_schema=False).head(40)
    sample_test.select(KAGGLE_TEST_COLUMNS).write_csv(test)
    return train, test


@pytest.mark.slow
def test_a_kaggle_shaped_test_file_goes_from_folds_to_a_bundle_score(
    tmp_path: Path, run_cli: Callable[..., CliResult]
) -> None:
    train, test = kaggle_files(tmp_path / "data")
    ws, bundle = tmp_path / "ws", tmp_path / "bundle"

    def ok(*args: str | Path) -> CliResult:
        result = run_cli(*args)
        assert result.exit_code == 0, (args, result.stderr)
        assert "error" not in result.stderr, result.stderr
        return result

    ok("folds", "--train", train, "--test", test, "--n-folds", "3", "-w", ws)
    data_config = yaml.safe_load((ws / "configs" / "data.yaml").read_text(encoding="utf-8"))
    assert data_config["subgroups"] == SUBGROUPS
    ok("fit-base", "ridge_tfidf", "-w", ws, "--no-progress")
    lgbm = ("params.n_estimators=30", "params.early_stopping_rounds=10")
    ok("fit-base", "lgbm", *lgbm, "-w", ws, "--no-progress")
    ok("stack", "--meta", "nnls", "-w", ws)
    ok("predict", "-w", ws)
    ok("export", bundle, "-w", ws)
    scores = tmp_path / "scores.csv"
    ok("score", test, "--bundle", bundle, "-o", scores, "--no-progress")

    submission = pl.read_csv(ws / "submission.csv", infer_schema=False)
    expected_ids = pl.read_csv(test, infer_schema=False)["text_id_kaggle"].to_list()
    assert submission["essay_id"].to_list() == expected_ids
    scored = pl.read_csv(scores, infer_schema=False)
    assert scored.select("essay_id", "score").equals(submission.select("essay_id", "score"))
