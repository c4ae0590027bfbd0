"""The stack side of reliability: predictions made on other essays, stale stacks, damaged files,
predictions on the wrong scale and a user's bad inputs, each refused in one line.

Workspaces hold the embedded ELLIPSE sample (300 training and 40 test essays, 5 folds) and real
predictions of quick models, written through the store API as a learner would write them.
"""

from __future__ import annotations

import json
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import polars as pl
import pyarrow.parquet as pq
import pytest
from faults import make_read_only, reachable_folder, run_read_only
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import Ridge

from aes_ensemble.data import data_fingerprint, load_workspace_dataset
from aes_ensemble.errors import AesError
from aes_ensemble.folds import assign_folds, load_folds, save_folds
from aes_ensemble.sample import TEST, TRAIN, sample_path
from aes_ensemble.stacking import length_features
from aes_ensemble.store import (
    METADATA_KEY,
    PredictionMeta,
    PredictionSet,
    PredictionStore,
    prediction_frame,
    read_predictions,
    write_predictions,
)
from aes_ensemble.workspace import Workspace

N_TRAIN, N_TEST = 300, 40
STALE = (
    "error: stack 'stack_ridge' was built on predictions of 'length' that were {how} since; "
    "run aes-ensemble stack --meta ridge --name stack_ridge again"
)


def quick_model(texts, y, folds, texts_test, kind: str) -> tuple[np.ndarray, np.ndarray]:
    """OOF and fold-mean test predictions of a real quick model (TF-IDF or length ridge)."""
    if kind == "tfidf":
        vec = TfidfVectorizer(min_df=2, sublinear_tf=True).fit(texts)
        X, X_test = vec.transform(texts), vec.transform(texts_test)
    else:
        X, X_test = length_features(texts), length_features(texts_test)
    oof, test = np.empty(len(y)), np.zeros(X_test.shape[0])
    for k in np.unique(folds):
        model = Ridge(alpha=3.0).fit(X[folds != k], y[folds != k])
        oof[folds == k] = model.predict(X[folds == k])
        test += model.predict(X_test) / len(np.unique(folds))
    return oof, test


