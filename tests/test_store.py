"""The prediction store: round trip, refused folds, each corruption named, atomic writes."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import polars as pl
import pyarrow.parquet as pq
import pytest

from aes_ensemble.errors import AesError
from aes_ensemble.scales import ELLIPSE_SCALE
from aes_ensemble.store import (
    METADATA_KEY,
    PredictionMeta,
    PredictionSet,
    PredictionStore,
    prediction_digest,
    prediction_frame,
    read_prediction_meta,
    read_predictions,
    write_predictions,
)

LABELS = ("1", "2", "3")


def make_set(name: str = "ridge", folds_hash: str = "abc123", seed: int = 0) -> PredictionSet:
    rng = np.random.default_rng(seed)
    n_oof, n_test = 12, 4
    ids = [f"e{i}" for i in range(n_oof)] + [f"t{i}" for i in range(n_test)]
    proba = rng.dirichlet(np.ones(3), size=n_oof + n_test)
    frame = prediction_frame(
        ids,
        ["oof"] * n_oof + ["test"] * n_test,
        rng.uniform(1, 5, n_oof + n_test),
        fold=[i % 3 for i in range(n_oof)] + [None] * n_test,
        prompt=["p1", "p2"] * ((n_oof + n_test) // 2),
        proba=proba,
        proba_labels=LABELS,
    )
    meta = PredictionMeta(
        name=name,
        learner="ridge",
        folds_hash=folds_hash,
        config={"kind": "ridge", "params": {"alpha": 1.0}},
        config_hash="0123456789abcdef",
        seed=42,
        fold_qwk={"0": 0.71, "1": 0.7, "2": 0.69},
        fit_seconds={"0": 0.5, "1": 0.25, "2": 0.125},
        scales=ELLIPSE_SCALE.to_dict(),
        extra={"note": "test"},
    )
    return PredictionSet(frame, meta)


def rewrite(path: Path, frame: pl.DataFrame, meta_json: bytes | None) -> None:
    """Write a file behind the store's back, as a broken tool or a hand edit would."""
    table = frame.to_arrow()
    if meta_json is not None:
        table = table.replace_schema_metadata({METADATA_KEY: meta_json})
    pq.write_table(table, path)


def test_round_trip_keeps_frame_and_meta(tmp_path: Path) -> None:
    ps = make_set()
    path = write_predictions(tmp_path / "ridge.parquet", ps)
    back = read_predictions(path, folds_hash="abc123", expected_ids=[f"e{i}" for i in range(12)])
    assert back.frame.equals(ps.frame)
    assert back.frame.schema == ps.frame.schema
    assert back.meta == ps.meta
    assert back.meta.score_scales == ELLIPSE_SCALE
    assert back.proba_columns == ["proba_1", "proba_2", "proba_3"]
    assert back.oof.height == 12 and back.test.height == 4


