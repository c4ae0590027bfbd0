"""The quickstart end to end, as a new user runs it: `aes-ensemble demo` on the embedded sample."""

from __future__ import annotations

from collections.abc import Callable
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import polars as pl
import pytest

from aes_ensemble.data import read_essays
from aes_ensemble.sample import TEST, sample_path
from aes_ensemble.store import read_predictions


class _Images(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.sources: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "img":
            self.sources += [v or "" for k, v in attrs if k == "src"]


@pytest.mark.slow
def test_demo_runs_end_to_end_and_reruns_from_finished_folds(
    run_cli: Callable[..., Any], tmp_path: Path
) -> None:
    first = run_cli("demo", "--workdir", tmp_path)
    assert first.exit_code == 0, first.stderr
    assert "stack_nnls" in first.stdout

    submission = pl.read_csv(tmp_path / "submission.csv", schema_overrides={"essay_id": pl.String})
    test = read_essays(sample_path(TEST), role="test")
    assert submission["essay_id"].to_list() == test.ids
    levels = set(submission["score"].to_list())
    assert levels <= {1.0, 1.5, 2.0, 2.5, 3.0, 3.5, 4.0, 4.5, 5.0}
    assert len(levels) > 1

    stack = read_predictions(tmp_path / "oof" / "stack_nnls.parquet")
    assert stack.meta.extra["models"] == ["ridge_tfidf", "lgbm"]
    for name in ("ridge_tfidf", "lgbm"):
        assert read_predictions(tmp_path / "oof" / f"{name}.parquet").meta.folds_hash == (
            stack.meta.folds_hash
        )

    page = (tmp_path / "reports" / "report.html").read_text(encoding="utf-8")
    images = _Images()
    images.feed(page)
    assert images.sources and all(s.startswith("data:image/png;base64,") for s in images.sources)

    second = run_cli("demo", "--workdir", tmp_path)
    assert second.exit_code == 0, second.stderr
    assert read_predictions(tmp_path / "oof" / "stack_nnls.parquet").frame.equals(stack.frame)


def test_demo_refuses_a_workspace_with_other_data(
    run_cli: Callable[..., Any], tmp_path: Path
) -> None:
    (tmp_path / "configs").mkdir()
    (tmp_path / "configs" / "data.yaml").write_text("train: mine.csv\n")
    result = run_cli("demo", "--workdir", tmp_path)
    assert result.exit_code == 2
    assert result.stderr.startswith("error: ")
    assert "not the demo sample" in result.stderr
    assert not (tmp_path / "folds.csv").exists()
