"""Predictions made elsewhere (a teammate's notebook, a Kaggle kernel) into the store.

The file needs ``essay_id``, ``split`` (``oof``/``test``) and ``pred`` on the score scale, and may
have ``fold`` and ``proba_<level>``. Every check names the file's own data row: ids must be the
workspace's essays, a given fold must be the workspace's fold (a missing one is taken from
``folds.csv``), and predictions must lie on the score scale with a spread like the scores'
(catching files normalised to 0..1, 0-based or shifted, on another scale, or constant), judged per
prompt where prompts have their own scales.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import polars as pl

from aes_ensemble.data import Essays, data_fingerprint, load_workspace_dataset
from aes_ensemble.errors import AesError
from aes_ensemble.folds import Folds, load_folds
from aes_ensemble.io import ensure_writable
from aes_ensemble.metrics import headline_qwk_by_group
from aes_ensemble.scales import ScoreScale
from aes_ensemble.store import (
    PROBA_PREFIX,
    PredictionMeta,
    PredictionSet,
    PredictionStore,
    prediction_frame,
    validate_frame,
    write_predictions,
)
from aes_ensemble.workspace import Workspace

REQUIRED = ("essay_id", "split", "pred")
OPTIONAL = ("fold", "prompt")
IMPORTED_LEARNER = "external"
# A prediction may overshoot its scale (regressors do) but not by half the scale's span.
RANGE_SLACK = 0.5
# The spread checks judge a group of rows (a split, per prompt where prompts have their own
# scales) of at least this many rows; all limits are fractions of the scale's span, loose enough
# for a weak but honest model (a heavily regularised ridge on a few hundred essays varies by
# about 3% of the span and sits within a few % of the mean score).
MIN_ROWS = 20
MIN_SD = 0.002
MAX_SHIFT = 0.15
MAX_TEST_SHIFT = 0.25
MAX_SD_RATIO = 3.0


def _read(file: Path) -> pl.DataFrame:
    if file.is_dir():
        raise AesError("is a folder; name the predictions file to import", path=file)
    if not file.is_file():
        raise AesError("file not found", path=file)
    try:
        if file.suffix.lower() == ".parquet":
            return pl.read_parquet(file)
        if file.suffix.lower() in (".csv", ".tsv"):
            sep = "\t" if file.suffix.lower() == ".tsv" else ","
            return pl.read_csv(file, infer_schema=False, separator=sep)
    except (pl.exceptions.PolarsError, OSError) as exc:
        raise AesError(f"cannot read ({str(exc).splitlines()[0]})", path=file) from None
    raise AesError("expected a .csv, .tsv or .parquet file", path=file)


def _numeric(frame: pl.DataFrame, column: str, dtype: type[pl.DataType], file: Path) -> pl.Series:
    raw = frame[column]
    if raw.dtype == pl.String:
        raw = raw.str.strip_chars().replace("", None)
    values = raw.cast(dtype, strict=False)
    bad = (values.is_null() & raw.is_not_null()).arg_true()
    if bad.len():
        i = int(bad[0])
        raise AesError(f"{column} {raw[i]!r} is not a number", path=file, row=i + 1, key=column)
    return values


def import_predictions(
    file: str | Path, name: str, train: Essays, test: Essays | None, folds: Folds
) -> PredictionSet:
    """A validated ``PredictionSet`` from ``file``, aligned to the workspace's essays and folds."""
    path = Path(file)
    raw = _read(path)
    for column in REQUIRED:
        if column not in raw.columns:
            raise AesError(f"column '{column}' is missing", path=path, key=column)
    probas = [c for c in raw.columns if c.startswith(PROBA_PREFIX)]
    unknown = [c for c in raw.columns if c not in (*REQUIRED, *OPTIONAL, *probas)]
    if unknown:
        raise AesError(
            f"unexpected column (allowed: {', '.join(REQUIRED + OPTIONAL)}, {PROBA_PREFIX}<level>)",
            path=path,
            key=unknown[0],
        )
    nested = [c for c in raw.columns if raw.schema[c].is_nested()]
    if nested:
        raise AesError(
            f"column has type {raw.schema[nested[0]]}; expected one plain value per row",
            path=path,
            key=nested[0],
        )
    ids = raw["essay_id"].cast(pl.String).str.strip_chars().to_list()
    split = raw["split"].cast(pl.String).str.strip_chars().to_list()
    pred = _numeric(raw, "pred", pl.Float64, path)
    n = raw.height

    train_rows = {e: i for i, e in enumerate(train.ids)}
    test_rows = {} if test is None else {e: i for i, e in enumerate(test.ids)}
    test_prompts = np.empty(0, dtype=object) if test is None else test.prompts
    fold_of = dict(folds.frame.select("essay_id", "fold").iter_rows())
    given = _numeric(raw, "fold", pl.Int32, path) if "fold" in raw.columns else None
    prompts: list[str | None] = []
    fold: list[int | None] = []
    for i in range(n):
        essay, part = ids[i], split[i]
        if part == "oof":
            if essay not in train_rows:
                raise AesError(f"essay_id '{essay}' is not a training essay", path=path, row=i + 1)
            prompts.append(train.prompts[train_rows[essay]])
            want = fold_of.get(essay)
            if want is None:
                raise AesError(f"essay '{essay}' has no fold in folds.csv", path=path, row=i + 1)
            if given is not None and given[i] is not None and int(given[i]) != int(want):
                raise AesError(
                    f"essay '{essay}' is in fold {given[i]} here but in fold {want} in the "
                    "workspace's folds.csv; these predictions were made with other folds",
                    path=path,
                    row=i + 1,
                )
            fold.append(int(want))
        elif part == "test":
            if essay not in test_rows:
                raise AesError(f"essay_id '{essay}' is not a test essay", path=path, row=i + 1)
            prompts.append(test_prompts[test_rows[essay]])
            fold.append(None)
        else:
            raise AesError(f"split is {part!r}, expected 'oof' or 'test'", path=path, row=i + 1)

    proba = None
    labels = [c[len(PROBA_PREFIX) :] for c in probas]
    if probas:
        proba = np.column_stack([_numeric(raw, c, pl.Float64, path).to_numpy() for c in probas])
    frame = prediction_frame(
        ids, split, pred.to_numpy(), fold=fold, prompt=prompts, proba=proba, proba_labels=labels
    )
    validate_frame(frame, path=path)
    _check_range(frame, train, path)
    _check_spread(frame, train, path)
    _check_coverage(frame, "oof", train.ids, path)
    if test is not None:
        _check_coverage(frame, "test", test.ids, path)

    oof = frame.filter(pl.col("split") == "oof")
    y = train.scores[[train_rows[e] for e in oof["essay_id"].to_list()]]
    oof_prompts = np.asarray(oof["prompt"].to_list(), dtype=object)
    levels = train.scales.round(oof["pred"].to_numpy(), oof_prompts)
    oof_fold = oof["fold"].to_numpy()
    fold_qwk = headline_qwk_by_group(y, levels, oof_prompts, train.scales, oof_fold)
    digest = hashlib.sha256(path.read_bytes()).hexdigest()[:16]
    meta = PredictionMeta(
        name=name,
        learner=IMPORTED_LEARNER,
        folds_hash=folds.hash,
        config={"imported_from": path.name, "sha256": digest},
        config_hash=digest,
        data_hash=data_fingerprint(train, test),
        fold_qwk=fold_qwk,
        scales=train.scales.to_dict(),
        extra={"imported_from": str(path.resolve())},
    )
    return PredictionSet(frame, meta)


