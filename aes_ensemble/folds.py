"""Fold assignment shared by every learner: grouped by prompt, stratified by score, hashed."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np
import polars as pl

from aes_ensemble.data import Essays
from aes_ensemble.errors import AesError


def folds_hash(frame: pl.DataFrame) -> str:
    """sha256 (16 hex) of the sorted ``essay_id,fold`` lines: the identity of an assignment."""
    lines = frame.select("essay_id", "fold").sort("essay_id")
    text = "\n".join(f"{i},{f}" for i, f in lines.iter_rows())
    return hashlib.sha256(text.encode()).hexdigest()[:16]


@dataclass(frozen=True)
class Folds:
    """``frame``: ``essay_id`` (String), ``fold`` (Int32, 0..n_folds-1)."""

    frame: pl.DataFrame
    n_folds: int
    method: str
    hash: str

    def fold_array(self, essays: Essays) -> np.ndarray:
        """The fold of each essay, aligned to ``essays``; an essay without a fold is an error."""
        lookup = dict(self.frame.select("essay_id", "fold").iter_rows())
        missing = [i for i in essays.ids if i not in lookup]
        if missing:
            raise AesError(
                f"{len(missing)} essays have no fold (first: '{missing[0]}'); "
                "run `aes-ensemble folds` again for this data"
            )
        return np.asarray([lookup[i] for i in essays.ids], dtype=np.int64)
