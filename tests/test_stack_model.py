"""The saved stack (``StackModel``): from the learners' test rows it remakes the stack's test
predictions and ``predict``'s levels, for every meta-learner; damaged files are refused."""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import re
import sys
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import FunctionTransformer

from aes_ensemble.config import hash_mapping
from aes_ensemble.data import Essays, data_fingerprint, load_workspace_dataset
from aes_ensemble.errors import AesError
from aes_ensemble.folds import assign_folds, load_folds, save_folds
from aes_ensemble.sample import TEST, TRAIN, sample_path
from aes_ensemble.stacking import (
    StackConfig,
    StackModel,
    length_features,
    stack_model_dir,
    stack_workspace,
    write_submission,
)
from aes_ensemble.stacking.meta import BUILTINS
from aes_ensemble.stacking.saved_meta import LinearMeta
from aes_ensemble.store import (
    PROBA_PREFIX,
    Prediction,
    PredictionMeta,
    PredictionSet,
    PredictionStore,
    prediction_frame,
)
from aes_ensemble.workspace import Workspace

HAVE_SKOPS = importlib.util.find_spec("skops") is not None


def _fold_means(model, X, y, folds, X_test, output) -> tuple[np.ndarray, np.ndarray]:
    """OOF rows and the fold-mean test rows of ``output(fitted, X)``, as the runner makes them."""
    ks = np.unique(folds)
    oof = test = None
    for k in ks:
        fitted = model.fit(X[folds != k], y[folds != k])
        part = output(fitted, X[folds == k])
        oof = np.empty((len(y), *part.shape[1:])) if oof is None else oof
        oof[folds == k] = part
        test = output(fitted, X_test) / len(ks) + (0 if test is None else test)
    return oof, test


def _write(ws: Workspace, train: Essays, test: Essays, name: str, oof, test_pred, proba=None):
    folds = load_folds(ws)
    n, m = len(train.ids), len(test.ids)
    labels: tuple[str, ...] = ()
    matrix = None
    if proba is not None:
        labels = tuple(f"{v:g}" for v in train.scales.for_prompt(None).levels)
        matrix = np.vstack(proba)
    frame = prediction_frame(
        train.ids + test.ids,
        ["oof"] * n + ["test"] * m,
        np.concatenate([oof, test_pred]),
        fold=[*folds.fold_array(train), *([None] * m)],
        prompt=[*train.prompts, *test.prompts],
        proba=matrix,
        proba_labels=labels,
    )
    meta = PredictionMeta(
        name=name,
        learner="notebook",
        folds_hash=folds.hash,
        config={"model": name},
        config_hash=hash_mapping({"model": name}),
        data_hash=data_fingerprint(train, test),
        scales=train.scales.to_dict(),
    )
    PredictionStore(ws.oof_dir).write(PredictionSet(frame, meta))


@pytest.fixture(scope="module")
def ws(tmp_path_factory: pytest.TempPathFactory) -> Workspace:
    """The embedded sample with saved folds and four learners' predictions written through
    the store: TF-IDF ridge, length ridge, and two classifiers (on length) with ``proba_*``."""
    root = tmp_path_factory.mktemp("ws")
    (root / "configs").mkdir()
    (root / "configs" / "data.yaml").write_text(
        f"train: {sample_path(TRAIN)}\ntest: {sample_path(TEST)}\n"
    )
    ws = Workspace.at(root)
    train, test = load_workspace_dataset(ws)
    assert test is not None
    save_folds(ws, assign_folds(train, 5, seed=42))
    folds = load_folds(ws).fold_array(train)
    y = train.scores
    vec = TfidfVectorizer(min_df=2, sublinear_tf=True).fit(train.texts)
    tfidf, tfidf_test = vec.transform(train.texts), vec.transform(test.texts)
    oof, pred = _fold_means(Ridge(alpha=3.0), tfidf, y, folds, tfidf_test, _predict)
    _write(ws, train, test, "tfidf", oof, pred)
    length, length_test = length_features(train.texts), length_features(test.texts)
    oof, pred = _fold_means(Ridge(alpha=1.0), length, y, folds, length_test, _predict)
    _write(ws, train, test, "length", oof, pred)
    levels = train.scales.for_prompt(None).levels
    codes = np.searchsorted(levels, y)
    for name, c in (("ordinal", 1.0), ("classes", 0.05)):
        proba = _fold_means(
            LogisticRegression(C=c, max_iter=500),
            length,
            codes,
            folds,
            length_test,
            lambda m, X: _full_proba(m, X, len(levels)),
        )
        oof, pred = (p @ levels for p in proba)
        _write(ws, train, test, name, oof, pred, proba=proba)
    return ws


