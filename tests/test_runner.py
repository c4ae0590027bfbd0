"""The fold runner: store file, resume, config changes, concurrency and determinism."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from aes_ensemble.data import load_workspace_dataset
from aes_ensemble.engine import fit_learner
from aes_ensemble.errors import AesError
from aes_ensemble.fold_files import part_path
from aes_ensemble.folds import load_folds
from aes_ensemble.learners.registry import load_learner_config
from aes_ensemble.store import read_predictions
from aes_ensemble.workspace import Workspace, shipped_configs

TFIDF = "  tfidf: {word_ngram_range: [1, 1], char_ngram_range: null, max_features: 2000}\n"
CONFIGS = {
    "lgbm": "kind: lgbm\nseed: 5\nfeatures:\n  handcrafted: true\n"
    + TFIDF
    + "  svd_components: 16\nparams: {n_estimators: 200, learning_rate: 0.1, num_leaves: 7}\n",
    "xgb": "kind: xgb\nseed: 5\nfeatures:\n  handcrafted: true\n"
    + TFIDF
    + "  svd_components: 16\nparams: {n_estimators: 200, learning_rate: 0.1, max_depth: 3}\n",
    "ridge": "kind: ridge\nfeatures:\n  handcrafted: true\n  scale: true\n"
    + TFIDF
    + "params: {alpha: 10.0}\n",
    "svr": "kind: svr\nfeatures: {handcrafted: true, scale: true}\nparams: {C: 1.0}\n",
}

MakeWorkspace = Callable[..., Path]


def oof_frame(root: Path, name: str) -> pl.DataFrame:
    return read_predictions(Workspace.at(root).oof_path(name)).frame


@pytest.mark.parametrize("kind", list(CONFIGS))
def test_fit_every_kind_writes_a_valid_store_file(
    kind: str, ellipse_workspace: MakeWorkspace
) -> None:
    root = ellipse_workspace(**{kind: CONFIGS[kind]})
    ws = Workspace.at(root)
    summary = fit_learner(ws, kind, progress=False)
    train, test = load_workspace_dataset(ws)
    assert test is not None
    folds = load_folds(ws)
    assert summary.oof_path == ws.oof_path(kind)
    assert [r.status for r in summary.folds] == ["fitted"] * 3
    ps = read_predictions(summary.oof_path, folds_hash=folds.hash, expected_ids=train.ids)
    assert ps.oof["essay_id"].to_list() == train.ids
    assert ps.oof["fold"].to_list() == folds.fold_array(train).tolist()
    assert ps.test["essay_id"].to_list() == test.ids
    assert ps.test["fold"].null_count() == len(test)
    meta = ps.meta
    assert meta.learner == kind and meta.name == kind
    assert meta.config_hash == summary.config_hash and meta.config["kind"] == kind
    assert set(meta.fold_qwk) == set(meta.fit_seconds) == {"0", "1", "2"}
    assert meta.fold_qwk["1"] == summary.folds[1].qwk
    assert "lightgbm" in meta.versions
    assert summary.overall_qwk is not None and summary.overall_qwk > 0.1
    # Test rows are the mean of the three fold models; OOF rows come from their own fold's model.
    parts = [read_predictions(part_path(ws, kind, k)) for k in range(3)]
    fold_tests = np.stack([p.test["pred"].to_numpy() for p in parts])
    np.testing.assert_array_equal(ps.test["pred"].to_numpy(), fold_tests.mean(axis=0))
    first = ps.oof.filter(pl.col("fold") == 0)
    assert first["pred"].to_list() == parts[0].oof["pred"].to_list()
    for k in range(3):
        model_dir = ws.model_dir(kind, k)
        assert (model_dir / "done.json").is_file() and (model_dir / "config.yaml").is_file()
        assert (model_dir / "features").is_dir()


def test_resume_refits_only_the_unfinished_fold_with_identical_result(
    ellipse_workspace: MakeWorkspace,
) -> None:
    root = ellipse_workspace(lgbm=CONFIGS["lgbm"])
    ws = Workspace.at(root)
    first = fit_learner(ws, "lgbm", folds=[0], progress=False)
    assert first.oof_path is None and first.missing_folds == (1, 2)
    assert not ws.oof_path("lgbm").exists()
    fit_learner(ws, "lgbm", progress=False)
    before = oof_frame(root, "lgbm")
    kept = ws.model_dir("lgbm", 0) / "model.lgb.txt"
    kept_mtime = kept.stat().st_mtime_ns
    # Fold 1's folder has files but no done.json (a hand edit, or an older version killed).
    (ws.model_dir("lgbm", 1) / "done.json").unlink()
    (ws.model_dir("lgbm", 1) / "model.lgb.txt").write_text("half-written", encoding="utf-8")
    again = fit_learner(ws, "lgbm", progress=False)
    assert [r.status for r in again.folds] == ["skipped", "fitted", "skipped"]
    assert any("fold 1" in n and "unfinished" in n for n in again.notes)
    assert kept.stat().st_mtime_ns == kept_mtime
    assert oof_frame(root, "lgbm").equals(before)


def test_changed_config_refits_and_says_so(ellipse_workspace: MakeWorkspace) -> None:
    root = ellipse_workspace(ridge=CONFIGS["ridge"])
    ws = Workspace.at(root)
    base = fit_learner(ws, "ridge", progress=False)
    changed = fit_learner(ws, "ridge", overrides=["params.alpha=100"], progress=False)
    assert changed.config_hash != base.config_hash
    assert [r.status for r in changed.folds] == ["fitted"] * 3
    assert sum("another config" in n for n in changed.notes) == 3
    assert read_predictions(ws.oof_path("ridge")).meta.config["params"]["alpha"] == 100


def test_same_seed_gives_bit_identical_oof_in_fresh_workspaces(
    ellipse_workspace: MakeWorkspace,
) -> None:
    roots = [ellipse_workspace(f"ws{i}", lgbm=CONFIGS["lgbm"], xgb=CONFIGS["xgb"]) for i in (1, 2)]
    for name in ("lgbm", "xgb"):
        frames = []
        for root in roots:
            fit_learner(root, name, progress=False)
            frames.append(oof_frame(root, name))
        assert frames[0].equals(frames[1])


def test_two_processes_fitting_different_folds_lose_nothing(
    ellipse_workspace: MakeWorkspace,
) -> None:
    root = ellipse_workspace("parallel", ridge=CONFIGS["ridge"])
    reference = ellipse_workspace("serial", ridge=CONFIGS["ridge"])
    fit_learner(reference, "ridge", progress=False)
    env = {**os.environ, "COLUMNS": "120"}
    cmd = [sys.executable, "-m", "aes_ensemble.cli.main", "fit-base", "ridge", "-w", str(root)]
    procs = [
        subprocess.Popen(
            [*cmd, "--fold", f], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE
        )
        for f in ("0,2", "1")
    ]
    for proc in procs:
        _, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err.decode()
    assert oof_frame(root, "ridge").equals(oof_frame(reference, "ridge"))


def test_config_errors_name_file_key_and_suggestion(ellipse_workspace: MakeWorkspace) -> None:
    root = ellipse_workspace(ridge=CONFIGS["ridge"], odd="kind: ridg\nfeatures: {}\n")
    path = Workspace.at(root).config_path("ridge")
    with pytest.raises(AesError, match=r"command line: key 'params\.alpah'.*did you mean 'alpha'"):
        load_learner_config(path, ["params.alpah=3"])
    with pytest.raises(AesError, match=r"key 'kind'.*unknown learner kind 'ridg'.*'ridge'"):
        fit_learner(root, "odd", progress=False)
    with pytest.raises(AesError, match=r"no config named 'rigde'.*did you mean 'ridge'"):
        fit_learner(root, "rigde", progress=False)
    with pytest.raises(AesError, match=r"folds run 0\.\.2"):
        fit_learner(root, "ridge", folds=[3], progress=False)


@pytest.mark.parametrize("name", ["lgbm", "xgb", "svr_emb", "ridge_tfidf"])
def test_shipped_configs_are_valid(name: str) -> None:
    config = load_learner_config(shipped_configs()[name])
    assert config.kind == {"lgbm": "lgbm", "xgb": "xgb", "svr_emb": "svr"}.get(name, "ridge")
