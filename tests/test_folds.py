"""Fold assignment on the real corpora: grouping, stratification, determinism, saving once."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from sklearn.metrics import adjusted_rand_score

from aes_ensemble.data import Essays, read_essays
from aes_ensemble.errors import AesError
from aes_ensemble.folds import assign_folds, load_folds, read_folds_file, save_folds
from aes_ensemble.workspace import Workspace


@pytest.fixture(scope="module")
def ellipse(ellipse_csv_path: Path) -> Essays:
    return read_essays(ellipse_csv_path)


@pytest.fixture(scope="module")
def asap(asap_csv_path: Path) -> Essays:
    return read_essays(asap_csv_path)


def level_shares(essays: Essays, rows: np.ndarray) -> np.ndarray:
    scale = essays.scales.for_prompt(None)
    counts = np.bincount(scale.to_index(essays.scores[rows]), minlength=scale.n_levels)
    return counts / counts.sum()


def prompts_in_one_fold(essays: Essays, fold: np.ndarray) -> bool:
    pairs = pl.DataFrame({"prompt": essays.prompts.astype(str), "fold": fold})
    return pairs.group_by("prompt").agg(pl.col("fold").n_unique())["fold"].max() == 1


def test_ellipse_auto_groups_prompts_and_stratifies_scores(ellipse: Essays) -> None:
    folds = assign_folds(ellipse, 5, seed=42)
    fold = folds.fold_array(ellipse)
    assert folds.method == "grouped"
    assert prompts_in_one_fold(ellipse, fold)
    overall = level_shares(ellipse, np.arange(len(ellipse)))
    for k in range(5):
        rows = np.flatnonzero(fold == k)
        assert abs(len(rows) - len(ellipse) / 5) < 0.05 * len(ellipse)
        assert np.abs(level_shares(ellipse, rows) - overall).max() < 0.04
    assert set(folds.frame.columns) == {"essay_id", "fold", "prompt"}


def test_asap_auto_stratifies_within_prompts(asap: Essays) -> None:
    folds = assign_folds(asap, 5, seed=42)
    fold = folds.fold_array(asap)
    assert folds.method == "stratified"
    sizes = np.bincount(fold)
    assert sizes.max() - sizes.min() <= 8
    for prompt in ["1", "3", "8"]:
        rows = np.flatnonzero(asap.prompts == prompt)
        scale = asap.scales.for_prompt(prompt)
        overall = np.bincount(scale.to_index(asap.scores[rows]), minlength=scale.n_levels)
        for k in range(5):
            in_fold = rows[fold[rows] == k]
            counts = np.bincount(scale.to_index(asap.scores[in_fold]), minlength=scale.n_levels)
            assert np.abs(counts / len(in_fold) - overall / len(rows)).max() < 0.03


def test_asap_grouped_keeps_each_prompt_in_one_fold(asap: Essays) -> None:
    folds = assign_folds(asap, 5, seed=3, method="grouped")
    fold = folds.fold_array(asap)
    assert prompts_in_one_fold(asap, fold)
    assert sorted(set(fold.tolist())) == [0, 1, 2, 3, 4]
    with pytest.raises(AesError, match="at least 10 prompts"):
        assign_folds(asap, 10, method="grouped")


def test_same_seed_same_folds(ellipse: Essays) -> None:
    first = assign_folds(ellipse, 5, seed=7, method="stratified")
    again = assign_folds(ellipse, 5, seed=7, method="stratified")
    other = assign_folds(ellipse, 5, seed=8, method="stratified")
    assert first.hash == again.hash
    assert first.frame.equals(again.frame)
    assert other.hash != first.hash


def test_inferred_prompts_recover_real_prompts(ellipse: Essays) -> None:
    top = ellipse.frame.group_by("prompt").len().sort("len", descending=True)["prompt"][:6]
    rows = np.flatnonzero(np.isin(ellipse.prompts, top.to_list()))
    subset = ellipse.take(rows)
    unlabelled = Essays(
        subset.frame.with_columns(pl.lit(None, pl.String).alias("prompt")), subset.scales
    )
    folds = assign_folds(unlabelled, 5, seed=42, infer_prompts=6)
    inferred = dict(folds.frame.select("essay_id", "prompt").iter_rows())
    labels = [inferred[i] for i in unlabelled.ids]
    assert folds.method == "grouped-inferred"
    assert adjusted_rand_score(subset.prompts.astype(str), labels) > 0.7
    assert prompts_in_one_fold(
        Essays(subset.frame.with_columns(pl.Series("prompt", labels)), subset.scales),
        folds.fold_array(unlabelled),
    )
    with pytest.raises(AesError, match="already have a prompt column"):
        assign_folds(subset, 5, infer_prompts=6)


def test_taghipour_ng_folds_file(asap: Essays, asap_folds_path: Path) -> None:
    folds = read_folds_file(asap_folds_path, asap)
    assert folds.n_folds == 5
    assert np.bincount(folds.fold_array(asap)).tolist() == [2598, 2597, 2596, 2594, 2593]
    assert folds.frame["prompt"].null_count() == 0


def test_folds_file_errors_name_the_row(tmp_path: Path, asap: Essays) -> None:
    small = asap.take(np.arange(4))
    ids = small.ids
    cases = {
        "missing.csv": ([(ids[0], 0), (ids[1], 1), (ids[2], 0)], "3 training essays|1 training"),
        "extra.csv": ([*[(i, 0) for i in ids], ("nope", 1)], "row 5: essay_id 'nope'"),
        "bad.csv": ([(ids[0], 0), (ids[1], "one"), (ids[2], 1), (ids[3], 0)], "row 2: fold 'one'"),
    }
    for name, (rows, message) in cases.items():
        path = tmp_path / name
        path.write_text("essay_id,fold\n" + "".join(f"{i},{f}\n" for i, f in rows))
        with pytest.raises(AesError, match=message):
            read_folds_file(path, small)


def test_saved_once_hashed_and_edits_refused(tmp_path: Path, ellipse: Essays) -> None:
    ws = Workspace.at(tmp_path)
    folds = assign_folds(ellipse, 5, seed=1)
    save_folds(ws, folds)
    meta = json.loads(ws.folds_meta_path.read_text())
    assert meta["hash"] == folds.hash
    assert (meta["method"], meta["seed"], meta["n_folds"], meta["n_essays"]) == (
        "grouped",
        1,
        5,
        2571,
    )
    loaded = load_folds(ws)
    assert loaded.hash == folds.hash
    assert np.array_equal(loaded.fold_array(ellipse), folds.fold_array(ellipse))
    save_folds(ws, folds)  # the same assignment again is fine

    other = assign_folds(ellipse, 5, seed=2, method="stratified")
    with pytest.raises(AesError, match="existing OOF files would no longer match"):
        save_folds(ws, other)
    assert load_folds(ws).hash == folds.hash
    save_folds(ws, other, force=True)
    assert load_folds(ws).hash == other.hash

    lines = ws.folds_path.read_text().splitlines()
    essay, fold, *rest = lines[1].split(",")
    lines[1] = ",".join([essay, str((int(fold) + 1) % 5), *rest])
    ws.folds_path.write_text("\n".join(lines) + "\n")
    with pytest.raises(AesError, match="changed after it was saved"):
        load_folds(ws)
