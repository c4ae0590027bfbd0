"""``aes-ensemble fit-base`` as a user runs it: summary table, resume, one-line errors."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from aes_ensemble.store import read_predictions

RIDGE = (
    "kind: ridge\nfeatures:\n  handcrafted: true\n"
    "  tfidf: {word_ngram_range: [1, 1], char_ngram_range: null, max_features: 2000}\n"
    "params: {alpha: 10.0}\n"
)


def test_fit_base_fits_a_fold_then_the_rest_and_prints_the_summary(
    ellipse_workspace: Callable[..., Path], run_cli: Callable[..., Any]
) -> None:
    root = ellipse_workspace(ridge=RIDGE)
    first = run_cli("fit-base", "ridge", "--fold", "1", "--workdir", root, "--no-progress")
    assert first.exit_code == 0, first.stderr
    assert "fitted" in first.stdout and "folds 0, 2 still to fit" in first.stdout
    assert not (root / "oof" / "ridge.parquet").exists()
    rest = run_cli("fit-base", "ridge", "-w", root, "params.alpha=10.0", "--no-progress")
    assert rest.exit_code == 0, rest.stderr
    assert rest.stdout.count("skipped") == 1 and rest.stdout.count("fitted") == 2
    assert "OOF" in rest.stdout and "wrote" in rest.stdout
    meta = read_predictions(root / "oof" / "ridge.parquet").meta
    assert f"{meta.fold_qwk['1']:.4f}" in first.stdout


def test_override_changes_the_config_and_the_store_records_it(
    ellipse_workspace: Callable[..., Path], run_cli: Callable[..., Any]
) -> None:
    root = ellipse_workspace(ridge=RIDGE)
    result = run_cli("fit-base", "ridge", "-w", root, "params.alpha=0.5", "--no-progress")
    assert result.exit_code == 0, result.stderr
    assert read_predictions(root / "oof" / "ridge.parquet").meta.config["params"]["alpha"] == 0.5


def test_bad_input_is_one_error_line_with_exit_2(
    ellipse_workspace: Callable[..., Path], run_cli: Callable[..., Any]
) -> None:
    root = ellipse_workspace(ridge=RIDGE)
    cases = {
        ("ridge", "params.alpah=2"): "key 'params.alpah': unknown key (did you mean 'alpha'?)",
        ("ridge", "--fold", "7"): "folds run 0..2",
        ("ridge", "--fold", "two"): "--fold 'two' must be 'all'",
        ("rigde",): "no config named 'rigde' (did you mean 'ridge'?)",
        ("ridge", "features.tfidf.min_df=zero"): "key 'features.tfidf.min_df'",
    }
    for args, message in cases.items():
        result = run_cli("fit-base", *args, "-w", root, "--no-progress")
        assert result.exit_code == 2, args
        assert result.stderr.startswith("error: ") and result.stderr.count("\n") == 1, args
        assert message in result.stderr, (args, result.stderr)
    assert not (root / "base_models" / "ridge").exists()