def import_into_store(
    ws: Workspace, file: Path, name: str, *, force: bool = False
) -> tuple[Path, PredictionSet]:
    """``aes-ensemble oof import``: validate ``file`` against the workspace's essays and folds
    and write it as ``oof/NAME.parquet``; an existing name is replaced only with ``force``."""
    store = PredictionStore(ws.oof_dir)
    target = store.path(name)
    if name in store.names() and not force:
        raise AesError(
            f"predictions named '{name}' exist; pass --force to replace them", path=target
        )
    train, test = load_workspace_dataset(ws)
    folds = load_folds(ws)
    ensure_writable(ws.oof_dir)
    ps = import_predictions(file, name, train, test, folds)
    return write_predictions(target, ps), ps


def _check_range(frame: pl.DataFrame, train: Essays, path: Path) -> None:
    prompts = frame["prompt"].to_list()
    scales = train.scales.for_rows(prompts)
    low = np.asarray([s.low for s in scales])
    high = np.asarray([s.high for s in scales])
    slack = RANGE_SLACK * (high - low)
    pred = frame["pred"].to_numpy()
    bad = np.flatnonzero((pred < low - slack) | (pred > high + slack))
    if len(bad):
        i = int(bad[0])
        raise AesError(
            f"pred {pred[i]:g} is far outside the score scale {low[i]:g}-{high[i]:g} "
            "(predictions must be on the score scale, not normalised or 0-based)",
            path=path,
            row=i + 1,
            key="pred",
        )


