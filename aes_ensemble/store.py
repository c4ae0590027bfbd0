"""The prediction store: one Parquet file per learner run in ``oof/``, one schema for all.

Every learner (and every stack) writes its out-of-fold and test predictions here, so the stack
never imports a learner and a teammate's notebook predictions can join through ``oof import``.
The metadata (JSON under the Parquet key ``aes_ensemble``) records the folds hash and the data
fingerprint: files made with different folds are refused instead of being mixed silently, and
the stack refuses files made on other essays.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field, fields
from datetime import datetime, timezone
from importlib import metadata as importlib_metadata
from pathlib import Path
from typing import Any, cast

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq

from aes_ensemble.errors import AesError, did_you_mean
from aes_ensemble.io import atomic_path
from aes_ensemble.scales import ScoreScales

# 2: the first released schema. Files of schema 1 (or none) come from pre-release versions, whose
# configs hashed differently: they are refused with the one fix, refitting the workspace.
SCHEMA_VERSION = 2
PRE_RELEASE = (
    "was written by a pre-release aes-ensemble; refit this workspace once: `aes-ensemble "
    "fit-base NAME --fold all` for each learner (its folds refit by themselves), then `stack`"
)
METADATA_KEY = b"aes_ensemble"
SPLITS = ("oof", "test")
PROBA_PREFIX = "proba_"
REQUIRED_COLUMNS: dict[str, type[pl.DataType]] = {
    "essay_id": pl.String,
    "split": pl.String,
    "fold": pl.Int32,
    "prompt": pl.String,
    "pred": pl.Float64,
}
# Recorded so a result can be traced to the libraries that made it; torch is looked up, never
# imported (the store must stay light).
VERSIONED_PACKAGES = (
    "aes-ensemble",
    "numpy",
    "polars",
    "scikit-learn",
    "lightgbm",
    "xgboost",
    "xgboost-cpu",
    "torch",
    "transformers",
)
PROBA_SUM_TOLERANCE = 1e-3
# What to do with a store file that cannot be trusted: every store file is made by a command.
_DAMAGED = "; delete it and rerun the command that made it (fit-base, oof import or stack)"
# Metadata values the toolkit reads back, by type: a hand-edited or foreign footer with a
# wrong type is refused here rather than failing later far from the file.
_META_TYPES: dict[str, tuple[type, ...]] = {
    "config": (dict,),
    "config_hash": (str,),
    "data_hash": (str,),
    "seed": (int, type(None)),
    "versions": (dict,),
    "fold_qwk": (dict,),
    "fit_seconds": (dict,),
    "scales": (dict,),
    "created": (str,),
    "extra": (dict,),
}
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$")


def package_versions() -> dict[str, str]:
    """Installed versions of the packages that shape predictions (those present only)."""
    out: dict[str, str] = {}
    for name in VERSIONED_PACKAGES:
        try:
            out[name] = importlib_metadata.version(name)
        except importlib_metadata.PackageNotFoundError:
            continue
    return out


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


@dataclass(frozen=True)
class Prediction:
    """Scores on the essays' scale, and class probabilities where the learner has them."""

    pred: np.ndarray
    proba: np.ndarray | None = None
    proba_labels: tuple[str, ...] = ()