def write_learner(root: Path, name: str, oof: np.ndarray, test: np.ndarray, **meta) -> Path:
    """``oof/NAME.parquet`` as a learner writes it, on the workspace's current essays unless
    ``data_hash`` says otherwise."""
    ws = Workspace.at(root)
    train, test_essays = load_workspace_dataset(ws)
    assert test_essays is not None
    folds = load_folds(ws)
    frame = prediction_frame(
        train.ids + test_essays.ids,
        ["oof"] * len(train) + ["test"] * len(test_essays),
        np.concatenate([oof, test]),
        fold=[*folds.fold_array(train), *[None] * len(test_essays)],
        prompt=[*train.prompts, *test_essays.prompts],
    )
    fields = {
        "learner": "ridge",
        "config_hash": "c0ffee",
        "data_hash": data_fingerprint(train, test_essays),
        "scales": train.scales.to_dict(),
        **meta,
    }
    ps = PredictionSet(frame, PredictionMeta(name=name, folds_hash=folds.hash, **fields))
    return PredictionStore(ws.oof_dir).write(ps)


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A workspace with folds, predictions of two learners and a CSV of each to import."""
    root = tmp_path_factory.mktemp("template")
    (root / "configs").mkdir()
    pl.read_csv(sample_path(TRAIN), infer_schema=False).head(N_TRAIN).write_csv(root / "train.csv")
    pl.read_csv(sample_path(TEST), infer_schema=False).head(N_TEST).write_csv(root / "test.csv")
    (root / "configs" / "data.yaml").write_text("train: train.csv\ntest: test.csv\n")
    ws = Workspace.at(root)
    train, test = load_workspace_dataset(ws)
    assert test is not None
    save_folds(ws, assign_folds(train, 5, seed=42))
    folds = load_folds(ws).fold_array(train)
    for kind in ("tfidf", "length"):
        oof, pred = quick_model(train.texts, train.scores, folds, test.texts, kind)
        write_learner(root, kind, oof, pred)
        pl.DataFrame(
            {
                "essay_id": train.ids + test.ids,
                "split": ["oof"] * len(oof) + ["test"] * len(pred),
                "pred": np.concatenate([oof, pred]),
            }
        ).write_csv(root / f"{kind}.csv")
    return root


@pytest.fixture
def ws_dir(template: Path, tmp_path: Path) -> Path:
    """A fresh copy of the template workspace, for tests that change it."""
    return Path(shutil.copytree(template, tmp_path / "ws"))


def one_error_line(res) -> str:
    assert res.exit_code == 2, (res.stdout, res.stderr)
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), res.stderr
    return lines[0]


def edit_first_score(root: Path) -> None:
    """Change one training score (same ids, same texts): the data is no longer the same."""
    frame = pl.read_csv(root / "train.csv", infer_schema=False)
    first = frame["Overall"][0]
    frame = frame.with_columns(
        Overall=pl.when(pl.int_range(pl.len()) == 0)
        .then(pl.lit("2.0" if first != "2.0" else "3.0"))
        .otherwise(pl.col("Overall"))
    )
    frame.write_csv(root / "train.csv")


def learner_preds(root: Path, name: str) -> tuple[np.ndarray, np.ndarray]:
    ps = PredictionStore(root / "oof").read(name)
    return ps.oof["pred"].to_numpy(), ps.test["pred"].to_numpy()


# --- 1: the data fingerprint on the stack side ------------------------------------------------


def test_stack_refuses_predictions_made_on_other_essays(run_cli, ws_dir: Path) -> None:
    edit_first_score(ws_dir)
    line = one_error_line(run_cli("stack", "-w", ws_dir))
    assert line == (
        f"error: {ws_dir / 'oof' / 'length.parquet'}: was made on other essays (the training or "
        "test file changed since); refit it: aes-ensemble fit-base length"
    )
    assert not (ws_dir / "oof" / "stack_ridge.parquet").exists()


def test_stack_refuses_predictions_made_with_a_test_file_since_removed(
    run_cli, ws_dir: Path
) -> None:
    (ws_dir / "configs" / "data.yaml").write_text("train: train.csv\n")
    line = one_error_line(run_cli("stack", "--models", "tfidf,length", "-w", ws_dir))
    assert "tfidf.parquet: was made on other essays" in line
    assert "aes-ensemble fit-base tfidf" in line


def test_stack_names_the_import_to_redo_for_imported_predictions(run_cli, ws_dir: Path) -> None:
    res = run_cli("oof", "import", ws_dir / "tfidf.csv", "--name", "ext", "-w", ws_dir)
    assert res.exit_code == 0, res.stderr
    edit_first_score(ws_dir)
    line = one_error_line(run_cli("stack", "--models", "ext", "-w", ws_dir))
    assert line.endswith(
        "ext.parquet: was made on other essays (the training or test file changed since); "
        "re-import it: aes-ensemble oof import tfidf.csv --name ext --force"
    )


def test_older_files_without_a_fingerprint_are_stacked_with_a_note(run_cli, ws_dir: Path) -> None:
    oof, test = learner_preds(ws_dir, "length")
    write_learner(ws_dir, "length", oof, test, data_hash="")
    res = run_cli("stack", "-w", ws_dir)
    assert res.exit_code == 0, res.stderr
    assert "note: 'length' does not record which essays it was made on" in res.stdout
    assert "refit it: aes-ensemble fit-base length" in res.stdout
    assert "'tfidf' does not record" not in res.stdout


def test_stack_and_import_record_the_data_fingerprint(run_cli, ws_dir: Path) -> None:
    ws = Workspace.at(ws_dir)
    current = data_fingerprint(*load_workspace_dataset(ws))
    res = run_cli("oof", "import", ws_dir / "tfidf.csv", "--name", "ext", "-w", ws_dir)
    assert res.exit_code == 0, res.stderr
    store = PredictionStore(ws.oof_dir)
    assert store.read_meta("ext").data_hash == current
    res = run_cli("stack", "--models", "ext,length", "-w", ws_dir)
    assert res.exit_code == 0, res.stderr
    stack = store.read("stack_ridge")
    assert stack.meta.data_hash == current
    inputs = stack.meta.extra["inputs"]
    assert sorted(inputs) == ["ext", "length"]
    length = store.read_meta("length")
    assert inputs["length"]["config_hash"] == length.config_hash
    assert inputs["length"]["created"] == length.created
    assert inputs["ext"]["data_hash"] == current and len(inputs["ext"]["digest"]) == 16


# --- 2: a stale stack is refused by predict and report ----------------------------------------


def test_predict_and_report_refuse_a_stack_whose_learner_was_refit(run_cli, ws_dir: Path) -> None:
    assert run_cli("stack", "-w", ws_dir).exit_code == 0
    oof, test = learner_preds(ws_dir, "length")
    # A rerun that reassembles the same predictions (a new created stamp) keeps the stack current.
    write_learner(ws_dir, "length", oof, test, created="2030-01-01T00:00:00+00:00")
    res = run_cli("predict", "-w", ws_dir)
    assert res.exit_code == 0, res.stderr
    before = (ws_dir / "submission.csv").read_bytes()

    write_learner(ws_dir, "length", oof + 0.01, test + 0.01, config_hash="beef")
    assert one_error_line(run_cli("predict", "-w", ws_dir)) == STALE.format(how="refit")
    assert one_error_line(run_cli("report", "-w", ws_dir)) == STALE.format(how="refit")
    assert (ws_dir / "submission.csv").read_bytes() == before

    assert run_cli("stack", "--meta", "ridge", "--name", "stack_ridge", "-w", ws_dir).exit_code == 0
    assert run_cli("predict", "-w", ws_dir).exit_code == 0


def test_predict_refuses_a_stack_whose_learner_was_reimported_or_removed(
    run_cli, ws_dir: Path
) -> None:
    res = run_cli("oof", "import", ws_dir / "length.csv", "--name", "ext", "-w", ws_dir)
    assert res.exit_code == 0, res.stderr
    res = run_cli("stack", "--models", "ext,tfidf", "-w", ws_dir)
    assert res.exit_code == 0, res.stderr
    pl.read_csv(ws_dir / "length.csv").with_columns(pred=pl.col("pred") + 0.05).write_csv(
        ws_dir / "length2.csv"
    )
    args = ("oof", "import", ws_dir / "length2.csv", "--name", "ext", "--force", "-w", ws_dir)
    assert run_cli(*args).exit_code == 0
    line = one_error_line(run_cli("predict", "-w", ws_dir))
    assert "built on predictions of 'ext' that were re-imported since" in line
    assert "aes-ensemble stack --meta ridge --models ext,tfidf --name stack_ridge" in line

    (ws_dir / "oof" / "ext.parquet").unlink()
    line = one_error_line(run_cli("predict", "-w", ws_dir))
    assert "built on predictions of 'ext', which are gone" in line


def test_predict_refuses_a_stack_built_on_other_essays(run_cli, ws_dir: Path) -> None:
    assert run_cli("stack", "-w", ws_dir).exit_code == 0
    edit_first_score(ws_dir)
    line = one_error_line(run_cli("predict", "-w", ws_dir))
    assert (
        "stack 'stack_ridge' was built on other essays (the training or test file changed" in line
    )
    assert "refit its learners (length, tfidf), then run aes-ensemble stack" in line


def test_a_stack_of_a_restacked_stack_is_stale(run_cli, ws_dir: Path) -> None:
    assert run_cli("stack", "-w", ws_dir).exit_code == 0
    args = ("stack", "--meta", "mean", "--models", "stack_ridge,tfidf", "--name", "top")
    assert run_cli(*args, "-w", ws_dir).exit_code == 0
    assert run_cli("predict", "--stack", "top", "-w", ws_dir).exit_code == 0
    oof, test = learner_preds(ws_dir, "length")
    write_learner(ws_dir, "length", oof * 0.9 + 0.3, test * 0.9 + 0.3)
    line = one_error_line(run_cli("predict", "--stack", "top", "-w", ws_dir))
    assert STALE.format(how="refit")[len("error: ") :] == line[len("error: ") :]
    res = run_cli("stack", "--meta", "ridge", "--name", "stack_ridge", "-w", ws_dir)
    assert res.exit_code == 0, res.stderr
    line = one_error_line(run_cli("predict", "--stack", "top", "-w", ws_dir))
    assert "stack 'top' was built on predictions of 'stack_ridge' that were restacked since" in line
    assert line.endswith(
        "run aes-ensemble stack --meta mean --models stack_ridge,tfidf --name top again"
    )


# --- 3: predict --output ----------------------------------------------------------------------


def test_predict_output_folder_missing_parent_and_overwrite(run_cli, ws_dir: Path) -> None:
    assert run_cli("stack", "-w", ws_dir).exit_code == 0
    folder = ws_dir / "out"
    folder.mkdir()
    line = one_error_line(run_cli("predict", "--output", folder, "-w", ws_dir))
    assert line == (
        f"error: {folder}: is a folder; name the file to write (e.g. --output "
        f"{folder / 'submission.csv'})"
    )
    assert list(folder.iterdir()) == []
    nested = ws_dir / "new" / "deeper" / "sub.csv"
    assert run_cli("predict", "--output", nested, "-w", ws_dir).exit_code == 0
    nested.write_text("old\n")
    assert run_cli("predict", "--output", nested, "-w", ws_dir).exit_code == 0
    assert nested.read_text().startswith("essay_id,score\n")
    line = one_error_line(
        run_cli("predict", "--output", ws_dir / "train.csv" / "x.csv", "-w", ws_dir)
    )
    assert "train.csv: cannot write here" in line


# --- 4: oof import checks the spread of the predictions against the scale ---------------------


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            (pl.col("pred") - 1) / 4,
            "OOF predictions span 0.",
        ),
        (pl.col("pred") * 10, "is far outside the score scale 1-5"),
        (pl.lit(3.0), "all 300 OOF predictions are 3: a constant column"),
        (3 + (pl.col("pred") - 3) * 1e-3, "OOF predictions barely vary"),
        (pl.col("pred") - 1, "OOF predictions average 2."),
        (
            pl.when(pl.col("split") == "test").then((pl.col("pred") - 1) / 4).otherwise("pred"),
            "test predictions span 0.",
        ),
    ],
    ids=["normalised", "far-outside", "constant", "near-constant", "0-based", "test-normalised"],
)
def test_import_refuses_predictions_whose_spread_does_not_fit_the_scale(
    run_cli, ws_dir: Path, change: pl.Expr, message: str
) -> None:
    bad = ws_dir / "bad.csv"
    pl.read_csv(ws_dir / "tfidf.csv").with_columns(pred=change).write_csv(bad)
    line = one_error_line(run_cli("oof", "import", bad, "--name", "x", "-w", ws_dir))
    assert line.startswith(f"error: {bad}: ") and "key 'pred': " in line, line
    assert message in line, line
    assert not (ws_dir / "oof" / "x.parquet").exists()


def test_import_says_what_looks_wrong(run_cli, ws_dir: Path) -> None:
    bad = ws_dir / "bad.csv"
    pl.read_csv(ws_dir / "tfidf.csv").with_columns(pred=(pl.col("pred") - 1) / 4).write_csv(bad)
    line = one_error_line(run_cli("oof", "import", bad, "--name", "x", "-w", ws_dir))
    assert line.endswith(
        "but the scale is 1-5: are they normalised to 0-1? convert them to the score scale"
    )
    pl.read_csv(ws_dir / "tfidf.csv").with_columns(pred=pl.col("pred") - 1).write_csv(bad)
    line = one_error_line(run_cli("oof", "import", bad, "--name", "x", "-w", ws_dir))
    assert "below): are they 0-based, shifted or on another scale?" in line
    rng = np.random.default_rng(0)
    wide = pl.read_csv(ws_dir / "tfidf.csv")
    wide.with_columns(pred=pl.Series(rng.uniform(-0.9, 6.9, wide.height))).write_csv(bad)
    line = one_error_line(run_cli("oof", "import", bad, "--name", "x", "-w", ws_dir))
    assert "times as much as the scores" in line and "on another scale than 1-5?" in line


def test_import_checks_the_spread_per_prompt_scale(run_cli, tmp_path: Path) -> None:
    """Two prompts with their own scales (1-6 and 0-3): predictions for prompt b normalised to
    0..1 are named with their prompt, while both prompts' good predictions pass."""
    rng = np.random.default_rng(0)
    n = 80
    prompt = np.repeat(["a", "b"], n // 2)
    score = np.where(prompt == "a", rng.integers(1, 7, n), rng.integers(0, 4, n))
    words = ["good", "fine", "clear", "strong", "weak", "plain", "long", "short"]
    texts = [" ".join(rng.choice(words, 30)) + f" essay {i}" for i in range(n)]
    (tmp_path / "configs").mkdir()
    pl.DataFrame(
        {
            "essay_id": [f"e{i}" for i in range(n)],
            "full_text": texts,
            "score": score,
            "prompt": prompt,
        }
    ).write_csv(tmp_path / "train.csv")
    (tmp_path / "configs" / "data.yaml").write_text(
        "train: train.csv\nformat: generic\nper_prompt_scales: {a: '1-6', b: '0-3'}\n"
    )
    ws = Workspace.at(tmp_path)
    train, _ = load_workspace_dataset(ws)
    save_folds(ws, assign_folds(train, 4, seed=0))
    good = score + rng.normal(0, 0.6, n)
    rows = {"essay_id": [f"e{i}" for i in range(n)], "split": ["oof"] * n}
    pl.DataFrame({**rows, "pred": good}).write_csv(tmp_path / "good.csv")
    res = run_cli("oof", "import", tmp_path / "good.csv", "--name", "good", "-w", tmp_path)
    assert res.exit_code == 0, res.stderr
    pred = np.where(prompt == "b", np.clip(good, 0, 3) / 3, good)
    pl.DataFrame({**rows, "pred": pred}).write_csv(tmp_path / "bad.csv")
    line = one_error_line(
        run_cli("oof", "import", tmp_path / "bad.csv", "--name", "bad", "-w", tmp_path)
    )
    assert "OOF predictions for prompt b span" in line
    assert "but the scale is 0-3: are they normalised to 0-1?" in line


# --- 5: every file the stack reads back fails cleanly -----------------------------------------


def test_damaged_learner_file_is_named_with_the_fix(run_cli, ws_dir: Path) -> None:
    path = ws_dir / "oof" / "length.parquet"
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    line = one_error_line(run_cli("stack", "-w", ws_dir))
    assert line.startswith(f"error: {path}: not a readable Parquet file")
    assert line.endswith(
        "delete it and rerun the command that made it (fit-base, oof import or stack)"
    )


def test_learner_file_with_a_wrong_column_type_is_named_with_the_fix(run_cli, ws_dir: Path) -> None:
    path = ws_dir / "oof" / "length.parquet"
    table = pq.read_table(path)
    frame = pl.from_arrow(table).with_columns(pl.col("pred").cast(pl.String))
    pq.write_table(frame.to_arrow().replace_schema_metadata(table.schema.metadata), path)
    line = one_error_line(run_cli("stack", "-w", ws_dir))
    assert line == (
        f"error: {path}: key 'pred': column 'pred' has type String, expected Float64; delete it "
        "and rerun the command that made it (fit-base, oof import or stack)"
    )


def test_import_refuses_nested_columns(run_cli, ws_dir: Path) -> None:
    bad = ws_dir / "nested.parquet"
    good = pl.read_csv(ws_dir / "tfidf.csv")
    good.with_columns(pred=pl.concat_list("pred")).write_parquet(bad)
    line = one_error_line(run_cli("oof", "import", bad, "--name", "x", "-w", ws_dir))
    assert line == (
        f"error: {bad}: key 'pred': column has type List(Float64); expected one plain value per row"
    )


@pytest.mark.parametrize(
    ("key", "value"),
    [("seed", "x"), ("extra", []), ("scales", "x"), ("fold_qwk", 3), ("scales", {"default": 1})],
)
def test_metadata_of_a_wrong_type_is_refused(tmp_path: Path, key: str, value: object) -> None:
    frame = prediction_frame(["a", "b", "c"], ["oof"] * 3, [1.0, 2.0, 3.0], fold=[0, 1, 2])
    path = write_predictions(
        tmp_path / "x.parquet", PredictionSet(frame, PredictionMeta("x", "ridge", "f00"))
    )
    table = pq.read_table(path)
    meta = json.loads(table.schema.metadata[METADATA_KEY])
    meta[key] = value
    pq.write_table(table.replace_schema_metadata({METADATA_KEY: json.dumps(meta).encode()}), path)
    with pytest.raises(AesError) as info:
        read_predictions(path)
    assert info.value.path == path and info.value.key == key
    assert "delete it and rerun the command that made it" in str(info.value)


def _rewrite_stack_extra(root: Path, **extra) -> Path:
    store = PredictionStore(root / "oof")
    ps = store.read("stack_ridge")
    meta = PredictionMeta(**{**ps.meta.__dict__, "extra": {**ps.meta.extra, **extra}})
    return store.write(PredictionSet(ps.frame, meta))


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("final_thresholds", "x"),
        ("final_thresholds", {"cutpoints": [{"scale": {"low": 1, "high": 5}, "cuts": [3, 2]}]}),
        ("final_thresholds", {"cutpoints": []}),
        ("inputs", ["length"]),
    ],
    ids=["not-a-mapping", "decreasing", "no-scale", "inputs"],
)
def test_damaged_stack_metadata_is_named_with_the_fix(
    run_cli, ws_dir: Path, key: str, value: object
) -> None:
    assert run_cli("stack", "-w", ws_dir).exit_code == 0
    path = _rewrite_stack_extra(ws_dir, **{key: value})
    line = one_error_line(run_cli("predict", "-w", ws_dir))
    assert line.startswith(f"error: {path}: key '{key}': ")
    assert line.endswith("run aes-ensemble stack --meta ridge --name stack_ridge again")
    assert not (ws_dir / "submission.csv").exists()


