"""``aes-ensemble stack``, ``predict`` and ``oof import`` on a small real ELLIPSE workspace."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import Ridge

from aes_ensemble.data import load_workspace_dataset
from aes_ensemble.folds import assign_folds, load_folds, save_folds
from aes_ensemble.stacking import length_features
from aes_ensemble.store import PredictionStore
from aes_ensemble.workspace import Workspace


def predictions(texts_train, y, folds, texts_test, kind: str) -> tuple[np.ndarray, np.ndarray]:
    """OOF and fold-mean test predictions of a quick real model."""
    if kind == "tfidf":
        vec = TfidfVectorizer(min_df=2, sublinear_tf=True).fit(texts_train)
        X, X_test = vec.transform(texts_train), vec.transform(texts_test)
    else:
        X, X_test = length_features(texts_train), length_features(texts_test)
    oof = np.empty(len(y))
    test = np.zeros(X_test.shape[0])
    for k in np.unique(folds):
        model = Ridge(alpha=3.0).fit(X[folds != k], y[folds != k])
        oof[folds == k] = model.predict(X[folds == k])
        test += model.predict(X_test) / len(np.unique(folds))
    return oof, test


@pytest.fixture(scope="module")
def workspace_dir(ellipse_csv_path: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A workspace with 400 training and 60 test ELLIPSE essays, saved folds and two CSVs of
    predictions (TF-IDF ridge, essay length) ready to import."""
    root = tmp_path_factory.mktemp("ws")
    frame = pl.read_csv(ellipse_csv_path, infer_schema=False)
    frame = frame.sample(460, seed=0, shuffle=True)
    frame.head(400).write_csv(root / "train.csv")
    frame.tail(60).drop("Overall").write_csv(root / "test.csv")
    (root / "configs").mkdir()
    (root / "configs" / "data.yaml").write_text("train: train.csv\ntest: test.csv\n")
    ws = Workspace.at(root)
    train, test = load_workspace_dataset(ws)
    assert test is not None
    save_folds(ws, assign_folds(train, 5, seed=42))
    folds = load_folds(ws).fold_array(train)
    for kind in ("tfidf", "length"):
        oof, pred = predictions(train.texts, train.scores, folds, test.texts, kind)
        rows = pl.DataFrame(
            {
                "essay_id": train.ids + test.ids,
                "split": ["oof"] * len(oof) + ["test"] * len(pred),
                "pred": np.concatenate([oof, pred]),
            }
        )
        rows.write_csv(root / f"{kind}.csv")
    return root


def test_import_stack_predict(run_cli, workspace_dir: Path) -> None:
    ws = str(workspace_dir)
    for kind in ("tfidf", "length"):
        res = run_cli("oof", "import", workspace_dir / f"{kind}.csv", "--name", kind, "-w", ws)
        assert res.exit_code == 0, res.stderr
    res = run_cli("stack", "--meta", "nnls", "-w", ws)
    assert res.exit_code == 0, res.stderr
    assert "stack_nnls" in res.stdout and "best single" in res.stdout
    summary = json.loads((workspace_dir / "reports" / "stack_nnls.json").read_text())
    assert summary["models"] == ["length", "tfidf"]
    assert {e["name"] for e in summary["leaderboard"]} == {"length", "tfidf", "stack_nnls"}
    for entry in summary["leaderboard"]:
        assert {"plain", "insample", "cross", "cross_ci", "per_prompt"} <= set(entry)
    store = PredictionStore(workspace_dir / "oof")
    stacked = store.read("stack_nnls")
    assert stacked.meta.learner == "stack" and stacked.test.height == 60

    res = run_cli("predict", "-w", ws)
    assert res.exit_code == 0, res.stderr
    sub = pl.read_csv(workspace_dir / "submission.csv", infer_schema=False)
    test_ids = pl.read_csv(workspace_dir / "test.csv", infer_schema=False)["text_id_kaggle"]
    assert sub.columns == ["essay_id", "score"]
    assert sub["essay_id"].to_list() == test_ids.to_list()
    levels = {f"{v:g}" for v in np.arange(1, 5.01, 0.5)}
    assert set(sub["score"].to_list()) <= levels

    res = run_cli("stack", "--meta", "hill", "--models", "stack_nnls,tfidf", "-w", ws)
    assert res.exit_code == 0, res.stderr
    res = run_cli("predict", "-w", ws)
    assert res.exit_code == 2
    assert res.stderr.startswith("error:") and "several stacks" in res.stderr


