"""A fitted base learner scores essays it never saw: the fold models of a small workspace built
on the embedded sample, loaded from disk, reproduce the test rows fit-base wrote."""

from __future__ import annotations

import importlib.util
import json
import shutil
from pathlib import Path

import numpy as np
import polars as pl
import pytest
import torch
from transformers import AutoTokenizer, DebertaV2Model

from aes_ensemble.data import Essays, load_workspace_dataset
from aes_ensemble.engine import fit_learner
from aes_ensemble.errors import AesError
from aes_ensemble.features import handcrafted
from aes_ensemble.features.shared import shared_features
from aes_ensemble.folds import assign_folds, save_folds
from aes_ensemble.learners.linear import RidgeConfig, RidgeLearner
from aes_ensemble.learners.transformer.learner import resolve_model_path
from aes_ensemble.sample import TEST, TRAIN, sample_path
from aes_ensemble.scales import ScoreScale, ScoreScales
from aes_ensemble.scoring.learners import (
    FittedLearner,
    fold_dirs,
    learner_scales,
    load_learner,
    predict_learner,
)
from aes_ensemble.store import read_predictions
from aes_ensemble.workspace import Workspace

REPO = Path(__file__).resolve().parents[1]
N_FOLDS = 3
FEW_TREES = [
    "params.n_estimators=40",
    "params.early_stopping_rounds=10",
    "features.svd_components=16",
]
CPU_LEARNERS = {
    "ridge_tfidf": [],
    "lgbm": FEW_TREES,
    "xgb": FEW_TREES,
    "svr_emb": [],  # MiniLM on a CPU: the workspace holds 60 essays for its sake
    "ridge_prompts": [],
}
PER_PROMPT = """kind: ridge
per_prompt: true
features: {handcrafted: true}
"""