def _predict(model, X) -> np.ndarray:
    return model.predict(X)


def _full_proba(model, X, k: int) -> np.ndarray:
    out = np.zeros((X.shape[0], k))
    out[:, model.classes_] = model.predict_proba(X)
    return out


def _in_order(rows: pl.DataFrame, ids) -> pl.DataFrame:
    return pl.DataFrame({"essay_id": ids}).join(rows, on="essay_id", how="left")


def _learner_test_rows(ws: Workspace, names, ids) -> dict[str, Prediction]:
    """Each learner's test rows as the ``Prediction`` a fitted learner returns for the essays."""
    store = PredictionStore(ws.oof_dir)
    out = {}
    for name in names:
        ps = store.read(name)
        rows = _in_order(ps.test, ids)
        columns = ps.proba_columns
        out[name] = Prediction(
            pred=rows["pred"].to_numpy(),
            proba=rows.select(columns).to_numpy() if columns else None,
            proba_labels=tuple(c.removeprefix(PROBA_PREFIX) for c in columns),
        )
    return out


_MADE: dict[str, StackModel] = {}


def _stack(ws: Workspace, **config) -> StackModel:
    """Stack the module's workspace as ``config`` says (once per config) and load the model."""
    key = json.dumps(config, sort_keys=True)
    if key not in _MADE:
        cfg = StackConfig.model_validate({"n_boot": 20, **config})
        stack_workspace(ws, cfg)
        _MADE[key] = StackModel.load(stack_model_dir(ws, cfg.output_name))
    return _MADE[key]


# Neither linear nor LightGBM: saved with skops.
SKOPS_CASE = {
    "meta": {"class": "sklearn.neighbors.KNeighborsRegressor", "params": {"n_neighbors": 25}},
    "models": ["tfidf", "length"],
}
NO_SKOPS = "skops is not installed (it comes with the dev extra)"
CASES = [
    *[{"meta": meta, "models": ["tfidf", "length", "ordinal"]} for meta in BUILTINS],
    {
        "meta": "ridge",
        "models": ["tfidf", "ordinal", "classes"],
        "features": {"proba": True, "length": True},
        "name": "ridge_proba_length",
    },
    {
        "meta": "lgbm",
        "models": ["tfidf", "ordinal"],
        "features": {"proba": True, "length": True},
        "name": "lgbm_proba_length",
    },
    {
        "meta": "ridge",
        "models": ["tfidf", "length"],
        "features": {"length": True, "prompt_weights": True},
        "name": "ridge_prompt_weights",
    },
    {
        "meta": {"class": "sklearn.linear_model.HuberRegressor", "params": {"alpha": 0.01}},
        "models": ["tfidf", "length"],
        "features": {"length": True},
    },
    {"meta": {"class": "lightgbm.LGBMRegressor", "params": {"n_estimators": 30}}},
    pytest.param(SKOPS_CASE, marks=pytest.mark.skipif(not HAVE_SKOPS, reason=NO_SKOPS)),
]


@pytest.mark.parametrize("config", CASES, ids=lambda c: c.get("name") or str(c["meta"]))
def test_saved_stack_remakes_test_predictions_and_levels(
    ws: Workspace, config: dict, tmp_path: Path
) -> None:
    model = _stack(ws, **config)
    _, test = load_workspace_dataset(ws)
    assert test is not None
    stacked = PredictionStore(ws.oof_dir).read(model.name)
    assert list(model.learners) == (
        config.get("models") or ["classes", "length", "ordinal", "tfidf"]
    )
    assert model.lineage == stacked.meta.extra["inputs"]
    assert model.cuts.to_dict() == stacked.meta.extra["final_thresholds"]
    if config.get("features", {}).get("proba"):
        assert any(":proba_" in name for name in model.feature_names)
    if config.get("features", {}).get("prompt_weights"):
        assert model.prompt_levels == tuple(sorted(set(load_workspace_dataset(ws)[0].prompts)))
        assert model.feature_names[-1] == f"prompt={model.prompt_levels[-1]}"
        assert "log_words" in model.feature_names
    elif config.get("features", {}).get("length"):
        assert model.feature_names[-1] == "log_words"
    base = _learner_test_rows(ws, model.learners, test.ids)
    pred = model.predict(base, test.texts, test.prompts)
    expected = _in_order(stacked.test, test.ids)["pred"].to_numpy()
    np.testing.assert_allclose(pred, expected, rtol=0, atol=1e-9)
    _, _, levels = write_submission(ws, model.name, output=tmp_path / "sub.csv")
    written = pl.read_csv(tmp_path / "sub.csv", infer_schema=False)["score"].to_list()
    assert [f"{v:g}" for v in model.levels(pred, test.prompts)] == written
    np.testing.assert_array_equal(model.levels(pred, test.prompts), levels)