def test_meta_records_installed_versions_without_importing_torch() -> None:
    meta = make_set().meta
    assert meta.versions["numpy"] == np.__version__
    assert meta.versions["polars"] == pl.__version__
    code = (
        "import sys; from aes_ensemble.store import package_versions; v = package_versions(); "
        "print('torch' in v, 'torch' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["True", "False"]


def test_wrong_folds_hash_is_refused(tmp_path: Path) -> None:
    path = write_predictions(tmp_path / "ridge.parquet", make_set(folds_hash="aaaa"))
    with pytest.raises(AesError, match=r"other folds \(folds hash aaaa, workspace folds bbbb\)"):
        read_predictions(path, folds_hash="bbbb")


def test_missing_and_extra_ids_are_named(tmp_path: Path) -> None:
    path = write_predictions(tmp_path / "ridge.parquet", make_set())
    ids = [f"e{i}" for i in range(12)]
    with pytest.raises(AesError, match="training essay 'zz'"):
        read_predictions(path, expected_ids=[*ids, "zz"])
    with pytest.raises(AesError, match="essay 'e11', which is not a training essay"):
        read_predictions(path, expected_ids=ids[:-1])


def _corrupt(frame: pl.DataFrame, column: str, row: int, value: object) -> pl.DataFrame:
    values = frame[column].to_list()
    values[row] = value
    return frame.with_columns(pl.Series(column, values, dtype=frame.schema[column]))


CORRUPTIONS = [
    (lambda f: f.drop("pred"), r"column 'pred' is missing"),
    (lambda f: f.with_columns(pl.col("fold").cast(pl.Float64)), r"'fold' has type Float64"),
    (lambda f: _corrupt(f, "split", 2, "valid"), r"row 3: split is 'valid'"),
    (lambda f: _corrupt(f, "fold", 4, None), r"row 5: oof row has no fold"),
    (lambda f: _corrupt(f, "fold", 13, 1), r"row 14: test row has a fold"),
    (lambda f: _corrupt(f, "essay_id", 7, "e1"), r"row 8: duplicate essay_id 'e1'"),
    (lambda f: _corrupt(f, "essay_id", 0, " "), r"row 1: essay_id is empty"),
    (lambda f: _corrupt(f, "pred", 6, float("nan")), r"row 7: pred nan is not finite"),
    (lambda f: _corrupt(f, "pred", 6, None), r"row 7: pred None is not finite"),
    (lambda f: _corrupt(f, "proba_2", 3, 1.5), r"row 4: proba_2 1.5 is not a probability"),
    (lambda f: _corrupt(f, "proba_2", 3, 0.0), r"row 4: probabilities sum to"),
    (lambda f: f.with_columns(pl.lit(1.0).alias("extra")), r"key 'extra': unexpected column"),
    (lambda f: f.head(0), r"has no rows"),
]


@pytest.mark.parametrize(("corrupt", "message"), CORRUPTIONS)
def test_each_corruption_is_named(tmp_path: Path, corrupt, message: str) -> None:
    ps = make_set()
    path = tmp_path / "bad.parquet"
    rewrite(path, corrupt(ps.frame), ps.meta.to_json().encode())
    with pytest.raises(AesError, match=message) as info:
        read_predictions(path)
    assert str(path) in str(info.value)


def test_write_refuses_an_invalid_frame(tmp_path: Path) -> None:
    ps = make_set()
    bad = PredictionSet(_corrupt(ps.frame, "pred", 0, float("inf")), ps.meta)
    with pytest.raises(AesError, match="row 1: pred inf is not finite"):
        write_predictions(tmp_path / "x.parquet", bad)
    assert not list(tmp_path.iterdir())


@pytest.mark.parametrize(
    ("meta_json", "message"),
    [
        (None, "has no 'aes_ensemble' metadata"),
        (b"{not json", "is not JSON"),
        (b"[1, 2]", "is not a JSON object"),
        (json.dumps({"name": "x", "learner": "y"}).encode(), "key 'folds_hash': metadata lacks"),
        (
            json.dumps({"name": "x", "learner": "y", "folds_hash": "z", "seeds": 1}).encode(),
            "key 'seeds': metadata has unknown key \\(did you mean 'seed'\\?\\)",
        ),
        (
            json.dumps(
                {"name": "x", "learner": "y", "folds_hash": "z", "schema_version": 99}
            ).encode(),
            "schema version 99 is newer",
        ),
        (
            json.dumps(
                {"name": "x", "learner": "y", "folds_hash": "z", "schema_version": 1}
            ).encode(),
            "written by a pre-release aes-ensemble; refit this workspace once",
        ),
        (
            json.dumps({"name": "x", "learner": "y", "folds_hash": "z"}).encode(),
            "written by a pre-release aes-ensemble",
        ),
    ],
)
def test_bad_metadata_is_named(tmp_path: Path, meta_json: bytes | None, message: str) -> None:
    path = tmp_path / "bad.parquet"
    rewrite(path, make_set().frame, meta_json)
    with pytest.raises(AesError, match=message):
        read_predictions(path)
    with pytest.raises(AesError, match=message):
        read_prediction_meta(path)


def test_meta_alone_comes_from_the_footer(tmp_path: Path) -> None:
    """The metadata is read without the rows, so a file whose rows are broken still names its
    learner (the stack commands only need that to pick files)."""
    store = PredictionStore(tmp_path)
    ps = make_set()
    store.write(ps)
    assert store.read_meta("ridge") == ps.meta
    broken = _corrupt(ps.frame, "pred", 0, float("nan"))
    rewrite(store.path("ridge"), broken, ps.meta.to_json().encode())
    assert store.read_meta("ridge") == ps.meta
    with pytest.raises(AesError, match="row 1: pred nan is not finite"):
        store.read("ridge")
    with pytest.raises(AesError, match="no predictions named 'ridg'"):
        store.read_meta("ridg")


def test_missing_and_non_parquet_files(tmp_path: Path) -> None:
    with pytest.raises(AesError, match="prediction file not found"):
        read_predictions(tmp_path / "none.parquet")
    junk = tmp_path / "junk.parquet"
    junk.write_text("essay_id,pred\na,1\n")
    with pytest.raises(AesError, match="not a readable Parquet file"):
        read_predictions(junk)


def test_failed_write_leaves_previous_file_intact(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "ridge.parquet"
    first = make_set(seed=1)
    write_predictions(path, first)
    real_write = pq.write_table

    def crash_midway(table, where, **kwargs):
        real_write(table.slice(0, 3), where, **kwargs)
        Path(where).write_bytes(Path(where).read_bytes()[:50])
        raise OSError("disk full")

    monkeypatch.setattr(pq, "write_table", crash_midway)
    with pytest.raises(OSError, match="disk full"):
        write_predictions(path, make_set(seed=2))
    monkeypatch.undo()
    back = read_predictions(path)
    assert back.frame.equals(first.frame)
    assert [p.name for p in tmp_path.iterdir()] == ["ridge.parquet"]


def test_store_names_reads_and_refuses_mixed_folds(tmp_path: Path) -> None:
    store = PredictionStore(tmp_path / "oof")
    assert store.names() == []
    store.write(make_set("ridge", folds_hash="aaaa"))
    store.write(make_set("lgbm", folds_hash="aaaa"))
    store.write(make_set("deberta", folds_hash="bbbb"))
    assert store.names() == ["deberta", "lgbm", "ridge"]
    both = store.read_many(["lgbm", "ridge"])
    assert [ps.name for ps in both] == ["lgbm", "ridge"]
    with pytest.raises(AesError, match="'lgbm' has folds hash aaaa but 'deberta' has bbbb"):
        store.read_many(["lgbm", "deberta"])
    with pytest.raises(AesError, match="no predictions named 'ridg' \\(did you mean 'ridge'"):
        store.read("ridg")
    with pytest.raises(AesError, match="must use letters"):
        store.path("../evil")


def test_prediction_digest_follows_the_rows_not_the_metadata(tmp_path: Path) -> None:
    ps = make_set()
    again = PredictionSet(ps.frame, PredictionMeta(**{**ps.meta.__dict__, "created": "2030"}))
    write_predictions(tmp_path / "a.parquet", ps)
    write_predictions(tmp_path / "b.parquet", again)
    a, b = read_predictions(tmp_path / "a.parquet"), read_predictions(tmp_path / "b.parquet")
    assert (tmp_path / "a.parquet").read_bytes() != (tmp_path / "b.parquet").read_bytes()
    assert prediction_digest(a.frame) == prediction_digest(b.frame) == prediction_digest(ps.frame)
    nudged = ps.frame.with_columns(pl.col("pred") + 1e-12 * (pl.col("essay_id") == "e3"))
    assert prediction_digest(nudged) != prediction_digest(ps.frame)
    moved = ps.frame.with_columns(pl.col("fold").shift(1, fill_value=0))
    assert prediction_digest(moved) != prediction_digest(ps.frame)