def _deberta_config(vocab_size: int) -> object:
    spec = importlib.util.spec_from_file_location(
        "bench_transformer", REPO / "bench" / "bench_transformer.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.deberta_v3_config(vocab_size, 32, 2, 2, 64)


@pytest.fixture(scope="module")
def ws(tmp_path_factory: pytest.TempPathFactory) -> Workspace:
    """60 sample essays (six of each of the ten prompts) in 3 stratified folds, 20 test essays,
    and every CPU learner fitted (a per-prompt ridge too: each fold trains on every prompt)."""
    root = tmp_path_factory.mktemp("score_ws")
    (root / "configs").mkdir()
    sample = pl.read_csv(sample_path(TRAIN), infer_schema=False)
    sample.filter(pl.int_range(pl.len()).over("prompt") < 6).write_csv(root / "train.csv")
    pl.read_csv(sample_path(TEST), infer_schema=False).head(20).write_csv(root / "test.csv")
    (root / "configs" / "data.yaml").write_text(
        "train: train.csv\ntest: test.csv\nformat: ellipse\n", encoding="utf-8"
    )
    (root / "configs" / "ridge_prompts.yaml").write_text(PER_PROMPT, encoding="utf-8")
    workspace = Workspace.at(root)
    train, _ = load_workspace_dataset(workspace)
    save_folds(workspace, assign_folds(train, N_FOLDS, seed=0, method="stratified"))
    for name, overrides in CPU_LEARNERS.items():
        fit_learner(workspace, name, overrides=overrides, progress=False)
    return workspace


@pytest.fixture(scope="module")
def test_essays(ws: Workspace) -> Essays:
    _, test = load_workspace_dataset(ws)
    assert test is not None
    return test


def _test_rows(ws: Workspace, name: str, ids: list[str]) -> pl.DataFrame:
    """``oof/NAME.parquet``'s test rows in the order of ``ids``."""
    rows = read_predictions(ws.oof_path(name)).test
    order = pl.DataFrame({"essay_id": ids}).with_row_index("_order")
    return rows.join(order, on="essay_id").sort("_order")


def _listing(root: Path) -> dict[str, tuple[int, int]]:
    return {str(p): (p.stat().st_size, p.stat().st_mtime_ns) for p in root.rglob("*")}


@pytest.mark.parametrize("name", list(CPU_LEARNERS))
def test_fold_models_score_the_test_rows_fit_base_wrote(
    ws: Workspace, test_essays: Essays, name: str, tmp_path: Path
) -> None:
    """Features computed afresh (no cache), in the given order and shuffled: each essay gets
    its test row's number; nothing is written anywhere."""
    before = _listing(ws.root), _listing(tmp_path)
    pred = predict_learner(ws.base_models_dir, name, test_essays).pred
    expected = _test_rows(ws, name, test_essays.ids)["pred"].to_numpy()
    np.testing.assert_allclose(pred, expected, rtol=0, atol=1e-9)

    order = np.random.default_rng(0).permutation(len(test_essays))
    shuffled = test_essays.take(order)
    pred = predict_learner(ws.base_models_dir, name, shuffled).pred
    np.testing.assert_allclose(pred, expected[order], rtol=0, atol=1e-9)
    assert (_listing(ws.root), _listing(tmp_path)) == before


def test_folds_and_learners_share_each_essays_features(
    ws: Workspace, test_essays: Essays, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Within one call, handcrafted features are computed once per essay and n-grams counted
    once per essay and analyzer, for every fold of ridge_tfidf and lgbm: the same numbers as
    the test rows, from one pass over the text instead of one per fold model."""
    computed: list[int] = []
    compute = handcrafted.handcrafted_features

    def counted(texts: list[str]) -> pl.DataFrame:
        computed.append(len(texts))
        return compute(texts)

    monkeypatch.setattr(handcrafted, "handcrafted_features", counted)
    names = ("ridge_tfidf", "lgbm")
    fitted = [load_learner(ws.base_models_dir, name) for name in names]
    with shared_features() as scope:
        preds = [learner.predict(test_essays).pred for learner in fitted]
    for name, pred in zip(names, preds, strict=True):
        expected = _test_rows(ws, name, test_essays.ids)["pred"].to_numpy()
        np.testing.assert_allclose(pred, expected, rtol=0, atol=1e-9)
    assert computed == [len(test_essays)]
    assert sorted(len(counts) for counts in scope.ngrams.values()) == [len(test_essays)] * 2

    fitted[0].predict(test_essays)  # a call of its own: its folds still share
    assert computed == [len(test_essays)] * 2


def test_a_cache_dir_is_read_and_filled_with_new_essays(
    ws: Workspace, test_essays: Essays, tmp_path: Path
) -> None:
    """Essays of the workspace read their cached features; new texts are added by their hash."""
    cache = tmp_path / "cache"
    shutil.copytree(ws.cache_dir, cache)
    fresh = Essays(
        test_essays.frame.head(3).with_columns(pl.col("full_text") + " Thank you."),
        test_essays.scales,
    )
    files = set(cache.rglob("*"))
    cached = predict_learner(ws.base_models_dir, "svr_emb", test_essays, cache_dir=cache)
    assert set(cache.rglob("*")) == files  # every test essay was in the cache
    expected = _test_rows(ws, "svr_emb", test_essays.ids)["pred"].to_numpy()
    np.testing.assert_allclose(cached.pred, expected, rtol=0, atol=1e-9)
    new = predict_learner(ws.base_models_dir, "svr_emb", fresh, cache_dir=cache)
    assert len(set(cache.rglob("*.npy")) - files) >= 1  # their embeddings and features, cached
    again = predict_learner(ws.base_models_dir, "svr_emb", fresh, cache_dir=None)
    np.testing.assert_allclose(new.pred, again.pred, rtol=0, atol=1e-9)


def test_scales_and_folds_as_recorded(ws: Workspace, test_essays: Essays) -> None:
    folders = fold_dirs(ws.base_models_dir, "lgbm")
    assert [f.name for f in folders] == [f"fold_{k}" for k in range(N_FOLDS)]
    assert learner_scales(ws.base_models_dir, "lgbm") == test_essays.scales
    fitted = load_learner(ws.base_models_dir, "lgbm")
    assert (fitted.kind, len(fitted.folds)) == ("lgbm", N_FOLDS)
    assert fold_dirs(ws.base_models_dir, "nothing_here") == []


def test_progress_shows_the_learner_and_its_pace(
    ws: Workspace,
    test_essays: Essays,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("AES_PROGRESS_SECONDS", "0")
    predict_learner(ws.base_models_dir, "ridge_tfidf", test_essays, progress=True)
    lines = [line for line in capsys.readouterr().err.splitlines() if "ridge_tfidf" in line]
    assert lines and "20/20 essays" in lines[-1] and "essays/s" in lines[-1]


def _with_prompt(essays: Essays, row: int, prompt: str | None) -> Essays:
    frame = essays.frame.with_columns(
        pl.when(pl.int_range(pl.len()) == row)
        .then(pl.lit(prompt, pl.String))
        .otherwise(pl.col("prompt"))
        .alias("prompt")
    )
    return Essays(frame, essays.scales, Path("new.csv"))


def test_per_prompt_learner_refuses_an_unknown_or_missing_prompt(
    ws: Workspace, test_essays: Essays
) -> None:
    known = sorted(set(load_workspace_dataset(ws)[0].prompts))
    with pytest.raises(AesError) as caught:
        predict_learner(ws.base_models_dir, "ridge_prompts", _with_prompt(test_essays, 4, "Pets"))
    message = str(caught.value)
    assert "\n" not in message and "new.csv: row 5" in message
    assert f"essay '{test_essays.ids[4]}' has prompt 'Pets'" in message
    assert "ridge_prompts" in message and ", ".join(known) in message
    with pytest.raises(AesError, match=f"essay '{test_essays.ids[0]}' has no prompt"):
        predict_learner(ws.base_models_dir, "ridge_prompts", _with_prompt(test_essays, 0, None))
    # one global model scores any prompt
    predict_learner(ws.base_models_dir, "ridge_tfidf", _with_prompt(test_essays, 4, "Pets"))


def test_per_prompt_scales_score_only_their_prompts(ws: Workspace, test_essays: Essays) -> None:
    """One model on ASAP-like per-prompt scales (no default scale): a prompt without a scale has
    no score, so it is refused before any work, naming the prompts there are."""
    train, _ = load_workspace_dataset(ws)
    scales = ScoreScales(per_prompt={str(p): ScoreScale(1, 5, 0.5) for p in set(train.prompts)})
    config = RidgeConfig.model_validate({"per_prompt": False, "features": {"handcrafted": True}})
    learner = RidgeLearner(config, scales).fit(Essays(train.frame, scales))
    fitted = FittedLearner("ridge_scales", "ridge", scales, (learner,))
    assert fitted.predict(test_essays).pred.shape == (len(test_essays),)
    with pytest.raises(AesError, match="has prompt 'Pets', but learner 'ridge_scales'"):
        fitted.predict(_with_prompt(test_essays, 2, "Pets"))


@pytest.fixture
def ridge_copy(ws: Workspace, tmp_path: Path) -> Path:
    """A copy of the ridge learner's folds to damage."""
    models = tmp_path / "base_models"
    shutil.copytree(ws.base_models_dir / "ridge_tfidf", models / "ridge_tfidf")
    return models


def test_unknown_learner_missing_fold_and_edited_config_are_refused(
    ridge_copy: Path, test_essays: Essays
) -> None:
    with pytest.raises(AesError, match=r"'ridge_tfidff' has no fitted fold models.*'ridge_tfidf'"):
        predict_learner(ridge_copy, "ridge_tfidff", test_essays)
    scales = ridge_copy / "ridge_tfidf" / "fold_0" / "scales.json"
    kept = scales.read_text()
    scales.write_text("{", encoding="utf-8")
    with pytest.raises(AesError, match=r"fold_0/scales\.json: is not JSON"):
        predict_learner(ridge_copy, "ridge_tfidf", test_essays)
    scales.write_text(kept, encoding="utf-8")
    done = ridge_copy / "ridge_tfidf" / "fold_1" / "done.json"
    record = done.read_text()
    done.write_text(record.replace('"data_hash": "', '"data_hash": "0'), encoding="utf-8")
    with pytest.raises(AesError, match="fold 1 of 'ridge_tfidf' was fitted with another data"):
        predict_learner(ridge_copy, "ridge_tfidf", test_essays)
    done.write_text(record, encoding="utf-8")
    older = json.loads(record) | {"feature_versions": {"handcrafted": "hc-0"}}
    done.write_text(json.dumps(older), encoding="utf-8")
    with pytest.raises(
        AesError,
        match=r"fold 1 of 'ridge_tfidf' was fitted with other feature "
        r"definitions \(handcrafted hc-0 -> hc-1\)",
    ):
        predict_learner(ridge_copy, "ridge_tfidf", test_essays)
    done.write_text(record, encoding="utf-8")
    config = ridge_copy / "ridge_tfidf" / "fold_2" / "config.yaml"
    config.write_text(config.read_text().replace("alpha: 3.0", "alpha: 4.0"), encoding="utf-8")
    with pytest.raises(AesError, match="differs from the config this fold was fitted with"):
        predict_learner(ridge_copy, "ridge_tfidf", test_essays)
    (ridge_copy / "ridge_tfidf" / "fold_1" / "done.json").unlink()
    with pytest.raises(AesError, match="fold 1 was never finished"):
        predict_learner(ridge_copy, "ridge_tfidf", test_essays)
    shutil.rmtree(ridge_copy / "ridge_tfidf" / "fold_1")
    with pytest.raises(AesError, match="has no fold_1 but has fold_2"):
        predict_learner(ridge_copy, "ridge_tfidf", test_essays)


def test_a_fold_without_its_scales_is_refused_naming_the_file(
    ws: Workspace, test_essays: Essays, tmp_path: Path
) -> None:
    """A fold folder must carry ``scales.json``; without it the learner cannot map its outputs
    onto a scale, even with the prediction parts beside it."""
    copy = Workspace.at(tmp_path / "copy")
    shutil.copytree(ws.base_models_dir / "ridge_tfidf", copy.base_models_dir / "ridge_tfidf")
    shutil.copytree(ws.oof_dir / "parts" / "ridge_tfidf", copy.oof_dir / "parts" / "ridge_tfidf")
    assert learner_scales(copy.base_models_dir, "ridge_tfidf") == test_essays.scales
    missing = fold_dirs(copy.base_models_dir, "ridge_tfidf")[1] / "scales.json"
    missing.unlink()
    with pytest.raises(AesError, match=r"fold_1/scales\.json: is missing: refit the fold"):
        learner_scales(copy.base_models_dir, "ridge_tfidf")


def test_embedding_models_load_from_the_folder_given(
    ws: Workspace, test_essays: Essays, tmp_path: Path
) -> None:
    """A bundle's copy of MiniLM is what the embeddings come from (an empty folder fails)."""
    copy = tmp_path / "minilm"
    shutil.copytree(resolve_model_path("all-MiniLM-L6-v2"), copy)
    few = test_essays.take(np.arange(4))
    pred = predict_learner(
        ws.base_models_dir, "svr_emb", few, embedding_models={"all-MiniLM-L6-v2": copy}
    ).pred
    expected = _test_rows(ws, "svr_emb", few.ids)["pred"].to_numpy()
    np.testing.assert_allclose(pred, expected, rtol=0, atol=1e-9)
    (tmp_path / "empty").mkdir()
    with pytest.raises(AesError, match="cannot load embedding model 'all-MiniLM-L6-v2'"):
        predict_learner(
            ws.base_models_dir,
            "svr_emb",
            few,
            embedding_models={"all-MiniLM-L6-v2": tmp_path / "empty"},
        )
    with pytest.raises(AesError, match="its local folder does not exist"):
        predict_learner(
            ws.base_models_dir,
            "svr_emb",
            few,
            embedding_models={"all-MiniLM-L6-v2": tmp_path / "no"},
        )


def test_transformer_folds_score_within_the_recorded_half_precision_difference(
    ws: Workspace, test_essays: Essays, tmp_path: Path
) -> None:
    """A tiny random DeBERTa-v3-shaped encoder, ordinal head, predicting in bf16 on the CPU."""
    tokenizer = AutoTokenizer.from_pretrained(resolve_model_path("all-MiniLM-L6-v2"))
    tiny = tmp_path / "tiny_deberta"
    torch.manual_seed(0)
    DebertaV2Model(_deberta_config(len(tokenizer))).save_pretrained(tiny)
    tokenizer.save_pretrained(tiny)
    config = {
        "kind": "transformer",
        "seed": 7,
        "model": {"pretrained_model_name_or_path": str(tiny), "max_length": 128, "head": "ordinal"},
        "train": {"epochs": 1, "batch_size": 16, "learning_rate": 1e-3, "device": "cpu"},
        "predict": {"batch_size": 8, "dtype": "bf16"},
    }
    (ws.configs_dir / "tiny.yaml").write_text(json.dumps(config), encoding="utf-8")
    fit_learner(ws, "tiny", progress=False)
    tolerance = max(
        json.loads((f / "learner.json").read_text())["half_precision"]["max_abs_diff"]
        for f in fold_dirs(ws.base_models_dir, "tiny")
    )
    assert tolerance > 0
    got = predict_learner(ws.base_models_dir, "tiny", test_essays)
    rows = _test_rows(ws, "tiny", test_essays.ids)
    assert np.max(np.abs(got.pred - rows["pred"].to_numpy())) <= tolerance
    assert got.proba is not None and got.proba_labels
    expected = rows.select(f"proba_{label}" for label in got.proba_labels).to_numpy()
    assert np.max(np.abs(got.proba - expected)) <= tolerance
    np.testing.assert_allclose(got.proba.sum(axis=1), 1.0, atol=1e-6)
