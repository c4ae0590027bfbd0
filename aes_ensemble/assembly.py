"""A learner's fold parts as one store file, ``oof/NAME.parquet``, rewritten only when it
would change: OOF rows as each fold fitted them, test rows the mean of the fold models.

The file records the run id of each part it was made from (``extra["runs"]``), so a rerun that
fitted nothing finds it current, and a file assembled before a fold was refitted is not.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from aes_ensemble.data import Essays
from aes_ensemble.errors import AesError
from aes_ensemble.store import PredictionMeta, PredictionSet, read_prediction_meta


@dataclass(frozen=True)
class Combined:
    """The assembled rows and the per-fold metadata gathered from the parts."""

    frame: pl.DataFrame
    fold_qwk: dict[str, float]
    fit_seconds: dict[str, float]
    extra: dict[str, Any]


def _in_order(frame: pl.DataFrame, ids: list[str]) -> pl.DataFrame:
    """``frame``'s rows in the order of ``ids`` (each id exactly once)."""
    order = pl.DataFrame({"essay_id": ids}).with_row_index("_order")
    return frame.join(order, on="essay_id", how="inner").sort("_order").drop("_order")


def _timing(parts: list[PredictionSet]) -> dict[str, Any]:
    """Seconds the user waited: feature preparation (counted once, on the fold fitted first in
    each run), then fit and predict per fold."""
    timings = [p.meta.extra.get("timing", {}) for p in parts]
    return {
        "prepare": round(sum(t.get("prepare", 0.0) for t in timings), 3),
        "fit": {k: v for t in timings for k, v in t.get("fit", {}).items()},
        "predict": {k: v for t in timings for k, v in t.get("predict", {}).items()},
    }


def combine_parts(
    parts: list[PredictionSet], train: Essays, test: Essays | None, folder: Path
) -> Combined:
    """The parts (fold ``k`` at index ``k``) as one frame in the essays' order; ``folder`` is
    named when rows are missing."""
    oof = _in_order(pl.concat([p.oof for p in parts]), train.ids)
    if oof.height != len(train):
        raise AesError(
            f"the fold parts hold {oof.height} OOF rows for {len(train)} training essays; "
            "refit the learner",
            path=folder,
        )
    frames = [oof]
    if test is not None:
        tests = [_in_order(p.test, test.ids) for p in parts]
        if any(t.height != len(test) for t in tests):
            raise AesError(
                "a fold part lacks predictions for some test essays; refit the learner",
                path=folder,
            )
        value_columns = ["pred", *parts[0].proba_columns]
        means = {
            c: np.mean(np.stack([t[c].to_numpy() for t in tests]), axis=0) for c in value_columns
        }
        frames.append(tests[0].with_columns(pl.Series(c, v) for c, v in means.items()))
    return Combined(
        pl.concat(frames),
        {k: v for p in parts for k, v in p.meta.fold_qwk.items()},
        {k: v for p in parts for k, v in p.meta.fit_seconds.items()},
        {
            "runs": {str(k): p.meta.extra.get("run_id") for k, p in enumerate(parts)},
            "timing": _timing(parts),
        },
    )


def already_assembled(path: Path, meta: PredictionMeta) -> bool:
    """``path`` already holds what ``meta`` describes: same config, folds, data and fold runs."""
    try:
        old = read_prediction_meta(path)
    except AesError:
        return False
    return (old.config_hash, old.folds_hash, old.data_hash, old.extra.get("runs")) == (
        meta.config_hash,
        meta.folds_hash,
        meta.data_hash,
        meta.extra.get("runs"),
    )