def test_saved_stack_needs_every_learner_and_its_proba(ws: Workspace) -> None:
    model = _stack(
        ws, meta="ridge", models=["tfidf", "ordinal"], features={"proba": True}, name="needs"
    )
    _, test = load_workspace_dataset(ws)
    assert test is not None
    base = _learner_test_rows(ws, model.learners, test.ids)
    with pytest.raises(AesError, match="needs predictions of 'ordinal'"):
        model.predict({"tfidf": base["tfidf"]}, test.texts, test.prompts)
    no_proba = {**base, "ordinal": Prediction(base["ordinal"].pred)}
    with pytest.raises(AesError, match="class probabilities of 'ordinal'"):
        model.predict(no_proba, test.texts, test.prompts)


@pytest.mark.parametrize(
    ("class_path", "params", "hide_skops", "message"),
    [
        ("xgboost.XGBRegressor", {"n_estimators": 5, "n_jobs": 1}, False, "use a scikit-learn"),
        ("sklearn.neighbors.KNeighborsRegressor", {}, True, "install skops"),
    ],
)
def test_a_meta_learner_that_cannot_be_saved_safely_is_refused_before_writing(
    ws: Workspace,
    monkeypatch: pytest.MonkeyPatch,
    class_path: str,
    params: dict,
    hide_skops: bool,
    message: str,
) -> None:
    if hide_skops:  # an environment without the skops extra
        monkeypatch.setitem(sys.modules, "skops", None)
        monkeypatch.setitem(sys.modules, "skops.io", None)
    cfg = StackConfig.model_validate(
        {
            "meta": {"class": class_path, "params": params},
            "models": ["tfidf", "length"],
            "name": "refused",
        }
    )
    with pytest.raises(AesError, match=f"'{re.escape(class_path)}' cannot be saved") as info:
        stack_workspace(ws, cfg)
    assert message in str(info.value)
    assert not PredictionStore(ws.oof_dir).path("refused").exists()
    assert not stack_model_dir(ws, "refused").exists()


def test_a_skops_file_with_untrusted_types_is_refused(ws: Workspace, tmp_path: Path) -> None:
    sio = pytest.importorskip("skops.io")
    model = _stack(ws, **SKOPS_CASE)
    folder = tmp_path / "stack"
    model.save(folder)
    assert (folder / "meta.skops").is_file()
    assert StackModel.load(folder).meta_name == "kneighborsregressor"
    evil = make_pipeline(FunctionTransformer(os.path.abspath, validate=False), Ridge())
    blob = sio.dumps(evil)  # unfitted: what matters is the type it names
    (folder / "meta.skops").write_bytes(blob)
    _edit_json(lambda d: d["meta"].update(sha256=hashlib.sha256(blob).hexdigest()))(folder)
    with pytest.raises(AesError, match=r"type 'posixpath\.abspath', which is not trusted") as info:
        StackModel.load(folder)
    assert str(folder / "meta.skops") in str(info.value)


def test_a_learners_fold_models_are_not_overwritten(ws: Workspace) -> None:
    folder = stack_model_dir(ws, "taken")
    (folder / "fold_0").mkdir(parents=True)
    with pytest.raises(AesError, match="holds something other than a saved stack"):
        stack_workspace(ws, StackConfig(meta="mean", name="taken", n_boot=20))
    assert (folder / "fold_0").is_dir()
    (folder / "fold_0").rmdir()
    (folder / "meta_lgbm.txt").write_text("left by a save that was killed")
    stack_workspace(ws, StackConfig(meta="mean", name="taken", n_boot=20))
    assert sorted(p.name for p in folder.iterdir()) == ["stack.json"]


