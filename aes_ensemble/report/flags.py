"""The thresholds the validity report highlights, each with where it comes from.

The numbers are those RSMTool 12.0.0's report notebooks highlight (``color_highlighter`` in
notebooks/evaluation.ipynb, evaluation_by_group.ipynb, consistency.ipynb), which follow
Williamson, Xi & Breyer (2012), "A framework for evaluation and use of automated scoring".
RSMTool highlights strictly beyond a bound (``x < low or x > high``); so does ``flagged``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from aes_ensemble.errors import AesError, did_you_mean

WILLIAMSON = "Williamson, Xi & Breyer 2012"
COMPARISONS = ("<", ">", "abs>")
"""``value < threshold``, ``value > threshold``, ``|value| > threshold``."""


@dataclass(frozen=True)
class Rule:
    """``statistic comparison threshold`` flags a row; ``source`` says who set the bound."""

    key: str
    statistic: str
    comparison: str
    threshold: float
    source: str
    text: str


_BY_GROUP = f"RSMTool evaluation_by_group.ipynb and consistency.ipynb; {WILLIAMSON}"
_RULES = (
    # key, statistic, comparison, threshold, source, text
    ("qwk_low", "wtkappa", "<", 0.70, _BY_GROUP, "quadratic weighted kappa below 0.70"),
    ("corr_low", "corr", "<", 0.70, _BY_GROUP, "Pearson correlation below 0.70"),
    (
        "degradation_low", "degradation", "<", -0.10,
        f"RSMTool consistency.ipynb (degradation of corr and wtkappa); {WILLIAMSON}",
        "machine-human minus human-human agreement below -0.10",
    ),
    (
        "smd_high", "smd", "abs>", 0.15, f"RSMTool evaluation.ipynb; {WILLIAMSON}",
        "standardized mean difference beyond +-0.15",
    ),
    (
        "dsm_high", "dsm", "abs>", 0.10, f"RSMTool evaluation_by_group.ipynb; {WILLIAMSON}",
        "difference of standardized means of a subgroup beyond +-0.10",
    ),
    (
        "disattenuated_low", "corr_disattenuated", "<", 0.90, "RSMTool consistency.ipynb",
        "disattenuated machine-human correlation below 0.90",
    ),
    (
        "level_share_diff", "difference", "abs>", 5.0,
        "RSMTool evaluation.ipynb (score distributions)",
        "a level's share of machine scores differs from the human share by over 5 points",
    ),
    (
        "hh_exact_low", "exact_agr", "<", 50.0, "RSMTool consistency.ipynb",
        "human-human exact agreement below 50%",
    ),
    (
        "hh_adjacent_low", "adj_agr_rating", "<", 95.0, "RSMTool consistency.ipynb",
        "human-human agreement within one rating step below 95%",
    ),
)  # fmt: skip

RULES: dict[str, Rule] = {r[0]: Rule(*r) for r in _RULES}
"""Every rule by key."""


def flagged(rule_key: str, value: float | None) -> bool:
    """Whether ``value`` breaks the rule ``rule_key``; NaN or None (a statistic that is
    undefined) never does: the report says it is undefined instead."""
    rule = RULES.get(rule_key)
    if rule is None:
        raise AesError(f"unknown flag rule '{rule_key}'{did_you_mean(rule_key, RULES)}")
    if value is None or math.isnan(value):
        return False
    if rule.comparison == "<":
        return bool(value < rule.threshold)
    if rule.comparison == ">":
        return bool(value > rule.threshold)
    return bool(abs(value) > rule.threshold)