# --- 6, 7: writable before long work; a user's bad inputs -------------------------------------


def snapshot(root: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()
    }


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("stack", "--models", "stack_ridge"), "cannot take its own predictions as input"),
        (("stack", "--models", "nope"), "no predictions named 'nope'"),
        (("stack", "--meta", "rige"), "did you mean 'ridge'"),
        (("stack", "--thresholds", "bogus"), "bogus"),
        (("stack", "--name", "a/b"), "prediction name 'a/b' must use letters"),
        (("predict", "--stack", "lenght"), "did you mean 'length'"),
        (("predict", "--thresholds", "optuan"), "key 'thresholds': unknown threshold method"),
        (("predict", "--output", "oof"), "is a folder"),
        (("oof", "import", "oof", "--name", "x"), "is a folder"),
        (("oof", "import", "tfidf.csv", "--name", "a b"), "prediction name 'a b' must use"),
        (("oof", "import", "tfidf.csv", "--name", "length"), "pass --force to replace them"),
        (("oof", "import", "train.csv", "--name", "x"), "column 'essay_id' is missing"),
    ],
)
def test_bad_inputs_are_one_line_and_damage_nothing(
    run_cli, ws_dir: Path, monkeypatch: pytest.MonkeyPatch, args: tuple[str, ...], message: str
) -> None:
    assert run_cli("stack", "-w", ws_dir).exit_code == 0
    assert run_cli("predict", "-w", ws_dir).exit_code == 0
    before = snapshot(ws_dir)
    monkeypatch.chdir(ws_dir)
    line = one_error_line(run_cli(*args, "-w", ws_dir))
    assert message in line, line
    assert snapshot(ws_dir) == before


