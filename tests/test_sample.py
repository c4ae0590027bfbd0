"""The essay sample shipped in the package: readable, licensed, disjoint, on ELLIPSE's scale."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest

from aes_ensemble.data import read_essays
from aes_ensemble.errors import AesError
from aes_ensemble.sample import LICENSE, TEST, TRAIN, sample_path
from aes_ensemble.scales import ELLIPSE_SCALE

SUBGROUPS = ("gender", "grade", "race_ethnicity", "SES")


def _rows(name: str) -> tuple[list[str], list[dict[str, str]]]:
    with sample_path(name).open(newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        return list(reader.fieldnames or []), list(reader)


def test_files_have_the_documented_columns_and_sizes() -> None:
    train_header, train = _rows(TRAIN)
    test_header, test = _rows(TEST)
    assert train_header == [
        "text_id_kaggle",
        "full_text",
        "prompt",
        "Overall",
        *SUBGROUPS,
    ]
    assert test_header == [c for c in train_header if c != "Overall"]
    assert 400 <= len(train) <= 600 and 50 <= len(test) <= 120
    total = sample_path(TRAIN).stat().st_size + sample_path(TEST).stat().st_size
    assert total < 1.5e6


def test_license_sits_beside_the_data_and_names_terms_and_changes() -> None:
    licence = sample_path(LICENSE)
    assert licence.parent == sample_path(TRAIN).parent
    text = licence.read_text(encoding="utf-8")
    for needed in ("CC BY-NC-SA 4.0", "NonCommercial", "ShareAlike", "Crossley", "2023"):
        assert needed in text
    assert "What was changed" in text


def test_reader_detects_ellipse_and_scores_are_half_points_1_to_5() -> None:
    train = read_essays(sample_path(TRAIN), subgroups=SUBGROUPS)
    test = read_essays(sample_path(TEST), role="test", subgroups=SUBGROUPS)
    assert train.scales == ELLIPSE_SCALE
    scores = train.scores
    assert set(np.unique(scores)) <= {1.0 + 0.5 * k for k in range(9)}
    assert ELLIPSE_SCALE.for_prompt(None).is_level(scores).all()
    assert test.frame["score"].null_count() == len(test)
    assert not set(train.ids) & set(test.ids)


def test_prompts_allow_prompt_grouped_five_fold_cv() -> None:
    _, train = _rows(TRAIN)
    _, test = _rows(TEST)
    per_prompt: dict[str, int] = {}
    for row in train:
        per_prompt[row["prompt"]] = per_prompt.get(row["prompt"], 0) + 1
    assert len(per_prompt) >= 5
    assert min(per_prompt.values()) >= 30
    assert {row["prompt"] for row in test} <= set(per_prompt)


def test_score_distribution_resembles_the_full_corpus(ellipse_path: Path) -> None:
    with (ellipse_path / "ELLIPSE_Final_github_test.csv").open(newline="", encoding="utf-8") as f:
        full = np.asarray([float(r["Overall"]) for r in csv.DictReader(f)])
    sample = np.asarray([float(r["Overall"]) for r in _rows(TRAIN)[1]])
    assert abs(sample.mean() - full.mean()) < 0.05
    for level in (2.0, 2.5, 3.0, 3.5, 4.0):
        assert abs((sample == level).mean() - (full == level).mean()) < 0.03


def test_make_sample_reproduces_the_shipped_files(ellipse_path: Path, tmp_path: Path) -> None:
    import subprocess
    import sys

    script = Path(__file__).resolve().parents[1] / "scripts" / "make_sample.py"
    source = ellipse_path / "ELLIPSE_Final_github_test.csv"
    subprocess.run(
        [sys.executable, str(script), "--source", str(source), "--out", str(tmp_path)], check=True
    )
    for name in (TRAIN, TEST):
        assert (tmp_path / name).read_bytes() == sample_path(name).read_bytes()


def test_unknown_sample_name_suggests_the_close_one() -> None:
    with pytest.raises(AesError, match=r"ellipse_train\.csv"):
        sample_path("ellipse_trian.csv")
