"""The numbers behind the report: every prediction file's OOF scored the same way.

The report recomputes every QWK from the OOF files with the functions ``stack`` uses
(``stacking.qwk_numbers``), so it shows the numbers the terminal and ``reports/NAME.json`` show:
base learners cross-fitted over the store's own folds with the newest stack's threshold method and
bootstrap settings, each stack cut by the per-fold cut points its nested CV chose.
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
from aes_ensemble.metrics import qwk_by_prompt
from aes_ensemble.stacking.nested import fold_thresholds_from_dict
from aes_ensemble.stacking.qwk_numbers import (
    LeaderboardSettings,
    learner_levels,
    qwk_numbers,
    stack_levels,
)
from aes_ensemble.store import PredictionMeta, PredictionSet, aligned_rows
from aes_ensemble.thresholds import Thresholds


@dataclass(frozen=True)
class Timing:
    """Seconds a user waited for one prediction file, summed over folds: per-essay feature
    preparation, fitting and predicting. ``None`` where the file does not say; files without a
    timing record (imports, stacks) carry one ``fit`` that includes prediction."""

    prepare: float | None = None
    fit: float | None = None
    predict: float | None = None

    @property
    def total(self) -> float | None:
        parts = [x for x in (self.prepare, self.fit, self.predict) if x is not None]
        return sum(parts) if parts else None


def _seconds(value: object) -> float | None:
    """A number of seconds, or the sum of a ``{fold: seconds}`` mapping; None if neither."""
    if isinstance(value, Mapping):
        parts = [_seconds(v) for v in value.values()]
        return None if not parts or None in parts else sum(p for p in parts if p is not None)
    if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
        return float(value)
    return None


def timing(meta: PredictionMeta) -> Timing:
    """Where the time went, from ``meta.extra["timing"]`` (``prepare``, ``fit`` and ``predict``
    per fold), else the per-fold ``fit_seconds`` (fit and predict together)."""
    raw = meta.extra.get("timing")
    if isinstance(raw, Mapping):
        return Timing(
            _seconds(raw.get("prepare")), _seconds(raw.get("fit")), _seconds(raw.get("predict"))
        )
    return Timing(fit=_seconds(meta.fit_seconds) if meta.fit_seconds else None)


@dataclass(frozen=True)
class Scored:
    """One prediction file's OOF, aligned to the training essays, as levels two ways, and the
    settings its numbers are measured with."""

    name: str
    learner: str
    is_stack: bool
    pred: np.ndarray
    rounded: np.ndarray
    thresholded: np.ndarray
    timing: Timing
    settings: LeaderboardSettings


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
    timing: Timing


@dataclass(frozen=True)
class StackSummary:
    """What the report takes from a stack's ``reports/NAME.json``: weights, final cut points."""

    path: Path
    name: str
    weights: dict[str, float] = field(default_factory=dict)
    thresholds: Thresholds | None = None


def is_stack(ps: PredictionSet) -> bool:
    return ps.meta.learner.lower().startswith("stack")


def newest_stack_settings(sets: Sequence[PredictionSet]) -> LeaderboardSettings:
    """The settings of the newest stack (the one ``stack`` printed last), else the defaults."""
    stacks = sorted((ps.meta.created, ps.meta.config) for ps in sets if is_stack(ps))
    return LeaderboardSettings.of(stacks[-1][1]) if stacks else LeaderboardSettings()


def _stack_cuts(ps: PredictionSet) -> tuple[dict[int, Thresholds], Thresholds] | None:
    """A stack's per-fold and final cut points from its metadata; None in files without them."""
    extra = ps.meta.extra
    per_fold, final = extra.get("fold_thresholds"), extra.get("final_thresholds")
    if not (is_stack(ps) and isinstance(per_fold, Mapping) and isinstance(final, Mapping)):
        return None
    return fold_thresholds_from_dict(per_fold), Thresholds.from_dict(final)


def measure(
    ps: PredictionSet, essays: Essays, settings: LeaderboardSettings | None = None
) -> Scored:
    """Align one prediction file and cut it into levels as ``stack`` does: a stack by its
    recorded cut points (with its own settings), anything else cross-fitted with ``settings``."""
    rows = aligned_rows(ps, "oof", essays.ids)
    pred, folds = rows["pred"].to_numpy().astype(float), rows["fold"].to_numpy().astype(np.int64)
    y, prompts, scales = essays.scores, essays.prompts, essays.scales
    used = settings or LeaderboardSettings()
    cuts = _stack_cuts(ps)
    if cuts is not None:
        used = LeaderboardSettings.of(ps.meta.config)
        levels = stack_levels(pred, prompts, folds, scales, *cuts)
    else:
        levels = learner_levels(y, pred, prompts, folds, scales, used)
    return Scored(
        ps.name,
        ps.meta.learner,
        is_stack(ps),
        pred,
        levels["plain"],
        levels["cross"],
        timing(ps.meta),
        used,
    )


def leaderboard(scored: Sequence[Scored], essays: Essays) -> list[LeaderboardRow]:
    """One row per prediction file, best cross-fitted thresholded QWK first."""
    rows = []
    for s in scored:
        numbers = qwk_numbers(
            essays.scores,
            {"plain": s.rounded, "cross": s.thresholded},
            essays.prompts,
            essays.scales,
            n_boot=s.settings.n_boot,
            seed=s.settings.seed,
        )
        rows.append(
            LeaderboardRow(
                name=s.name,
                learner=s.learner,
                is_stack=s.is_stack,
                n=len(essays.scores),
                qwk_rounded=numbers["plain"],
                ci_rounded=tuple(numbers["plain_ci"]),
                qwk_thresholded=numbers["cross"],
                ci_thresholded=tuple(numbers["cross_ci"]),
                timing=s.timing,
            )
        )
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