def test_stack_with_an_empty_store_says_what_to_do(run_cli, ws_dir: Path) -> None:
    shutil.rmtree(ws_dir / "oof")
    (ws_dir / "oof").mkdir()
    line = one_error_line(run_cli("stack", "-w", ws_dir))
    assert "no base learner predictions to stack; fit learners or `aes-ensemble oof import`" in line


@pytest.fixture
def shared_dir() -> Iterator[Path]:
    with reachable_folder() as folder:
        yield folder


def test_read_only_store_fails_before_stacking(template: Path, shared_dir: Path) -> None:
    root = Path(shutil.copytree(template, shared_dir / "ws"))
    make_read_only(root)
    cli = [sys.executable, "-m", "aes_ensemble.cli.main", "stack", "-w", root]
    result = run_read_only(cli, shared_dir)
    assert result.returncode == 2, result.stderr
    assert result.stderr.startswith(f"error: {root / 'oof'}: cannot write here"), result.stderr
    assert result.stderr.count("\n") == 1
    assert not (root / "reports").exists()


# --- through fit-base: the learners' own files ------------------------------------------------

RIDGE = (
    "kind: ridge\nfeatures:\n  handcrafted: false\n"
    "  tfidf: {word_ngram_range: [1, 1], char_ngram_range: null, max_features: 300}\n"
    "params: {alpha: 10.0}\n"
)


