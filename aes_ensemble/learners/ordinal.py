"""Ordered classes on normalised (0..1) targets, for the cumulative (Frank & Hall 2001) view of
a regressor: one binary model per cut point estimates ``P(y > cut)``, and class probabilities
are the differences of those, made monotone.

On one global scale (ELLIPSE) the classes are the scale's levels, so the probabilities go to the
store as ``proba_<level>`` columns the stack can use. Where prompts have their own scales (ASAP)
there is no shared set of levels: the classes are the distinct normalised training targets
(at most ``max_classes``, else quantile bins of them), each worth the mean target in it, and only
the expected value (``pred``) goes to the store.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from aes_ensemble.errors import AesError
from aes_ensemble.scales import ScoreScales


@dataclass(frozen=True)
class OrdinalClasses:
    """``cuts`` (ascending, normalised) split the targets into ``len(cuts) + 1`` classes worth
    ``values`` (normalised); ``labels`` name the classes as store columns (global scale only)."""

    cuts: np.ndarray
    values: np.ndarray
    labels: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, list[float] | list[str]]:
        return {
            "cuts": [float(c) for c in self.cuts],
            "values": [float(v) for v in self.values],
            "labels": list(self.labels),
        }

    @classmethod
    def from_dict(cls, data: dict[str, list[float] | list[str]]) -> OrdinalClasses:
        return cls(
            np.asarray(data["cuts"], dtype=np.float64),
            np.asarray(data["values"], dtype=np.float64),
            tuple(str(label) for label in data["labels"]),
        )


def ordinal_classes(y: np.ndarray, scales: ScoreScales, max_classes: int) -> OrdinalClasses:
    """The classes for normalised targets ``y`` under ``scales``."""
    y = np.asarray(y, dtype=np.float64)
    if not scales.is_per_prompt and scales.default is not None:
        scale = scales.default
        values = scale.normalise(scale.levels)
        labels = tuple(scale.label(level) for level in scale.levels)
        return OrdinalClasses((values[1:] + values[:-1]) / 2, values, labels)
    distinct = np.unique(y)
    if len(distinct) < 2:
        raise AesError("the ordinal view needs training scores that vary")
    mids = (distinct[1:] + distinct[:-1]) / 2
    if len(distinct) > max_classes:
        # Snap quantile edges to the gap just above them, so each class is a run of targets.
        edges = np.quantile(y, np.linspace(0, 1, max_classes + 1)[1:-1])
        below = np.clip(np.searchsorted(distinct, edges, side="right") - 1, 0, len(mids) - 1)
        mids = np.unique(mids[below])
    group = np.searchsorted(mids, y)
    values = np.asarray([y[group == g].mean() for g in range(len(mids) + 1)])
    return OrdinalClasses(mids, values)


def class_proba(above: np.ndarray) -> np.ndarray:
    """Class probabilities (N, C) from ``P(y > cut_j)`` (N, C-1): made non-increasing in ``j``
    (separately fitted models may cross) and differenced; rows sum to one."""
    p = np.clip(np.asarray(above, dtype=np.float64), 0.0, 1.0)
    p = np.minimum.accumulate(p, axis=1)
    n = p.shape[0]
    bounds = np.hstack([np.ones((n, 1)), p, np.zeros((n, 1))])
    return bounds[:, :-1] - bounds[:, 1:]
