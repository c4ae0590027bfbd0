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
from aes_ensemble.folds import (
    Folds,
    assign_folds,
    check_score_levels,
    load_folds,
    read_folds_file,
    save_folds,
)
from aes_ensemble.scales import ScoreScale, ScoreScales
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


SAMPLE = Path(__file__).resolve().parents[1] / "aes_ensemble" / "sample" / "ellipse_train.csv"


@pytest.fixture(scope="module")
def sample() -> Essays:
    return read_essays(SAMPLE)


def fold_partition(folds_obj: Folds) -> set[frozenset[str]]:
    """The assignment as a set of folds (sets of essay ids): fold numbering does not matter."""
    groups = folds_obj.frame.group_by("fold").agg(pl.col("essay_id"))
    return {frozenset(ids) for ids in groups["essay_id"].to_list()}


def test_seed_varies_grouped_folds_and_repeats_them(sample: Essays, tmp_path: Path) -> None:
    splits = {seed: assign_folds(sample, 5, seed=seed) for seed in (1, 2, 3)}
    assert {f.method for f in splits.values()} == {"grouped"}
    for folds_obj in splits.values():
        assert prompts_in_one_fold(sample, folds_obj.fold_array(sample))
        assert sorted(np.bincount(folds_obj.fold_array(sample))) == [96] * 5
    assert len({frozenset(fold_partition(f)) for f in splits.values()}) == 3
    paths = []
    for name in ("a", "b"):
        ws = Workspace.at(tmp_path / name)
        save_folds(ws, assign_folds(sample, 5, seed=2))
        paths.append(ws.folds_path)
    assert paths[0].read_bytes() == paths[1].read_bytes()


@pytest.mark.parametrize("seed", [3, 11, 2024])
def test_every_seed_balances_grouped_ellipse_folds(ellipse: Essays, seed: int) -> None:
    fold = assign_folds(ellipse, 5, seed=seed).fold_array(ellipse)
    assert prompts_in_one_fold(ellipse, fold)
    overall = level_shares(ellipse, np.arange(len(ellipse)))
    for k in range(5):
        rows = np.flatnonzero(fold == k)
        assert abs(len(rows) - len(ellipse) / 5) < 0.05 * len(ellipse)
        assert np.abs(level_shares(ellipse, rows) - overall).max() < 0.04


def synthetic(scores: list[float], prompts: list[str | None], scales: ScoreScales) -> Essays:
    n = len(scores)
    frame = pl.DataFrame(
        {
            "essay_id": [f"e{i}" for i in range(n)],
            "full_text": [f"Essay number {i}." for i in range(n)],
            "score": pl.Series(scores, dtype=pl.Float64),
            "prompt": pl.Series(prompts, dtype=pl.String),
            "source": pl.Series([None] * n, dtype=pl.String),
        }
    )
    return Essays(frame, scales, Path("essays.csv"))


def test_scores_that_never_vary_are_refused() -> None:
    flat = synthetic([3.0] * 12, [None] * 12, ScoreScales(default=ScoreScale(1, 6)))
    with pytest.raises(AesError, match=r"essays.csv: all 12 training essays score 3: scores must"):
        assign_folds(flat, 3)
    per_prompt = ScoreScales(per_prompt={"a": ScoreScale(0, 3), "b": ScoreScale(2, 12)})
    scores = [0.0, 1.0, 2.0, 3.0, 1.0, 2.0] + [8.0] * 6
    one_prompt_flat = synthetic(scores, ["a"] * 6 + ["b"] * 6, per_prompt)
    with pytest.raises(AesError, match=r"prompt 'b': all 6 training essays score 8"):
        assign_folds(one_prompt_flat, 3)
    # One scale for all: the headline QWK pools the prompts, so one flat prompt is fine.
    pooled = synthetic(scores, ["a"] * 6 + ["b"] * 6, ScoreScales(default=ScoreScale(0, 12)))
    assert assign_folds(pooled, 3, method="stratified").n_folds == 3


