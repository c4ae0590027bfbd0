"""Features computed once per scoring call and shared by every fold model and learner in it.

A stack of three learners of five folds holds fifteen fitted feature pipelines, and each used to
analyse the same essays again: scoring spent its time re-deriving identical handcrafted rows and
n-gram counts. Inside ``shared_features()`` the ``FeatureCache`` keeps per-essay rows in memory
(its keys: kind, config key, text hash) and TF-IDF counts each essay's n-grams once per analyzer
(``ngram_counts.NgramCounts``). Nothing is written to disk, and the memory goes when the block
ends, so a server holds no essay beyond the request that sent it.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from aes_ensemble.features.ngram_counts import NgramCounts


class SharedFeatures:
    """What one call has computed so far: per-essay rows by (kind, config key), text hash ->
    row; n-gram counts by analyzer settings."""

    def __init__(self) -> None:
        self.rows: dict[tuple[str, str], dict[str, np.ndarray]] = {}
        self.ngrams: dict[tuple[tuple[str, str], ...], NgramCounts] = {}


# A context variable, not a global: concurrent requests of a server each have their own.
_ACTIVE: ContextVar[SharedFeatures | None] = ContextVar("shared_features", default=None)


@contextmanager
def shared_features() -> Iterator[SharedFeatures]:
    """Share features inside this block; nested blocks join the outermost one, so a stack's
    learners share what each learner's folds share."""
    current = _ACTIVE.get()
    if current is not None:
        yield current
        return
    scope = SharedFeatures()
    token = _ACTIVE.set(scope)
    try:
        yield scope
    finally:
        _ACTIVE.reset(token)


def active() -> SharedFeatures | None:
    """The enclosing ``shared_features()`` block's store, or None outside one."""
    return _ACTIVE.get()