def _damaged(tmp_path: Path, model: StackModel, edit) -> Path:
    folder = tmp_path / model.name
    model.save(folder)
    edit(folder)
    return folder


def _edit_json(change):
    def edit(folder: Path) -> None:
        data = json.loads((folder / "stack.json").read_text())
        change(data)
        (folder / "stack.json").write_text(json.dumps(data))

    return edit


@pytest.mark.parametrize(
    ("meta", "edit", "message"),
    [
        ("ridge", lambda f: (f / "stack.json").unlink(), "no saved stack here"),
        ("ridge", lambda f: (f / "stack.json").write_text('{"name": '), "not valid JSON"),
        ("ridge", _edit_json(lambda d: d["meta"]["coef"].pop()), "2 weights for 3 features"),
        ("ridge", _edit_json(lambda d: d.pop("cuts")), "required key is missing"),
        ("ridge", _edit_json(lambda d: d["meta"].update(kind="pickle")), "kind"),
        ("ridge", _edit_json(lambda d: d.update(format_version=99)), "upgrade aes-ensemble"),
        ("vote", _edit_json(lambda d: d["meta"]["level_cuts"].pop()), "2 sets of cut points"),
        ("lgbm", lambda f: (f / "meta_lgbm.txt").write_text("tree\n"), "changed or truncated"),
        ("lgbm", lambda f: (f / "meta_lgbm.txt").unlink(), "cannot read the meta-learner"),
    ],
)
def test_damaged_saved_stack_is_refused_naming_the_file(
    ws: Workspace, tmp_path: Path, meta: str, edit, message: str
) -> None:
    model = _stack(ws, meta=meta, models=["tfidf", "length", "ordinal"])
    folder = _damaged(tmp_path, model, edit)
    with pytest.raises(AesError) as info:
        StackModel.load(folder)
    text = str(info.value)
    assert message in text and "rerun aes-ensemble stack" in text
    assert str(folder) in text


def test_json_nan_weights_are_refused(ws: Workspace, tmp_path: Path) -> None:
    model = _stack(ws, meta="nnls", models=["tfidf", "length", "ordinal"])

    def nan(folder: Path) -> None:
        path = folder / "stack.json"
        data = json.loads(path.read_text())
        data["meta"]["intercept"] = float("nan")
        path.write_text(json.dumps(data))

    with pytest.raises(AesError, match="NaN is not a number JSON allows"):
        StackModel.load(_damaged(tmp_path, model, nan))


def test_save_load_round_trip_keeps_every_part(ws: Workspace, tmp_path: Path) -> None:
    model = _stack(ws, meta="hill", models=["tfidf", "length", "ordinal"])
    data = json.loads((stack_model_dir(ws, model.name) / "stack.json").read_text())
    assert data["format_version"] == 1 and data["package_version"]
    assert set(data["lineage"]["tfidf"]) >= {"config_hash", "folds_hash", "data_hash"}
    folder = tmp_path / "copy"
    _stack(ws, meta="lgbm", models=["tfidf", "length", "ordinal"]).save(folder)
    (folder / "notes.txt").write_text("mine")
    model.save(folder)  # over a LightGBM stack: its model text goes, other files stay
    again = StackModel.load(folder)
    assert again.learners == model.learners and again.cuts == model.cuts
    assert again.meta == model.meta and again.lineage == model.lineage
    assert sorted(p.name for p in folder.iterdir()) == ["notes.txt", "stack.json"]


def test_a_prompt_the_stack_never_saw_gets_the_shared_weights(ws: Workspace) -> None:
    model = _stack(
        ws,
        meta="ridge",
        models=["tfidf", "length"],
        features={"prompt_weights": True},
        name="ridge_prompt_weights_only",
    )
    meta = model.meta
    assert isinstance(meta, LinearMeta)
    _, test = load_workspace_dataset(ws)
    assert test is not None
    base = _learner_test_rows(ws, model.learners, test.ids)
    unseen = np.full(len(test.ids), "a prompt never seen", dtype=object)
    pred = model.predict(base, test.texts, unseen)
    norm = np.column_stack(
        [model.scales.normalise(base[name].pred, unseen) for name in model.learners]
    )
    shared = norm @ np.asarray(meta.coef)[: len(model.learners)] + meta.intercept
    np.testing.assert_allclose(pred, model.scales.denormalise(shared, unseen), atol=1e-12)
    seen = model.predict(base, test.texts, test.prompts)
    assert not np.allclose(seen, pred)