@dataclass(frozen=True)
class PredictionMeta:
    """Where a prediction file came from: enough to trace, compare and refuse mixing it."""

    name: str
    learner: str
    folds_hash: str
    config: dict[str, Any] = field(default_factory=dict)
    config_hash: str = ""
    # data.data_fingerprint of the essays the predictions were made for; "" where a notebook
    # wrote the file without one (nothing can then check its essays).
    data_hash: str = ""
    seed: int | None = None
    versions: dict[str, str] = field(default_factory=package_versions)
    fold_qwk: dict[str, float] = field(default_factory=dict)
    fit_seconds: dict[str, float] = field(default_factory=dict)
    scales: dict[str, Any] = field(default_factory=dict)
    created: str = field(default_factory=_now)
    extra: dict[str, Any] = field(default_factory=dict)
    schema_version: int = SCHEMA_VERSION

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True, allow_nan=False)

    @classmethod
    def from_json(cls, text: str | bytes, *, path: Path | None = None) -> PredictionMeta:
        try:
            data = json.loads(text)
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise AesError(
                f"metadata '{METADATA_KEY.decode()}' is not JSON ({exc}){_DAMAGED}", path=path
            ) from None
        if not isinstance(data, dict):
            raise AesError(
                f"metadata '{METADATA_KEY.decode()}' is not a JSON object{_DAMAGED}", path=path
            )
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise AesError(
                f"metadata has unknown key{did_you_mean(unknown[0], known)}",
                path=path,
                key=unknown[0],
            )
        for required in ("name", "learner", "folds_hash"):
            if not isinstance(data.get(required), str) or not data[required]:
                raise AesError("metadata lacks this key", path=path, key=required)
        for key, kinds in _META_TYPES.items():
            if key in data and not isinstance(data[key], kinds):
                raise AesError(
                    f"metadata value has type {type(data[key]).__name__}, expected "
                    f"{' or '.join(k.__name__ for k in kinds)}{_DAMAGED}",
                    path=path,
                    key=key,
                )
        if data.get("scales"):
            try:
                ScoreScales.from_dict(data["scales"])
            except (AesError, TypeError, AttributeError, ValueError) as exc:
                raise AesError(
                    f"metadata holds a malformed score scale ({exc}){_DAMAGED}",
                    path=path,
                    key="scales",
                ) from None
        version = data.get("schema_version")
        whole = isinstance(version, int) and not isinstance(version, bool)
        if version is None or (whole and version < SCHEMA_VERSION):
            raise AesError(PRE_RELEASE, path=path)
        if not whole or version > SCHEMA_VERSION:
            raise AesError(
                f"schema version {version} is newer than this aes-ensemble reads "
                f"({SCHEMA_VERSION}); upgrade aes-ensemble",
                path=path,
            )
        try:
            return cls(**data)
        except TypeError as exc:
            raise AesError(f"metadata is malformed ({exc}){_DAMAGED}", path=path) from None

    @property
    def score_scales(self) -> ScoreScales:
        return ScoreScales.from_dict(self.scales)


@dataclass(frozen=True)
class PredictionSet:
    """One learner run's predictions (``frame`` in the store schema) and its metadata."""

    frame: pl.DataFrame
    meta: PredictionMeta

    @property
    def name(self) -> str:
        return self.meta.name

    @property
    def oof(self) -> pl.DataFrame:
        return self.frame.filter(pl.col("split") == "oof")

    @property
    def test(self) -> pl.DataFrame:
        return self.frame.filter(pl.col("split") == "test")

    @property
    def proba_columns(self) -> list[str]:
        return [c for c in self.frame.columns if c.startswith(PROBA_PREFIX)]


def prediction_frame(
    essay_id: Sequence[str],
    split: Sequence[str],
    pred: Sequence[float] | np.ndarray,
    *,
    fold: Sequence[int | None] | np.ndarray | None = None,
    prompt: Sequence[str | None] | np.ndarray | None = None,
    proba: np.ndarray | None = None,
    proba_labels: Sequence[str] = (),
) -> pl.DataFrame:
    """Build a frame in the store schema from plain arrays (nulls where fold/prompt are absent)."""
    n = len(essay_id)
    columns: dict[str, pl.Series] = {
        "essay_id": pl.Series("essay_id", list(essay_id), dtype=pl.String),
        "split": pl.Series("split", list(split), dtype=pl.String),
        "fold": pl.Series(
            "fold", [None] * n if fold is None else [_opt_int(v) for v in fold], dtype=pl.Int32
        ),
        "prompt": pl.Series(
            "prompt", [None] * n if prompt is None else [_opt_str(p) for p in prompt], pl.String
        ),
        "pred": pl.Series("pred", np.asarray(pred, dtype=np.float64), dtype=pl.Float64),
    }
    if proba is not None:
        matrix = np.asarray(proba, dtype=np.float64)
        if matrix.shape != (n, len(proba_labels)):
            raise AesError(
                f"proba has shape {matrix.shape}, expected ({n}, {len(proba_labels)}) "
                "(one column per label)"
            )
        for j, label in enumerate(proba_labels):
            name = f"{PROBA_PREFIX}{label}"
            columns[name] = pl.Series(name, matrix[:, j], dtype=pl.Float64)
    return pl.DataFrame(list(columns.values()))