def _groups(frame: pl.DataFrame, train: Essays) -> dict[str | None, np.ndarray]:
    """Row indices per prompt where prompts have their own scales, else all rows as one."""
    if not train.scales.is_per_prompt:
        return {None: np.arange(frame.height)}
    prompts = frame["prompt"].to_list()
    return {p: np.flatnonzero([q == p for q in prompts]) for p in dict.fromkeys(prompts)}


def _check_spread(frame: pl.DataFrame, train: Essays, path: Path) -> None:
    """Refuse predictions whose spread does not fit the scale: constant, normalised to 0..1,
    shifted against the scores, or far wider than the scores vary."""
    oof = frame.filter(pl.col("split") == "oof")
    test = frame.filter(pl.col("split") == "test")
    score_of = dict(zip(train.ids, train.scores, strict=True))
    y = np.asarray([score_of[e] for e in oof["essay_id"].to_list()])
    test_groups = _groups(test, train)
    for prompt, rows in _groups(oof, train).items():
        scale = train.scales.for_prompt(prompt)
        where = "" if prompt is None else f" for prompt {prompt}"
        pred = oof["pred"].to_numpy()[rows]
        _check_group(pred, y[rows], scale, f"OOF predictions{where}", path)
        test_rows = test_groups.get(prompt)
        if test_rows is not None:
            test_pred = test["pred"].to_numpy()[test_rows]
            _check_group(test_pred, pred, scale, f"test predictions{where}", path)


def _check_group(
    pred: np.ndarray, reference: np.ndarray, scale: ScoreScale, what: str, path: Path
) -> None:
    """One group's spread against ``reference``: the true scores for OOF rows, the OOF
    predictions for test rows (which have no scores)."""
    if len(pred) < MIN_ROWS:
        return
    span = scale.high - scale.low
    name = f"{scale.low:g}-{scale.high:g}"
    low, high, sd = float(pred.min()), float(pred.max()), float(pred.std())
    if low == high:
        raise AesError(
            f"all {len(pred)} {what} are {low:g}: a constant column cannot inform a stack "
            "(is the pred column a placeholder?)",
            path=path,
            key="pred",
        )
    is_oof = what.startswith("OOF")
    shift = (float(pred.mean()) - float(reference.mean())) / span
    if abs(shift) > (MAX_SHIFT if is_oof else MAX_TEST_SHIFT):
        if low >= 0 and high <= 1 < span:
            raise AesError(
                f"{what} span {low:.2f}-{high:.2f} but the scale is {name}: are they normalised "
                "to 0-1? convert them to the score scale",
                path=path,
                key="pred",
            )
        against = "the scores" if is_oof else "the OOF predictions"
        raise AesError(
            f"{what} average {pred.mean():.3g} but {against} average {reference.mean():.3g} "
            f"({abs(shift):.0%} of the {name} scale {'below' if shift < 0 else 'above'}): are "
            "they 0-based, shifted or on another scale? predictions must be on the score scale",
            path=path,
            key="pred",
        )
    if sd < MIN_SD * span:
        raise AesError(
            f"{what} barely vary ({low:.4g}-{high:.4g}, sd {sd:.2g}) on the {name} scale: "
            "is the pred column a placeholder?",
            path=path,
            key="pred",
        )
    ref_sd = float(reference.std())
    if ref_sd > 0 and sd > MAX_SD_RATIO * ref_sd:
        raise AesError(
            f"{what} vary {sd / ref_sd:.1f} times as much as {'the scores' if is_oof else 'OOF'}"
            f" (sd {sd:.3g} against {ref_sd:.3g}): are they on another scale than {name}?",
            path=path,
            key="pred",
        )


def _check_coverage(frame: pl.DataFrame, split: str, ids: list[str], path: Path) -> None:
    have = set(frame.filter(pl.col("split") == split)["essay_id"].to_list())
    missing = [e for e in ids if e not in have]
    if missing:
        kind = "training" if split == "oof" else "test"
        raise AesError(
            f"has no {split} prediction for {kind} essay '{missing[0]}' ({len(missing)} missing)",
            path=path,
        )
