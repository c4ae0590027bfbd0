"""The checks operational scoring programs run before machine scores count (Williamson, Xi &
Breyer 2012, "A framework for evaluation and use of automated scoring"): agreement close to
human-human agreement, and machine scores that neither drift from human scores overall nor for
any subgroup of writers. Pure functions on arrays; the report renders their rows."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from aes_ensemble.errors import AesError
from aes_ensemble.metrics import NO_PROMPT, ScalesLike, as_scales, finite_array, finite_pair, qwk

SMD_LIMIT_OVERALL = 0.15
SMD_LIMIT_PROMPT = SMD_LIMIT_OVERALL
"""Each prompt is a task of its own, judged like the whole set, not like a subgroup of writers."""
SMD_LIMIT_SUBGROUP = 0.10
DEGRADATION_LIMIT = 0.10
QWK_MINIMUM = 0.70
MIN_GROUP_N = 10
"""Subgroups smaller than this get an SMD but no verdict: two essays say nothing about bias."""
ALL = "(all)"


@dataclass(frozen=True)
class SmdRow:
    """Machine vs human mean score of one group of essays (``column`` None: all essays)."""

    column: str | None
    group: str
    n: int
    human_mean: float
    machine_mean: float
    smd: float
    limit: float
    judged: bool
    flagged: bool


@dataclass(frozen=True)
class AgreementRow:
    """Human-machine against human-human QWK on the essays of one prompt (or all of them)."""

    prompt: str
    n: int
    human_machine_qwk: float
    human_human_qwk: float
    degradation: float
    flagged: bool
    below_minimum: bool


def pooled_sd(a: np.ndarray, b: np.ndarray) -> float:
    """``sqrt((var_a + var_b) / 2)`` with sample variances, as Williamson et al. define it."""
    if len(a) < 2 or len(b) < 2:
        return math.nan
    return math.sqrt((float(np.var(a, ddof=1)) + float(np.var(b, ddof=1))) / 2)


def smd(machine: object, human: object) -> float:
    """Standardized mean difference ``(mean machine - mean human) / pooled SD``.

    NaN where it is undefined (fewer than two essays, or both score sets constant): a verdict
    on such a group would be noise.
    """
    return _checked_smd(*finite_pair(machine, human, ("machine scores", "human scores")))


def _checked_smd(m: np.ndarray, h: np.ndarray) -> float:
    sd = pooled_sd(m, h)
    if math.isnan(sd) or sd == 0:
        return math.nan
    return (float(m.mean()) - float(h.mean())) / sd


def _smd_row(
    column: str | None, group: str, machine: np.ndarray, human: np.ndarray, limit: float
) -> SmdRow:
    value = _checked_smd(machine, human)
    judged = len(human) >= MIN_GROUP_N and not math.isnan(value)
    return SmdRow(
        column=column,
        group=group,
        n=len(human),
        human_mean=float(human.mean()) if len(human) else math.nan,
        machine_mean=float(machine.mean()) if len(machine) else math.nan,
        smd=value,
        limit=limit,
        judged=judged,
        flagged=judged and abs(value) > limit,
    )


def _group_order(label: str) -> tuple[int, float, str]:
    """Numeric labels (grades) in numeric order, then the rest alphabetically."""
    try:
        return (0, float(label), label)
    except ValueError:
        return (1, 0.0, label)


def _labels(values: object, n: int, column: str) -> np.ndarray:
    labels = np.asarray(
        ["(missing)" if v is None else str(v) for v in np.asarray(values, dtype=object)]
    )
    if len(labels) != n:
        raise AesError(f"has {len(labels)} values but there are {n} scores", key=column)
    return labels


def smd_table(
    machine: object,
    human: object,
    subgroups: Mapping[str, object] | None = None,
    prompts: object | None = None,
) -> list[SmdRow]:
    """The overall SMD row and, with ``prompts``, one row per prompt (each a task of its own,
    limit 0.15); then one row per level of each subgroup column (limit 0.10). Levels are
    sorted (numbers numerically); missing values group as ``(missing)``."""
    m, h = finite_pair(machine, human, ("machine scores", "human scores"))
    rows = [_smd_row(None, ALL, m, h, SMD_LIMIT_OVERALL)]
    columns: list[tuple[str, object, float]] = []
    if prompts is not None:
        columns.append(("prompt", prompts, SMD_LIMIT_PROMPT))
    columns += [(c, v, SMD_LIMIT_SUBGROUP) for c, v in (subgroups or {}).items()]
    for column, values, limit in columns:
        labels = _labels(values, len(h), column)
        for group in sorted(set(labels.tolist()), key=_group_order):
            mask = labels == group
            rows.append(_smd_row(column, group, m[mask], h[mask], limit))
    return rows


def smd_limits(rows: Sequence[SmdRow]) -> list[tuple[float, list[str]]]:
    """Which limit applies to which rows, read from the rows themselves (largest limit first):
    ``[(0.15, ["all essays", "each prompt"]), (0.10, ["each gender group", ...])]``."""
    by_limit: dict[float, list[str]] = {}
    for r in rows:
        what = (
            "all essays"
            if r.column is None
            else "each prompt"
            if r.column == "prompt"
            else f"each {r.column} group"
        )
        if what not in by_limit.setdefault(r.limit, []):
            by_limit[r.limit].append(what)
    return sorted(by_limit.items(), reverse=True)


def _agreement(prompt: str, n: int, hm: float, hh: float) -> AgreementRow:
    degradation = hh - hm
    return AgreementRow(
        prompt, n, hm, hh, degradation, degradation > DEGRADATION_LIMIT, hm < QWK_MINIMUM
    )


def agreement_table(
    human: object,
    machine: object,
    rater1: object,
    rater2: object,
    prompts: object,
    scales: ScalesLike,
) -> list[AgreementRow]:
    """Per prompt: QWK of the machine against the resolved human score (on the prompt's scale)
    next to the QWK of the two human raters (on their own range, which for some ASAP prompts is
    not the resolved score's); flagged when human-human exceeds human-machine by more than 0.10,
    and marked when human-machine QWK is below the 0.70 minimum.

    Only essays with both ratings count. The ``(all)`` row is the mean of the per-prompt values
    with per-prompt scales (the ASAP protocol), else one QWK over all those essays.
    """
    scales = as_scales(scales)
    h = finite_array(human, "human scores")
    m = finite_array(machine, "machine scores")
    r1 = np.asarray(rater1, dtype=float).ravel()
    r2 = np.asarray(rater2, dtype=float).ravel()
    keys = np.asarray(
        [NO_PROMPT if p is None else str(p) for p in np.asarray(prompts, dtype=object)]
    )
    if not len(h) == len(m) == len(r1) == len(r2) == len(keys):
        raise AesError("human, machine, rater1, rater2 and prompts must have the same length")
    both = np.isfinite(r1) & np.isfinite(r2)
    if not both.any():
        return []
    rows: list[AgreementRow] = []
    for prompt in sorted(set(keys[both].tolist())):
        sel = both & (keys == prompt)
        scale = scales.for_prompt(None if prompt == NO_PROMPT else prompt)
        hm = qwk(h[sel], m[sel], scale=scale)
        rows.append(_agreement(prompt, int(sel.sum()), hm, qwk(r1[sel], r2[sel])))
    if scales.is_per_prompt:
        hm_all = float(np.mean([r.human_machine_qwk for r in rows]))
        hh_all = float(np.mean([r.human_human_qwk for r in rows]))
    else:
        hm_all = qwk(h[both], m[both], scale=scales.for_prompt(None))
        hh_all = qwk(r1[both], r2[both])
    return [_agreement(ALL, int(both.sum()), hm_all, hh_all), *rows]