def _opt_int(value: Any) -> int | None:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    return int(value)


def _opt_str(value: Any) -> str | None:
    return None if value is None else str(value)


def validate_frame(frame: pl.DataFrame, *, path: Path | None = None) -> None:
    """Raise ``AesError`` naming the first problem of ``frame`` against the store schema."""
    for column, dtype in REQUIRED_COLUMNS.items():
        if column not in frame.columns:
            raise AesError(f"column '{column}' is missing", path=path, key=column)
        if frame.schema[column] != dtype:
            raise AesError(
                f"column '{column}' has type {frame.schema[column]}, expected {dtype}",
                path=path,
                key=column,
            )
    extra = [
        c for c in frame.columns if c not in REQUIRED_COLUMNS and not c.startswith(PROBA_PREFIX)
    ]
    if extra:
        raise AesError(
            f"unexpected column (allowed: {', '.join(REQUIRED_COLUMNS)}, {PROBA_PREFIX}<level>)",
            path=path,
            key=extra[0],
        )
    if frame.height == 0:
        raise AesError("has no rows", path=path)
    ids = frame["essay_id"]
    _first_bad(ids.is_null() | (ids.str.strip_chars() == ""), "essay_id is empty", path)
    split = frame["split"]
    bad_split = split.is_null() | ~split.is_in(list(SPLITS))
    _first_bad(bad_split, "split is {value!r}, expected 'oof' or 'test'", path, split)
    is_oof = split == "oof"
    fold = frame["fold"]
    _first_bad(is_oof & fold.is_null(), "oof row has no fold", path)
    _first_bad(~is_oof & fold.is_not_null(), "test row has a fold (must be null)", path)
    _first_bad(fold.fill_null(0) < 0, "fold {value} is negative", path, fold)
    keys = frame.select(pl.concat_str("split", "essay_id", separator="\x1f")).to_series()
    _first_bad(
        keys.is_duplicated() & ~keys.is_first_distinct(),
        "duplicate essay_id {value!r} within its split",
        path,
        ids,
    )
    pred = frame["pred"]
    _first_bad(
        pred.is_null() | ~pred.fill_null(0.0).is_finite(), "pred {value} is not finite", path, pred
    )
    probas = [c for c in frame.columns if c.startswith(PROBA_PREFIX)]
    if probas:
        for column in probas:
            if frame.schema[column] != pl.Float64:
                raise AesError(
                    f"column has type {frame.schema[column]}, expected Float64",
                    path=path,
                    key=column,
                )
            values = frame[column]
            bad = values.is_null() | ~values.fill_null(0.0).is_finite()
            bad = bad | (values.fill_null(0.0) < 0) | (values.fill_null(0.0) > 1)
            _first_bad(bad, f"{column} {{value}} is not a probability in 0..1", path, values)
        total = frame.select(pl.sum_horizontal(probas)).to_series()
        _first_bad(
            (total - 1.0).abs() > PROBA_SUM_TOLERANCE,
            "probabilities sum to {value}, not 1",
            path,
            total,
        )


def _first_bad(
    mask: pl.Series, message: str, path: Path | None, values: pl.Series | None = None
) -> None:
    """Raise for the first row where ``mask`` holds; ``{value}`` in ``message`` is its value."""
    hits = mask.fill_null(True).arg_true()
    if hits.len() == 0:
        return
    i = int(hits[0])
    value = None if values is None else values[i]
    text = message.replace("{value!r}", repr(value)).replace("{value}", str(value))
    raise AesError(text, path=path, row=i + 1)


