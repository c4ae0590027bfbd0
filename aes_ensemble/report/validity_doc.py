"""The validity document: every statistic RSMTool's ``rsmeval`` reports, for every learner and
stack in ``oof/`` side by side, with bootstrap intervals, flags and notes, as one JSON-ready dict
(``reports/validity.json``, schema in docs/validity.md). The statistics are ``rsm_metrics``,
``true_score`` and ``fairness``; this module only decides which essays and scores go in.

Where prompts have their own scales (ASAP) the overall rows compare scores normalised to 0..1 on
each prompt's scale, and the statistics that only make sense on one scale are pooled from the
prompts' rows (``dataset.overall`` says which); per-prompt rows are on the prompt's own scale.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, fields
from typing import Any

import numpy as np

from aes_ensemble.data import Essays, scale_text
from aes_ensemble.errors import AesError
from aes_ensemble.metrics import bootstrap_interval
from aes_ensemble.report.bootstrap import group_r2_intervals, moment_intervals
from aes_ensemble.report.fairness import fairness_analyses, group_rows
from aes_ensemble.report.flags import RULES, flagged
from aes_ensemble.report.leaderboard import Scored
from aes_ensemble.report.rsm_metrics import (
    Agreement,
    agreement,
    confusion_matrix,
    score_distribution,
)
from aes_ensemble.report.true_score import (
    degradation,
    disattenuated_correlation,
    true_score,
)
from aes_ensemble.scales import ScoreScale

SCHEMA_VERSION = 1
MIN_GROUP_N = 10
ALPHA = 0.05
MISSING = "(missing)"
"""The group of essays without a value in a subgroup column (RSMTool: "No info")."""
KINDS = ("continuous", "levels")
"""``continuous``: the OOF prediction as it is (RSMTool's "raw"); ``levels``: after the
cross-fitted cut points (the scores a user would report)."""
POOLED_MEAN = ("wtkappa", "kappa")
POOLED_WEIGHTED = ("exact_agr", "adj_agr", "adj_agr_level")
INTERVALS = {
    "continuous": ("wtkappa", "corr", "smd", "rmse", "r2"),
    "levels": ("wtkappa", "corr", "smd", "smd_pooled", "exact_agr", "adj_agr_level", "rmse"),
}
"""The headline statistics that get a bootstrap interval, per kind of machine score."""


@dataclass(frozen=True)
class _Data:
    """The essays as the document compares them."""

    human: np.ndarray
    prompts: np.ndarray
    keys: list[str]
    essays: Essays
    ratings: tuple[np.ndarray, np.ndarray] | None
    low: np.ndarray
    span: np.ndarray
    step: np.ndarray
    """Each essay's scale: lowest level, high minus low, step (looked up once, not per call)."""

    @property
    def per_prompt(self) -> bool:
        return self.essays.scales.is_per_prompt

    def scale(self, prompt: str | None) -> ScoreScale:
        return self.essays.scales.for_prompt(prompt)

    def overall(self, values: np.ndarray, rows: np.ndarray) -> np.ndarray:
        """``values`` of ``rows`` on the overall rows' scale (normalised per prompt or as is)."""
        v = np.asarray(values, dtype=float)[rows]
        return (v - self.low[rows]) / self.span[rows] if self.per_prompt else v


def validity_document(
    essays: Essays,
    scored: Sequence[Scored],
    *,
    min_group_n: int = MIN_GROUP_N,
    n_boot: int | None = None,
    seed: int | None = None,
) -> dict[str, Any]:
    """The document for ``scored`` (the leaderboard's :class:`Scored`, aligned to ``essays``).

    ``n_boot``/``seed`` default to each model's own leaderboard settings, so the QWK interval
    here is the leaderboard's to the digit. Bad input that leaves a section empty (no second
    rating, an empty subgroup column, a one-group column) becomes a line in ``notes``.
    """
    notes: list[str] = []
    low, span, step = (np.empty(len(essays)) for _ in range(3))
    for scale, rows in essays.scales.groups(essays.prompts).items():
        low[rows], span[rows], step[rows] = scale.low, scale.high - scale.low, scale.step
    data = _Data(
        human=essays.scores,
        prompts=essays.prompts,
        keys=sorted({str(p) for p in essays.prompts if p is not None}),
        essays=essays,
        ratings=_ratings(essays, notes),
        low=low,
        span=span,
        step=step,
    )
    human_human = _human_human(data)
    columns = _subgroup_columns(essays, notes, min_group_n)
    models = [
        _model(data, s, human_human, columns, min_group_n, n_boot, seed, notes) for s in scored
    ]
    return clean(
        {
            "schema_version": SCHEMA_VERSION,
            "dataset": _dataset(data, columns),
            "settings": {
                "min_group_n": min_group_n,
                "alpha": ALPHA,
                "n_boot": n_boot,
                "seed": seed,
                "levels": "cross-fitted cut points: each fold cut by points fitted without its "
                "labels (a stack: by the points its nested cross-validation chose)",
            },
            "rules": {key: asdict(rule) for key, rule in RULES.items()},
            "human_human": human_human,
            "flags": _human_human_flags(human_human),
            "models": models,
            "notes": list(dict.fromkeys(notes)),
        }
    )


# --- the data --------------------------------------------------------------------------------


def _ratings(essays: Essays, notes: list[str]) -> tuple[np.ndarray, np.ndarray] | None:
    """The two human ratings on the score's scale (NaN where absent); a rating off its prompt's
    scale is set aside with a note rather than stopping the report."""
    ratings = essays.human_ratings()
    if ratings is None:
        notes.append(
            "The essays carry no second human rating, so consistency, degradation, "
            "disattenuated correlation and PRMSE are not computed."
        )
        return None
    first, second = (np.array(r, dtype=float) for r in ratings)
    for name, values in (("first", first), ("second", second)):
        off = np.zeros(len(values), dtype=bool)
        for scale, rows in essays.scales.groups(essays.prompts).items():
            v = values[rows]
            off[rows] = np.isfinite(v) & ~scale.is_level(v)
        if off.any():
            row = int(np.argmax(off))
            notes.append(
                f"{int(off.sum())} {name} human rating(s) are not levels of their scale (first: "
                f"essay {essays.ids[row]}, value {values[row]:g}); they are left out of the "
                "human-human statistics."
            )
            values[off] = np.nan
    if not (np.isfinite(first) & np.isfinite(second)).any():
        notes.append(
            "No essay has two human ratings, so consistency, degradation, disattenuated "
            "correlation and PRMSE are not computed."
        )
        return None
    return first, second


def _labels(essays: Essays, column: str) -> np.ndarray:
    """Group labels as text; an essay without one is in the group ``(missing)``, as RSMTool
    puts it in "No info" (in the group rows and the fairness models alike)."""
    return np.asarray(
        [MISSING if v is None else str(v) for v in essays.frame[column].to_list()], dtype=object
    )


def _subgroup_columns(essays: Essays, notes: list[str], min_n: int) -> dict[str, np.ndarray]:
    """Subgroup columns with at least two groups; the rest are named in ``notes``."""
    out = {}
    for column in essays.subgroups:
        labels = _labels(essays, column)
        counts = Counter(labels.tolist())
        if set(counts) == {MISSING}:
            notes.append(f"Subgroup column '{column}' is empty: no fairness analysis for it.")
            continue
        if len(counts) < 2:
            notes.append(
                f"Subgroup column '{column}' has one group only ('{next(iter(counts))}'): "
                "nothing to compare, no fairness analysis for it."
            )
            continue
        if counts[MISSING]:
            notes.append(
                f"Subgroup column '{column}' has no value for {counts[MISSING]} "
                f"essay{'' if counts[MISSING] == 1 else 's'}: they form the group '{MISSING}'."
            )
        for group, n in sorted(counts.items()):
            if n < min_n:
                notes.append(
                    f"Subgroup '{column}' = '{group}' has {n} essay{'' if n == 1 else 's'} "
                    f"(fewer than {min_n}): its statistics are shown but not judged."
                )
        out[column] = labels
    return out


def _dataset(data: _Data, columns: Mapping[str, np.ndarray]) -> dict[str, Any]:
    scales = data.essays.scales
    double = None
    if data.ratings is not None:
        double = int((np.isfinite(data.ratings[0]) & np.isfinite(data.ratings[1])).sum())
    return {
        "n_essays": len(data.human),
        "prompts": data.keys,
        "scales": scales.to_dict(),
        "per_prompt_scales": data.per_prompt,
        "overall": {
            "scores": "normalised to 0-1 on each prompt's scale" if data.per_prompt else "as is",
            "pooled_mean_of_prompts": list(POOLED_MEAN) if data.per_prompt else [],
            "pooled_weighted_by_prompt_n": list(POOLED_WEIGHTED) if data.per_prompt else [],
        },
        "subgroups": list(data.essays.subgroups),
        "fairness_columns": list(columns),
        "n_double_scored": double,
    }


# --- agreement tables ------------------------------------------------------------------------


def _agreements(
    data: _Data,
    human: np.ndarray,
    machine: np.ndarray,
    rows: np.ndarray,
    *,
    continuous: bool,
    smd_method: str = "unpooled",
) -> tuple[dict[str, Any], dict[str, dict[str, Any]]]:
    """The overall row and one row per prompt of ``machine`` against ``human`` on ``rows``."""
    per: dict[str, Agreement] = {}
    for key in data.keys:
        sel = rows & (data.prompts == key)
        if sel.any():
            per[key] = agreement(
                human[sel],
                machine[sel],
                scale=data.scale(key),
                continuous=continuous,
                smd_method=smd_method,
            )
    if data.per_prompt:
        base = agreement(
            data.overall(human, rows),
            data.overall(machine, rows),
            continuous=True,
            smd_method=smd_method,
        ).as_dict()
        n = sum(a.n for a in per.values())
        for name in POOLED_MEAN:
            base[name] = float(np.mean([getattr(a, name) for a in per.values()]))
        for name in POOLED_WEIGHTED:
            base[name] = sum(getattr(a, name) * a.n for a in per.values()) / n
        overall = base
    else:
        overall = agreement(
            human[rows],
            machine[rows],
            scale=data.scale(None),
            continuous=continuous,
            smd_method=smd_method,
        ).as_dict()
    return overall, {k: a.as_dict() for k, a in per.items()}


def _human_human(data: _Data) -> dict[str, Any] | None:
    """Human 1 against human 2 on the double-scored essays (RSMTool's consistency table)."""
    if data.ratings is None:
        return None
    first, second = data.ratings
    both = np.isfinite(first) & np.isfinite(second)
    overall, per = _agreements(data, first, second, both, continuous=False, smd_method="pooled")
    within = np.zeros(len(first), dtype=bool)
    for key, row in per.items():
        rows = both & (data.prompts == key)
        row["rating_step"] = rating_step(np.concatenate([first[rows], second[rows]]))
        within[rows] = np.abs(first[rows] - second[rows]) <= row["rating_step"] + 1e-9
        row["adj_agr_rating"] = 100 * float(within[rows].mean())
    overall["adj_agr_rating"] = 100 * float(within[both].mean()) if both.any() else math.nan
    return {"n": int(both.sum()), "overall": overall, "per_prompt": per}


def rating_step(ratings: np.ndarray) -> float:
    """The smallest difference between two distinct ratings: 1 for whole points, 0.5 for half
    points, 2 where ratings were doubled onto the resolved score's scale (ASAP prompts 1, 7, 8).
    Adjacent human-human agreement means one such step apart; RSMTool's ``adj_agr`` (one score
    point) would count doubled ratings one step apart as disagreeing."""
    levels = np.unique(ratings[np.isfinite(ratings)])
    return float(np.diff(levels).min()) if len(levels) > 1 else 1.0


# --- one model -------------------------------------------------------------------------------


def _model(
    data: _Data,
    s: Scored,
    human_human: Mapping[str, Any] | None,
    columns: Mapping[str, np.ndarray],
    min_n: int,
    n_boot: int | None,
    seed: int | None,
    notes: list[str],
) -> dict[str, Any]:
    boot = s.settings.n_boot if n_boot is None else n_boot
    boot_seed = s.settings.seed if seed is None else seed
    everything = np.ones(len(data.human), dtype=bool)
    machine = {"continuous": s.pred, "levels": s.thresholded}
    overall: dict[str, dict[str, Any]] = {}
    per_prompt: dict[str, dict[str, Any]] = {}
    for kind, values in machine.items():
        overall[kind], per = _agreements(
            data, data.human, values, everything, continuous=kind == "continuous"
        )
        for key, row in per.items():
            per_prompt.setdefault(key, {})[kind] = row
    model: dict[str, Any] = {
        "name": s.name,
        "learner": s.learner,
        "is_stack": s.is_stack,
        "overall": overall,
        "intervals": _intervals(data, machine, boot, boot_seed),
        "per_prompt": per_prompt,
        "distribution": _by_scale(data, s.thresholded, _distribution),
        "confusion": _by_scale(data, s.thresholded, _confusion),
        "consistency": _consistency(data, machine, overall, per_prompt, human_human),
        "fairness": _fairness(data, machine, columns, min_n, (boot, boot_seed), s.name, notes),
    }
    model["flags"] = _flags(model)
    return model


def _rates(data: _Data, machine: np.ndarray) -> dict[str, np.ndarray]:
    """Per essay: same level as the human score, and at most one level apart."""
    apart = np.abs(data.human - machine) / data.step
    return {"exact_agr": apart < 1e-6, "adj_agr_level": apart < 1 + 1e-6}


def _intervals(
    data: _Data, machine: Mapping[str, np.ndarray], n_boot: int, seed: int
) -> dict[str, dict[str, list[float]]]:
    """Bootstrap intervals of the overall rows' headline statistics: QWK on levels as the
    leaderboard draws it, the rest from one vectorised moment bootstrap per kind."""
    everything = np.ones(len(data.human), dtype=bool)
    h = data.overall(data.human, everything)
    strata = data.prompts if data.per_prompt else None
    out: dict[str, dict[str, list[float]]] = {}
    for kind, values in machine.items():
        found = moment_intervals(
            h,
            data.overall(values, everything),
            rates=_rates(data, values) if kind == "levels" else None,
            strata=strata,
            n_boot=n_boot,
            seed=seed,
            alpha=ALPHA,
        )
        if kind == "levels":
            found["wtkappa"] = bootstrap_interval(
                data.human,
                values,
                prompts=data.prompts,
                scales=data.essays.scales,
                n_boot=n_boot,
                alpha=ALPHA,
                seed=seed,
            )
        out[kind] = {name: list(found[name]) for name in INTERVALS[kind]}
    return out


def _by_scale(
    data: _Data, levels: np.ndarray, table: Callable[[ScoreScale, np.ndarray, np.ndarray], Any]
) -> list[dict[str, Any]]:
    """``table`` of the human and machine levels of each distinct scale, largest group first."""
    groups = data.essays.scales.groups(data.prompts)
    ordered = sorted(groups.items(), key=lambda kv: (-len(kv[1]), kv[0].low, kv[0].high))
    return [
        {
            "scale": scale_text(scale),
            "prompts": sorted({str(p) for p in data.prompts[rows] if p is not None}),
            "n": len(rows),
            **table(scale, data.human[rows], levels[rows]),
        }
        for scale, rows in ordered
    ]


def _distribution(scale: ScoreScale, human: np.ndarray, machine: np.ndarray) -> dict[str, Any]:
    return {
        "levels": [asdict(x) for x in score_distribution(human, machine, scale.levels.tolist())]
    }


def _confusion(scale: ScoreScale, human: np.ndarray, machine: np.ndarray) -> dict[str, Any]:
    matrix = confusion_matrix(human, machine, scale.levels.tolist())
    return {"levels": [float(v) for v in scale.levels], "matrix": matrix.tolist()}


def _consistency(
    data: _Data,
    machine: Mapping[str, np.ndarray],
    overall: Mapping[str, Mapping[str, Any]],
    per_prompt: Mapping[str, Mapping[str, Mapping[str, Any]]],
    human_human: Mapping[str, Any] | None,
) -> dict[str, Any] | None:
    """Degradation, disattenuated correlation and PRMSE of each kind, overall and per prompt."""
    if human_human is None or data.ratings is None:
        return None
    first, second = data.ratings
    everything = np.ones(len(data.human), dtype=bool)

    def block(
        mh: Mapping[str, Any], hh: Mapping[str, Any], m: np.ndarray, r1: np.ndarray, r2: np.ndarray
    ) -> dict[str, Any]:
        rated = np.isfinite(r1)
        prmse = true_score(m[rated], r1[rated], r2[rated]) if rated.any() else None
        return {
            "degradation": degradation(_as_agreement(mh), _as_agreement(hh)),
            "disattenuated_corr": disattenuated_correlation(mh["corr"], hh["corr"]),
            "true_score": None if prmse is None else asdict(prmse),
        }

    out: dict[str, Any] = {"overall": {}, "per_prompt": {}}
    for kind, values in machine.items():
        out["overall"][kind] = block(
            overall[kind],
            human_human["overall"],
            data.overall(values, everything),
            data.overall(first, everything),
            data.overall(second, everything),
        )
        for key, hh in human_human["per_prompt"].items():
            rows = data.prompts == key
            out["per_prompt"].setdefault(key, {})[kind] = block(
                per_prompt[key][kind], hh, values[rows], first[rows], second[rows]
            )
    return out


def _as_agreement(row: Mapping[str, Any]) -> Agreement:
    """An ``Agreement`` back from its dict (overall rows are pooled as dicts; human-human rows
    carry the rating step too)."""
    names = {f.name for f in fields(Agreement)}
    return Agreement(**{**{k: v for k, v in row.items() if k in names}, "smd_method": "unpooled"})


def _fairness(
    data: _Data,
    machine: Mapping[str, np.ndarray],
    columns: Mapping[str, np.ndarray],
    min_n: int,
    boot: tuple[int, int],
    name: str,
    notes: list[str],
) -> dict[str, Any]:
    """Per subgroup column: each group's statistics and DSM, and the OSA/OSD/CSD analyses, on
    both kinds of machine score (overall scale: normalised per prompt where scales differ);
    OSA's and OSD's R2 with a bootstrap interval (RSMTool gives none)."""
    everything = np.ones(len(data.human), dtype=bool)
    h = data.overall(data.human, everything)
    scale = None if data.per_prompt else data.scale(None)
    out: dict[str, Any] = {}
    for column, labels in columns.items():
        entry: dict[str, Any] = {}
        for kind, values in machine.items():
            m = data.overall(values, everything)
            continuous = kind == "continuous" or data.per_prompt
            rows = group_rows(h, m, labels, column, min_n=min_n, scale=scale, continuous=continuous)
            try:
                analyses = [asdict(a) for a in fairness_analyses(h, m, labels)]
                intervals = group_r2_intervals(
                    {"osa": (m - h) ** 2, "osd": m - h},
                    labels,
                    n_boot=boot[0],
                    seed=boot[1],
                    alpha=ALPHA,
                )
                for a in analyses:
                    if a["analysis"] in intervals:
                        a["r2_ci_low"], a["r2_ci_high"] = intervals[a["analysis"]]
            except AesError as exc:
                notes.append(f"{name}: no fairness analyses for '{column}' ({exc}).")
                analyses = []
            entry[kind] = {
                "groups": [_group_dict(r) for r in rows],
                "analyses": analyses,
            }
        out[column] = entry
    return out


def _group_dict(row: Any) -> dict[str, Any]:
    found = asdict(row)
    found["agreement"] = row.agreement.as_dict()
    return found


# --- flags -----------------------------------------------------------------------------------


def _flag(rule_key: str, value: float, **where: Any) -> dict[str, Any] | None:
    if not flagged(rule_key, value):
        return None
    rule = RULES[rule_key]
    return {
        "rule": rule_key,
        **where,
        "statistic": rule.statistic,
        "value": value,
        "comparison": rule.comparison,
        "threshold": rule.threshold,
        "source": rule.source,
        "text": rule.text,
    }


def _flags(model: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Every rule a model breaks, on its levels (the scores that would be reported)."""
    out: list[dict[str, Any] | None] = []
    rows = [("overall", None, model["overall"]["levels"])] + [
        ("prompt", key, kinds["levels"]) for key, kinds in model["per_prompt"].items()
    ]
    for scope, where, row in rows:
        out.append(_flag("qwk_low", row["wtkappa"], scope=scope, where=where))
        out.append(_flag("corr_low", row["corr"], scope=scope, where=where))
        out.append(_flag("smd_high", row["smd"], scope=scope, where=where))
    for table in model["distribution"]:
        for share in table["levels"]:
            out.append(
                _flag(
                    "level_share_diff",
                    share["difference"],
                    scope="level",
                    where=f"{table['scale']}: {share['level']:g}",
                )
            )
    consistency_ = model["consistency"]
    if consistency_ is not None:
        blocks = [("overall", None, consistency_["overall"]["levels"])] + [
            ("prompt", key, kinds["levels"]) for key, kinds in consistency_["per_prompt"].items()
        ]
        for scope, where, block in blocks:
            for statistic in ("wtkappa", "corr"):
                flag = _flag(
                    "degradation_low", block["degradation"][statistic], scope=scope, where=where
                )
                if flag is not None:
                    flag["statistic"] = f"degradation of {statistic}"
                out.append(flag)
            out.append(
                _flag("disattenuated_low", block["disattenuated_corr"], scope=scope, where=where)
            )
    for column, kinds in model["fairness"].items():
        for group in kinds["levels"]["groups"]:
            if group["judged"]:
                out.append(
                    _flag(
                        "dsm_high",
                        group["dsm"],
                        scope="group",
                        where=f"{column} = {group['group']}",
                    )
                )
    return [f for f in out if f is not None]


def flag_where(flag: Mapping[str, Any]) -> str:
    """Where a flag applies, in words: ``overall``, ``prompt X``, ``gender = Female``."""
    if flag["scope"] == "prompt":
        return f"prompt {flag['where']}"
    return str(flag["where"] or flag["scope"])


def _human_human_flags(human_human: Mapping[str, Any] | None) -> list[dict[str, Any]]:
    """Rules on the human raters themselves: a machine cannot be judged against a weak
    human-human agreement."""
    if human_human is None:
        return []
    rows = [("overall", None, human_human["overall"])] + [
        ("prompt", key, row) for key, row in human_human["per_prompt"].items()
    ]
    out = []
    for scope, where, row in rows:
        for key in ("hh_exact_low", "hh_adjacent_low"):
            out.append(_flag(key, row[RULES[key].statistic], scope=scope, where=where))
    return [f for f in out if f is not None]


# --- JSON ------------------------------------------------------------------------------------


def clean(value: Any) -> Any:
    """``value`` as strict JSON: NaN and infinities as null, numpy scalars as Python numbers."""
    if isinstance(value, Mapping):
        return {str(k): clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [clean(v) for v in value]
    if isinstance(value, np.ndarray):
        return clean(value.tolist())
    if isinstance(value, np.bool_ | bool):
        return bool(value)
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, float | np.floating):
        return float(value) if math.isfinite(value) else None
    return value
