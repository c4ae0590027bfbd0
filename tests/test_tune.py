"""``aes-ensemble tune`` on the embedded sample: the tuned config, the objective (the
leaderboard's headline QWK), pruning, seeded replay, two workers on one SQLite study, nested
tuning and one-line errors."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import optuna
import polars as pl
import pytest

from aes_ensemble.config import read_yaml
from aes_ensemble.data import load_workspace_dataset
from aes_ensemble.engine import fit_learner
from aes_ensemble.folds import assign_folds, load_folds, save_folds
from aes_ensemble.learners.registry import learner_class, load_learner_config
from aes_ensemble.learners.search_space import DEFAULT_SPACES
from aes_ensemble.metrics import headline_qwk
from aes_ensemble.sample import TRAIN, sample_path
from aes_ensemble.stacking.qwk_numbers import LeaderboardSettings, learner_levels
from aes_ensemble.store import read_predictions
from aes_ensemble.tuning.study import checked_space, tune_learner
from aes_ensemble.workspace import Workspace, shipped_configs

# A wide alpha range: its top end shrinks every prediction to the mean (QWK about 0), so the
# pruner has bad trials to stop.
RIDGE = (
    "kind: ridge\n"
    "features:\n  handcrafted: true\n"
    "  tfidf: {word_ngram_range: [1, 1], char_ngram_range: null, max_features: 2000}\n"
    "params: {alpha: 10.0}\n"
    "search:\n  params.alpha: {low: 0.1, high: 1.0e6, log: true}\n"
)


@pytest.fixture
def sample_workspace(tmp_path: Path) -> Callable[..., Path]:
    """A workspace on the first ``n`` essays of the embedded ELLIPSE sample with 3 saved
    prompt-grouped folds and ``configs/ridge.yaml``."""

    def make(name: str = "ws", *, n: int = 90, ridge: str = RIDGE) -> Path:
        root = tmp_path / name
        (root / "configs").mkdir(parents=True)
        pl.read_csv(sample_path(TRAIN), infer_schema=False).head(n).write_csv(root / "essays.csv")
        (root / "configs" / "data.yaml").write_text("train: essays.csv\nformat: ellipse\n")
        (root / "configs" / "ridge.yaml").write_text(ridge)
        ws = Workspace.at(root)
        train, _ = load_workspace_dataset(ws)
        save_folds(ws, assign_folds(train, 3, seed=0))
        return root

    return make


def _study(root: Path, name: str = "ridge") -> optuna.Study:
    return optuna.load_study(study_name=name, storage=f"sqlite:///{root / 'tune' / 'ridge.db'}")


def test_tune_writes_the_best_config_whose_fit_scores_the_study_value(
    sample_workspace: Callable[..., Path], run_cli: Callable[..., Any]
) -> None:
    root = sample_workspace()
    result = run_cli("tune", "ridge", "--trials", "3", "-w", root)
    assert result.exit_code == 0, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.startswith("ridge trial ")]
    assert len(lines) == 3 and all("running" in line for line in lines), result.stderr
    assert "optimistic" in result.stdout and "--nested" in result.stdout
    # Trials fit in memory: nothing in base_models/ or oof/; per-essay features are cached.
    assert not (root / "base_models").exists() and not (root / "oof").exists()
    assert any(path.is_file() for path in (root / "cache").rglob("*"))

    study = _study(root)
    assert f"{study.best_value:.4f}" in result.stdout
    tuned_path = root / "configs" / "ridge_tuned.yaml"
    tuned = load_learner_config(tuned_path)
    assert tuned.params.alpha == study.best_params["params.alpha"]  # type: ignore[attr-defined]
    assert tuned.features.tfidf.max_features == 2000  # type: ignore[attr-defined]
    assert "optimistic" in tuned_path.read_text().lower()

    # The study's value is the leaderboard's headline QWK of the tuned config's real OOF.
    fit_learner(root, "ridge_tuned", progress=False)
    ws = Workspace.at(root)
    train, _ = load_workspace_dataset(ws)
    oof = read_predictions(ws.oof_path("ridge_tuned")).oof
    pred = dict(zip(oof["essay_id"], oof["pred"], strict=True))
    y, prompts = train.scores, train.prompts
    levels = learner_levels(
        y,
        np.array([pred[i] for i in train.ids]),
        prompts,
        load_folds(ws).fold_array(train),
        train.scales,
        LeaderboardSettings(),
    )
    assert headline_qwk(y, levels["cross"], prompts, train.scales) == pytest.approx(
        study.best_value, abs=1e-12
    )


def test_a_seeded_study_replays_its_trials_and_prunes_the_bad_ones(
    sample_workspace: Callable[..., Path],
) -> None:
    root = sample_workspace()
    first = tune_learner(root, "ridge", trials=10, study_name="a")
    again = tune_learner(root, "ridge", trials=10, study_name="b")

    def trace(records: Any) -> list[Any]:
        return [(r.number, r.state, r.value, r.running, r.params) for r in records]

    assert trace(first.trials) == trace(again.trials)
    pruned = [r for r in first.trials if r.state == "pruned"]
    complete = [r for r in first.trials if r.state == "complete"]
    assert pruned and len(complete) >= 5, trace(first.trials)
    for record in pruned:
        step = len(record.running) - 1
        assert step < 2  # stopped before the last of the 3 folds
        # Optuna's median rule: its best running QWK so far is below the median of the complete
        # trials before it at the same fold.
        earlier = [r.running[step] for r in complete if r.number < record.number]
        assert max(record.running) < np.median(earlier)
    assert first.n_pruned == len(pruned) and first.n_complete == len(complete)


def test_two_processes_on_one_sqlite_study_both_finish_and_keep_every_trial(
    sample_workspace: Callable[..., Path],
) -> None:
    root = sample_workspace()
    command = [sys.executable, "-m", "aes_ensemble.cli.main", "tune", "ridge", "-n", "3"]
    env = {**os.environ, "AES_WORKDIR": str(root)}
    workers = [
        subprocess.Popen(
            command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        for _ in range(2)
    ]
    outputs = [w.communicate(timeout=600) for w in workers]
    for worker, (out, err) in zip(workers, outputs, strict=True):
        assert worker.returncode == 0, err
        assert "wrote" in out
    trials = _study(root).get_trials(deepcopy=False)
    assert sorted(t.number for t in trials) == list(range(6))
    assert {t.state for t in trials} <= {
        optuna.trial.TrialState.COMPLETE,
        optuna.trial.TrialState.PRUNED,
    }
    assert len({t.user_attrs["worker"] for t in trials}) == 2
    # Seeded per trial number: the two workers never replay each other's random start-up points.
    assert len({t.params["params.alpha"] for t in trials}) == 6
    printed = [
        sorted(int(n) for n in re.findall(r"^ridge trial (\d+):", err, flags=re.M))
        for _, err in outputs
    ]
    assert sorted(printed[0] + printed[1]) == list(range(6))
    assert all(len(numbers) == 3 for numbers in printed)


def test_nested_tunes_inside_each_outer_fold_and_reports_the_honest_estimate(
    sample_workspace: Callable[..., Path], run_cli: Callable[..., Any]
) -> None:
    root = sample_workspace(ridge=RIDGE.replace("high: 1.0e6", "high: 100.0"))
    result = run_cli("tune", "ridge", "--trials", "2", "--nested", "-w", root)
    assert result.exit_code == 0, result.stderr
    honest = re.search(r"honest estimate of tuning then fitting: (\d\.\d{4})", result.stdout)
    assert honest is not None, result.stdout
    for fold in range(3):
        inner = _study(root, f"ridge.outer{fold}")
        assert len(inner.trials) == 2
        # Tuned on the two other folds only: two running values per complete trial.
        assert all(len(t.intermediate_values) == 2 for t in inner.trials)
        assert f"{inner.best_value:.4f}" in result.stdout
    assert not (root / "base_models").exists() and not (root / "oof").exists()


def test_shipped_learner_configs_have_a_valid_default_search_space() -> None:
    checked = []
    for name, path in shipped_configs().items():
        raw = read_yaml(path)
        if raw.get("kind") in DEFAULT_SPACES:
            model = learner_class(raw["kind"]).config_model
            assert checked_space(model, raw, path, fixed={}), name
            checked.append(raw["kind"])
    assert {"lgbm", "xgb", "ridge", "svr"} <= set(checked)


def test_bad_input_is_one_error_line_and_writes_no_tuned_config(
    sample_workspace: Callable[..., Path], run_cli: Callable[..., Any]
) -> None:
    root = sample_workspace()
    config = root / "configs" / "ridge.yaml"
    spaces = {
        "params.alpah: {low: 1, high: 2}": "unknown key (did you mean 'alpha'?)",
        "params.alpha: {low: 3, high: 2}": "low 3 must be below high 2",
        "params.solver: {choices: [auto, bogus]}": "'bogus' is not one of",
        "params.alpha: {low: 0, high: 2, log: true}": "a log range needs low > 0",
    }
    for space, message in spaces.items():
        config.write_text(RIDGE.replace("params.alpha: {low: 0.1, high: 1.0e6, log: true}", space))
        result = run_cli("tune", "ridge", "-n", "1", "-w", root)
        assert result.exit_code == 2, space
        assert result.stderr.startswith("error: ") and result.stderr.count("\n") == 1, space
        assert message in result.stderr and "key 'search." in result.stderr, result.stderr
    config.write_text(RIDGE)
    cases = {
        ("--storage", "nosuchdb://x"): "not a usable Optuna storage URL",
        ("-n", "0"): "--trials 0 must be at least 1",
        ("params.alpha=2",): "every searched key is fixed on the command line",
    }
    for args, message in cases.items():
        result = run_cli("tune", "ridge", *args, "-w", root)
        assert result.exit_code == 2, args
        assert result.stderr.startswith("error: ") and result.stderr.count("\n") == 1, args
        assert message in result.stderr, result.stderr
    assert not (root / "configs" / "ridge_tuned.yaml").exists()

    # A study is joined only on the same folds: new folds need a new study name.
    assert run_cli("tune", "ridge", "-n", "1", "-w", root).exit_code == 0
    ws = Workspace.at(root)
    train, _ = load_workspace_dataset(ws)
    save_folds(ws, assign_folds(train, 3, seed=1), force=True)
    result = run_cli("tune", "ridge", "-n", "1", "-w", root)
    assert result.exit_code == 2 and "--study-name" in result.stderr, result.stderr


def test_extra_train_essays_join_every_trial_fold_and_nested_fit_as_in_fit_base(
    sample_workspace: Callable[..., Path], run_cli: Callable[..., Any]
) -> None:
    """``extra_train`` essays (the sample's next 60, Overall as their one score) join each
    trial's training rows: the trial value is the headline QWK of ``fit-base`` on the tuned
    config (which fits them), and differs from the same trial without them; with ``--nested``
    they join the inner folds and each outer fit too."""
    root = sample_workspace(ridge=RIDGE.replace("high: 1.0e6", "high: 100.0"))
    sample = pl.read_csv(sample_path(TRAIN), infer_schema=False)
    sample.slice(90, 60).select("text_id_kaggle", "full_text", "Overall").write_csv(
        root / "extra.csv"
    )
    extra = (
        "extra_train:\n  path: extra.csv\n  id_column: text_id_kaggle\n  score_columns: [Overall]\n"
    )
    (root / "configs" / "extra.yaml").write_text(
        RIDGE.replace("high: 1.0e6", "high: 100.0") + extra
    )

    result = run_cli("tune", "extra", "--trials", "1", "--nested", "-w", root)
    assert result.exit_code == 0, result.stderr
    assert "note: extra_train: 60 essays from" in result.stdout, result.stdout
    plain = tune_learner(root, "ridge", trials=1, nested=True)

    def study(name: str, outer: str = "") -> optuna.Study:
        storage = f"sqlite:///{root / 'tune' / name}.db"
        return optuna.load_study(study_name=name + outer, storage=storage)

    with_extra, without = study("extra").trials[0], study("ridge").trials[0]
    assert with_extra.params == without.params  # the same seeded point, other training rows
    assert with_extra.value != without.value
    for fold in range(3):
        inner = [study(name, f".outer{fold}").trials[0] for name in ("extra", "ridge")]
        assert inner[0].params == inner[1].params
        assert inner[0].intermediate_values != inner[1].intermediate_values
    honest = re.search(r"honest estimate of tuning then fitting: (\d\.\d{4})", result.stdout)
    assert honest is not None and float(honest[1]) != round(plain.nested_qwk or 0.0, 4)

    fit_learner(root, "extra_tuned", progress=False)
    ws = Workspace.at(root)
    train, _ = load_workspace_dataset(ws)
    oof = read_predictions(ws.oof_path("extra_tuned")).oof
    pred = dict(zip(oof["essay_id"], oof["pred"], strict=True))
    levels = learner_levels(
        train.scores,
        np.array([pred[i] for i in train.ids]),
        train.prompts,
        load_folds(ws).fold_array(train),
        train.scales,
        LeaderboardSettings(),
    )
    headline = headline_qwk(train.scores, levels["cross"], train.prompts, train.scales)
    assert headline == pytest.approx(with_extra.value, abs=1e-12)