def _check_ids(frame: pl.DataFrame, expected_ids: Iterable[str], path: Path | None) -> None:
    have = frame.filter(pl.col("split") == "oof")["essay_id"].to_list()
    expected = list(expected_ids)
    have_set, expected_set = set(have), set(expected)
    missing = [i for i in expected if i not in have_set]
    if missing:
        raise AesError(
            f"has no OOF prediction for training essay '{missing[0]}' "
            f"({len(missing)} missing in all)",
            path=path,
        )
    extra = [i for i in have if i not in expected_set]
    if extra:
        raise AesError(
            f"has an OOF prediction for essay '{extra[0]}', which is not a training essay "
            f"({len(extra)} such in all)",
            path=path,
        )


def check_folds_hash(meta: PredictionMeta, folds_hash: str, path: Path | None) -> None:
    if meta.folds_hash != folds_hash:
        raise AesError(
            f"was made with other folds (folds hash {meta.folds_hash}, workspace folds "
            f"{folds_hash}); refit this learner or re-import its predictions with the current "
            "folds",
            path=path,
        )


def prediction_digest(frame: pl.DataFrame) -> str:
    """sha256 (16 hex) of a prediction frame's rows and columns, metadata aside: a file rewritten
    with the same predictions keeps its digest, so what was built on it stays current."""
    digest = hashlib.sha256()
    for column in sorted(frame.columns):
        series = frame[column]
        digest.update(f"{column}:{series.dtype}\n".encode())
        if series.dtype == pl.String:
            text = "\x1f".join("\x00" if v is None else v for v in series.to_list())
            digest.update(text.encode())
        else:
            digest.update(series.is_null().to_numpy().tobytes())
            digest.update(series.fill_null(0).cast(pl.Float64).to_numpy().tobytes())
    return digest.hexdigest()[:16]


def write_predictions(path: str | Path, ps: PredictionSet) -> Path:
    """Validate ``ps`` and write it to ``path`` in one atomic rename."""
    target = Path(path)
    validate_frame(ps.frame, path=target)
    table = ps.frame.to_arrow()
    table = table.replace_schema_metadata(
        {**(table.schema.metadata or {}), METADATA_KEY: ps.meta.to_json().encode()}
    )
    with atomic_path(target) as tmp:
        pq.write_table(table, tmp)
    return target


def _meta_of(schema: pa.Schema, file: Path) -> PredictionMeta:
    raw = (schema.metadata or {}).get(METADATA_KEY)
    if raw is None:
        raise AesError(
            f"has no '{METADATA_KEY.decode()}' metadata: not written by aes-ensemble "
            "(bring outside predictions in with `aes-ensemble oof import`)",
            path=file,
        )
    return PredictionMeta.from_json(raw, path=file)


def read_prediction_meta(path: str | Path) -> PredictionMeta:
    """A store file's metadata alone, from the Parquet footer: which learner and folds made it,
    without reading and validating its rows."""
    file = Path(path)
    try:
        schema = pq.read_schema(file)
    except (pa.ArrowException, OSError) as exc:
        raise AesError(f"not a readable Parquet file ({exc}){_DAMAGED}", path=file) from None
    return _meta_of(schema, file)


def read_predictions(
    path: str | Path,
    *,
    folds_hash: str | None = None,
    expected_ids: Iterable[str] | None = None,
) -> PredictionSet:
    """Read and validate a store file; with ``folds_hash``/``expected_ids`` check those too."""
    file = Path(path)
    if not file.is_file():
        raise AesError("prediction file not found", path=file)
    try:
        table = pq.read_table(file)
    except (pa.ArrowException, OSError) as exc:
        raise AesError(f"not a readable Parquet file ({exc}){_DAMAGED}", path=file) from None
    meta = _meta_of(table.schema, file)
    frame = cast(pl.DataFrame, pl.from_arrow(table))
    try:
        validate_frame(frame, path=file)
    except AesError as exc:
        raise AesError(exc.message + _DAMAGED, path=file, row=exc.row, key=exc.key) from None
    if folds_hash is not None:
        check_folds_hash(meta, folds_hash, file)
    if expected_ids is not None:
        _check_ids(frame, expected_ids, file)
    return PredictionSet(frame, meta)