def _one_error_line(res) -> str:
    assert res.exit_code == 2
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), res.stderr
    return lines[0]


def test_cli_errors_are_one_line(run_cli, workspace_dir: Path, tmp_path: Path) -> None:
    ws = str(workspace_dir)
    line = _one_error_line(run_cli("stack", "--meta", "rige", "-w", ws))
    assert "did you mean 'ridge'" in line
    line = _one_error_line(run_cli("stack", "--models", "nope", "-w", ws))
    assert "no predictions named 'nope'" in line

    good = pl.read_csv(workspace_dir / "tfidf.csv")
    bad_fold = good.with_columns(
        fold=pl.when(pl.col("split") == "oof").then(pl.lit(9)).otherwise(None)
    )
    bad_fold.write_csv(tmp_path / "fold.csv")
    line = _one_error_line(run_cli("oof", "import", tmp_path / "fold.csv", "--name", "x", "-w", ws))
    assert "row 1" in line and "in fold 9 here but in fold" in line

    good.with_columns(pred=pl.col("pred") / 5 - 3).write_csv(tmp_path / "scale.csv")
    line = _one_error_line(
        run_cli("oof", "import", tmp_path / "scale.csv", "--name", "x", "-w", ws)
    )
    assert "far outside the score scale 1-5" in line

    good.slice(1).write_csv(tmp_path / "short.csv")
    line = _one_error_line(
        run_cli("oof", "import", tmp_path / "short.csv", "--name", "x", "-w", ws)
    )
    assert "has no oof prediction for training essay" in line

    good.with_columns(essay_id=pl.lit("zz")).head(1).write_csv(tmp_path / "unknown.csv")
    line = _one_error_line(
        run_cli("oof", "import", tmp_path / "unknown.csv", "--name", "x", "-w", ws)
    )
    assert "row 1: essay_id 'zz' is not a training essay" in line


@pytest.mark.parametrize(
    ("config", "message"),
    [
        (
            "meta: lgbm\noptions:\n  lgbm: {num_leaves: 1}\n",
            "error: stack stack_lgbm: meta-learner lgbm: LightGBM refused "
            "options.lgbm.num_leaves=1: Check failed: (num_leaves) > (1)",
        ),
        (
            "meta:\n  class: sklearn.linear_model.HuberRegressor\n  params: {epsilon: 0.5}\n",
            "error: stack stack_huberregressor: meta-learner huberregressor: scikit-learn "
            "refused meta.params.epsilon=0.5: The 'epsilon' parameter of HuberRegressor must be",
        ),
    ],
    ids=["lgbm", "class-path"],
)
def test_a_setting_the_meta_learner_refuses_is_one_line(
    workspace_dir: Path,
    tmp_path: Path,
    capfd: pytest.CaptureFixture[str],
    config: str,
    message: str,
) -> None:
    """Descriptors are captured: LightGBM writes its own ``[Fatal]`` line to descriptor 2."""
    from aes_ensemble.cli.main import main

    ws = tmp_path / "ws"
    shutil.copytree(
        workspace_dir, ws, ignore=shutil.ignore_patterns("oof", "reports", "base_models")
    )
    for kind in ("tfidf", "length"):
        assert main(["oof", "import", str(ws / f"{kind}.csv"), "--name", kind, "-w", str(ws)]) == 0
    (ws / "bad_stack.yaml").write_text(config, encoding="utf-8")
    capfd.readouterr()
    code = main(["stack", "--config", str(ws / "bad_stack.yaml"), "-w", str(ws)])
    out, err = capfd.readouterr()
    assert code == 2 and out == ""
    assert err.startswith(message) and err.count("\n") == 1 and "[LightGBM]" not in err, err
    assert not (ws / "oof" / "stack_lgbm.parquet").exists()