def test_fit_base_files_make_a_stack_stale_only_when_they_change(run_cli, tmp_path: Path) -> None:
    root = tmp_path / "fit"
    (root / "configs").mkdir(parents=True)
    pl.read_csv(sample_path(TRAIN), infer_schema=False).head(150).write_csv(root / "train.csv")
    pl.read_csv(sample_path(TEST), infer_schema=False).head(20).write_csv(root / "test.csv")
    (root / "configs" / "data.yaml").write_text("train: train.csv\ntest: test.csv\n")
    for name in ("ridge_a", "ridge_b"):
        (root / "configs" / f"{name}.yaml").write_text(RIDGE)
    ws = Workspace.at(root)
    save_folds(ws, assign_folds(load_workspace_dataset(ws)[0], 3, seed=0))
    fit = ("--no-progress", "-w", root)
    for name in ("ridge_a", "ridge_b"):
        assert run_cli("fit-base", name, *fit).exit_code == 0
    assert run_cli("stack", "-w", root).exit_code == 0
    assert run_cli("fit-base", "ridge_a", *fit).exit_code == 0  # nothing changed
    assert run_cli("predict", "-w", root).exit_code == 0

    assert run_cli("fit-base", "ridge_a", "params.alpha=3", *fit).exit_code == 0
    line = one_error_line(run_cli("predict", "-w", root))
    assert "built on predictions of 'ridge_a' that were refit since" in line

    edit_first_score(root)
    line = one_error_line(run_cli("stack", "-w", root))
    assert line.endswith(
        "was made on other essays (the training or test file changed since); "
        "refit it: aes-ensemble fit-base ridge_a"
    )
