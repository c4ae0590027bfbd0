"""The numbers behind the report: every prediction file's OOF scored the same way.

The report recomputes every QWK from the OOF files instead of copying the numbers each command
printed, so learners and stacks are compared with one method: plain rounding, and thresholds
cross-fitted over the store's own folds (each fold cut by points fitted on the others).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from aes_ensemble.data import Essays
from aes_ensemble.errors import AesError
from aes_ensemble.metrics import bootstrap_interval, headline_qwk, qwk_by_prompt
from aes_ensemble.store import PredictionSet, aligned_rows
from aes_ensemble.thresholds import Thresholds, cross_fit

N_BOOT = 1000
SEED = 0


@dataclass(frozen=True)
class Scored:
    """One prediction file's OOF, aligned to the training essays, as levels two ways."""

    name: str
    learner: str
    is_stack: bool
    pred: np.ndarray
    rounded: np.ndarray
    thresholded: np.ndarray
    seconds: float | None


@dataclass(frozen=True)
class LeaderboardRow:
    name: str
    learner: str
    is_stack: bool
    n: int
    qwk_rounded: float
    ci_rounded: tuple[float, float]
    qwk_thresholded: float
    ci_thresholded: tuple[float, float]
    seconds: float | None


@dataclass(frozen=True)
class StackSummary:
    """What the report takes from a stack's ``reports/NAME.json``: weights, final cut points."""

    path: Path
    name: str
    weights: dict[str, float] = field(default_factory=dict)
    thresholds: Thresholds | None = None


def is_stack(ps: PredictionSet) -> bool:
    return ps.meta.learner.lower().startswith("stack")


def score(ps: PredictionSet, essays: Essays) -> Scored:
    """Align, round and cross-fit thresholds for one prediction file."""
    rows = aligned_rows(ps, "oof", essays.ids)
    pred, folds = rows["pred"].to_numpy().astype(float), rows["fold"].to_numpy().astype(np.int64)
    prompts = essays.prompts
    rounded = essays.scales.round(pred, prompts)
    thresholded = cross_fit(essays.scores, pred, prompts, folds, essays.scales).pred
    seconds = sum(ps.meta.fit_seconds.values()) if ps.meta.fit_seconds else None
    return Scored(ps.name, ps.meta.learner, is_stack(ps), pred, rounded, thresholded, seconds)


def _interval(essays: Essays, levels: np.ndarray) -> tuple[float, float]:
    return bootstrap_interval(
        essays.scores,
        levels,
        prompts=essays.prompts,
        scales=essays.scales,
        n_boot=N_BOOT,
        seed=SEED,
    )


def leaderboard(scored: Sequence[Scored], essays: Essays) -> list[LeaderboardRow]:
    """One row per prediction file, best cross-fitted thresholded QWK first."""
    y, prompts, scales = essays.scores, essays.prompts, essays.scales
    rows = [
        LeaderboardRow(
            name=s.name,
            learner=s.learner,
            is_stack=s.is_stack,
            n=len(y),
            qwk_rounded=headline_qwk(y, s.rounded, prompts, scales),
            ci_rounded=_interval(essays, s.rounded),
            qwk_thresholded=headline_qwk(y, s.thresholded, prompts, scales),
            ci_thresholded=_interval(essays, s.thresholded),
            seconds=s.seconds,
        )
        for s in scored
    ]
    return sorted(rows, key=lambda r: (-r.qwk_thresholded, -r.qwk_rounded, r.name))


def featured(scored: Sequence[Scored], rows: Sequence[LeaderboardRow]) -> Scored:
    """The model the detail sections show: the best stack, else the best single learner."""
    by_name = {s.name: s for s in scored}
    stacks = [r for r in rows if r.is_stack]
    return by_name[(stacks or list(rows))[0].name]


def best_learner(scored: Sequence[Scored], rows: Sequence[LeaderboardRow]) -> Scored | None:
    learners = [r for r in rows if not r.is_stack]
    return None if not learners else next(s for s in scored if s.name == learners[0].name)


def per_prompt(s: Scored, essays: Essays) -> dict[str, float]:
    """Cross-fitted thresholded QWK of each prompt (empty when the data has no prompts)."""
    if not essays.has_prompts:
        return {}
    return qwk_by_prompt(essays.scores, s.thresholded, essays.prompts, essays.scales)


def correlation(scored: Sequence[Scored], essays: Essays) -> tuple[list[str], np.ndarray]:
    """Pearson correlation of the base learners' continuous OOF predictions (stacks left out).

    With per-prompt scales (ASAP) predictions are normalised to 0..1 and centred within each
    prompt first; otherwise the spread between prompts' scales (2-12 vs 0-60) makes every pair
    of learners look alike.
    """
    learners = [s for s in scored if not s.is_stack]
    if not learners:
        return [], np.zeros((0, 0))
    values = np.vstack([s.pred for s in learners])
    scales = essays.scales
    if scales.is_per_prompt:
        prompts = essays.prompts
        values = np.vstack([scales.normalise(v, prompts) for v in values])
        for p in set(prompts.tolist()):
            rows = prompts == p
            values[:, rows] -= values[:, rows].mean(axis=1, keepdims=True)
    return [s.name for s in learners], np.atleast_2d(np.corrcoef(values))


def _weights(data: Mapping[str, Any]) -> dict[str, float]:
    raw = data.get("weights")
    if not isinstance(raw, Mapping):
        return {}
    return {
        str(k): float(v)
        for k, v in raw.items()
        if isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)
    }


def read_stack_summaries(reports_dir: Path, stacks: Sequence[str]) -> list[StackSummary]:
    """The summary ``reports/NAME.json`` that ``aes-ensemble stack`` writes beside each stack
    NAME in ``stacks`` (a custom ``name:`` included); absent is fine, unreadable is an error.

    Read keys: ``weights`` (learner -> number) and ``final_thresholds``
    (``Thresholds.to_dict``). Other keys are left alone, so the stack may record more than the
    report shows.
    """
    out: list[StackSummary] = []
    for name in stacks:
        path = Path(reports_dir) / f"{name}.json"
        if not path.is_file():
            continue
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise AesError(f"stack summary is not readable JSON ({exc})", path=path) from None
        if not isinstance(data, Mapping):
            raise AesError("stack summary is not a JSON object", path=path)
        raw_thresholds = data.get("final_thresholds")
        thresholds = None
        if isinstance(raw_thresholds, Mapping) and "cutpoints" in raw_thresholds:
            try:
                thresholds = Thresholds.from_dict(raw_thresholds)
            except AesError as exc:
                raise AesError(exc.message, path=path, key="thresholds") from None
        out.append(
            StackSummary(
                path=path,
                name=name,
                weights=_weights(data),
                thresholds=thresholds,
            )
        )
    return out