def test_levels_rarer_than_folds_are_noted(sample: Essays) -> None:
    five = assign_folds(sample, 5, seed=0)
    assert five.notes == (
        "score levels 1 (1 essay), 1.5 (2 essays): fewer essays than 5 folds, "
        "so some validation folds never see them",
    )
    assert check_score_levels(sample, 2) == (
        "score level 1 (1 essay): fewer essays than 2 folds, so some validation folds never see it",
    )
    common = sample.take(np.flatnonzero(sample.scores >= 2))
    assert assign_folds(common, 5, seed=0).notes == ()


DAMAGE = {
    "json n_folds null": ("folds.json", lambda m: json.dumps({**m, "n_folds": None}), "n_folds"),
    "json without n_folds": (
        "folds.json",
        lambda m: json.dumps({k: v for k, v in m.items() if k != "n_folds"}),
        "key 'n_folds': required key is missing",
    ),
    "json wrong type": ("folds.json", lambda m: json.dumps({**m, "n_folds": "five"}), "n_folds"),
    "json hash a number": ("folds.json", lambda m: json.dumps({**m, "hash": 12}), "key 'hash'"),
    "json a list": ("folds.json", lambda m: json.dumps([m]), "must be a JSON object"),
    "json not json": ("folds.json", lambda m: "{'hash': ", "invalid JSON"),
    "json binary": ("folds.json", lambda m: b"\x00\x01\x02garbage", "binary content"),
    "json not utf-8": ("folds.json", lambda m: b'{"hash": "\xff"}', "invalid UTF-8"),
    "json empty": ("folds.json", lambda m: "", "file is empty"),
    "csv binary": ("folds.csv", lambda m: b"\x89PNG\r\n\x1a\n\x00\x00", "binary content"),
    "csv not utf-8": ("folds.csv", lambda m: b"essay_id,fold\nx\xe9,0\n", "invalid UTF-8"),
    "csv column missing": ("folds.csv", lambda m: "essay_id,folds\na,0\n", "column 'fold'"),
    "csv bad fold": ("folds.csv", lambda m: "essay_id,fold\na,0\nb,two\n", "row 2: fold 'two'"),
    "csv fold beyond": ("folds.csv", lambda m: "essay_id,fold\na,0\nb,9\n", "row 2: fold 9 is"),
}


@pytest.mark.parametrize("case", sorted(DAMAGE))
def test_damaged_folds_files_are_one_clear_error(case: str, sample: Essays, tmp_path: Path) -> None:
    ws = Workspace.at(tmp_path)
    folds_obj = assign_folds(sample, 5, seed=0)
    save_folds(ws, folds_obj)
    name, damage, part = DAMAGE[case]
    target = tmp_path / name
    meta = json.loads(ws.folds_meta_path.read_text())
    data = damage(meta)
    if isinstance(data, bytes):
        target.write_bytes(data)
    else:
        target.write_text(data)
    with pytest.raises(AesError) as info:
        load_folds(ws)
    message = str(info.value)
    assert message.startswith(f"{target}: ")
    assert part in message
    assert message.endswith(
        "restore it, or run `aes-ensemble folds --force` (every learner then refits)"
    )
    save_folds(ws, folds_obj, force=True)
    assert load_folds(ws).hash == folds_obj.hash


def test_a_failed_write_keeps_the_previous_folds(
    sample: Essays, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from faults import fail_writes

    ws = Workspace.at(tmp_path)
    save_folds(ws, assign_folds(sample, 5, seed=1))
    before = {p.name: p.read_bytes() for p in (ws.folds_path, ws.folds_meta_path)}
    failed = fail_writes(monkeypatch, "folds.json")
    with pytest.raises(AesError, match=r"cannot write \(No space left on device\); the previous"):
        save_folds(ws, assign_folds(sample, 5, seed=2), force=True)
    assert failed
    assert {p.name: p.read_bytes() for p in (ws.folds_path, ws.folds_meta_path)} == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["folds.csv", "folds.json"]
    assert load_folds(ws).seed == 1