def aligned_rows(ps: PredictionSet, split: str, ids: Sequence[str]) -> pl.DataFrame:
    """The rows of ``split`` in the order of ``ids``; a missing or extra essay is an error."""
    rows = ps.frame.filter(pl.col("split") == split)
    have = set(rows["essay_id"].to_list())
    missing = [i for i in ids if i not in have]
    if missing:
        raise AesError(
            f"'{ps.name}' has no {split} prediction for essay '{missing[0]}' "
            f"({len(missing)} missing); refit it on this data or leave it out with --models"
        )
    if rows.height != len(ids):
        wanted = set(ids)
        extra = next(i for i in rows["essay_id"].to_list() if i not in wanted)
        raise AesError(
            f"'{ps.name}' has a {split} prediction for essay '{extra}', which is not in the "
            f"{'training' if split == 'oof' else 'test'} essays"
        )
    order = pl.DataFrame({"essay_id": list(ids)}, schema={"essay_id": pl.String})
    return order.join(rows, on="essay_id", how="left", maintain_order="left")


def check_same_folds(first: PredictionSet, other: PredictionSet, path: Path | None = None) -> None:
    """OOF columns fitted on different folds cannot be stacked: their validation rows differ."""
    if other.meta.folds_hash != first.meta.folds_hash:
        raise AesError(
            f"mixed folds: '{first.name}' has folds hash {first.meta.folds_hash} but "
            f"'{other.name}' has {other.meta.folds_hash}; refit or re-import one of them with "
            "the same folds",
            path=path,
        )


class PredictionStore:
    """The ``oof/`` folder: files named ``NAME.parquet``, read and written by name."""

    def __init__(self, oof_dir: str | Path) -> None:
        self.oof_dir = Path(oof_dir)

    def path(self, name: str) -> Path:
        if not _NAME.match(name):
            raise AesError(
                f"prediction name '{name}' must use letters, digits, '_', '-' or '.' only"
            )
        return self.oof_dir / f"{name}.parquet"

    def names(self) -> list[str]:
        if not self.oof_dir.is_dir():
            return []
        return sorted(p.stem for p in self.oof_dir.glob("*.parquet") if _NAME.match(p.stem))

    def read(
        self,
        name: str,
        folds_hash: str | None = None,
        expected_ids: Iterable[str] | None = None,
    ) -> PredictionSet:
        file = self._existing(name)
        return read_predictions(file, folds_hash=folds_hash, expected_ids=expected_ids)

    def read_meta(self, name: str) -> PredictionMeta:
        return read_prediction_meta(self._existing(name))

    def _existing(self, name: str) -> Path:
        file = self.path(name)
        if not file.is_file():
            raise AesError(
                f"no predictions named '{name}'{did_you_mean(name, self.names())}",
                path=file,
            )
        return file

    def write(self, ps: PredictionSet) -> Path:
        return write_predictions(self.path(ps.name), ps)

    def read_many(
        self,
        names: Sequence[str],
        folds_hash: str | None = None,
        expected_ids: Sequence[str] | None = None,
    ) -> list[PredictionSet]:
        """Read several files that must share one folds hash (the first file's when not given)."""
        if not names:
            raise AesError(f"no prediction files to read in {self.oof_dir}")
        sets: list[PredictionSet] = []
        for name in names:
            ps = self.read(name, folds_hash, expected_ids)
            if sets:
                check_same_folds(sets[0], ps, self.path(name))
            sets.append(ps)
        return sets
