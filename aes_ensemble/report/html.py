"""Render the report as one self-contained HTML file: inline CSS, figures as base64 data URIs,
nothing fetched from anywhere, so it can be mailed, archived or opened offline. Jinja2 escapes
every value (learner names, prompts and subgroup labels come from user files)."""

from __future__ import annotations

import base64
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from jinja2 import Environment, StrictUndefined

from aes_ensemble.report.flags import RULES, flagged
from aes_ensemble.report.leaderboard import LeaderboardRow, StackSummary
from aes_ensemble.report.validity_doc import flag_where


@dataclass(frozen=True)
class CutpointRow:
    scale: str
    fitted: list[float]
    rounding: list[float]


@dataclass(frozen=True)
class ReportContext:
    """Everything the template shows; figures map a name to PNG bytes (absent: not drawn)."""

    title: str
    dataset: Mapping[str, str]
    leaderboard: Sequence[LeaderboardRow]
    featured: str
    featured_is_stack: bool
    summaries: Sequence[StackSummary]
    cutpoints: Sequence[CutpointRow]
    cutpoints_source: str
    validity: Mapping[str, Any]
    correlation_note: str = ""
    figures: Mapping[str, bytes] = field(default_factory=dict)


def _num(value: float | None, digits: int = 3) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "—"
    return f"{value:.{digits}f}"


def _signed(value: float | None, digits: int = 3) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "—"
    return f"{value:+.{digits}f}"


def _ci(pair: Sequence[float | None] | None, digits: int = 3) -> str:
    if not pair or any(v is None for v in pair):
        return ""
    return f"[{_num(pair[0], digits)}, {_num(pair[1], digits)}]"


def _models(ctx: ReportContext) -> list[Mapping[str, Any]]:
    """The document's models in leaderboard order."""
    order = {row.name: i for i, row in enumerate(ctx.leaderboard)}
    models = list(ctx.validity["models"])
    return sorted(models, key=lambda m: (order.get(m["name"], len(order)), m["name"]))


def _max_dsm(model: Mapping[str, Any], column: str) -> float | None:
    """Largest |DSM| among the judged groups of one subgroup column (levels)."""
    values = [
        abs(g["dsm"])
        for g in model["fairness"][column]["levels"]["groups"]
        if g["judged"] and g["dsm"] is not None
    ]
    return max(values) if values else None


def _analysis(model: Mapping[str, Any], column: str, name: str) -> Mapping[str, Any] | None:
    for a in model["fairness"][column]["levels"]["analyses"]:
        if a["analysis"] == name:
            return a
    return None


def _cls(rule_key: str, value: float | None) -> str:
    """A number cell's class: red where ``value`` breaks the rule."""
    return "num bad" if value is not None and flagged(rule_key, value) else "num"


def _data_uri(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


STATISTICS = (
    ("n", "essays", 0),
    ("h_mean", "human mean", 3),
    ("h_sd", "human SD", 3),
    ("sys_mean", "machine mean", 3),
    ("sys_sd", "machine SD", 3),
    ("wtkappa", "QWK", 3),
    ("kappa", "Cohen's kappa", 3),
    ("exact_agr", "exact agreement %", 1),
    ("adj_agr", "exact + adjacent % (±1 point)", 1),
    ("adj_agr_level", "exact + adjacent % (±1 level)", 1),
    ("corr", "Pearson r", 3),
    ("smd", "SMD, (M − H) / SD<sub>H</sub>", 3),
    ("smd_pooled", "SMD, pooled SD (Williamson 2012)", 3),
    ("mse", "MSE", 3),
    ("rmse", "RMSE", 3),
    ("r2", "R²", 3),
)
"""Rows of the featured model's statistics table: document key, label (HTML), digits."""
ANALYSES = (
    ("osa", "overall score accuracy (squared error ~ group)"),
    ("osd", "overall score difference (signed error ~ group)"),
    ("csd", "conditional score difference (signed error ~ group, given the human score)"),
)


TEMPLATE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{{ ctx.title }}</title>
<style>
  body { font-family: -apple-system, "Segoe UI", Roboto, "DejaVu Sans", sans-serif;
         color: #1f2933; background: #f7f8fa; margin: 0; line-height: 1.45; }
  main { max-width: 1100px; margin: 0 auto; padding: 24px 32px 48px; background: #fff;
         min-height: 100vh; box-shadow: 0 0 12px rgba(0,0,0,.06); }
  h1 { font-size: 1.6em; margin: 0 0 4px; }
  h2 { font-size: 1.25em; margin: 36px 0 8px; padding-bottom: 4px;
       border-bottom: 2px solid #e4e7eb; }
  h3 { font-size: 1.05em; margin: 20px 0 6px; }
  p.lead { color: #52606d; margin: 0 0 12px; }
  p.note, li.note { color: #52606d; font-size: .9em; }
  dl.meta { display: grid; grid-template-columns: max-content 1fr; gap: 2px 16px;
            font-size: .92em; margin: 12px 0; }
  dl.meta dt { color: #52606d; } dl.meta dd { margin: 0; word-break: break-all; }
  table { border-collapse: collapse; margin: 8px 0 12px; font-size: .92em; }
  th, td { padding: 5px 10px; border-bottom: 1px solid #e4e7eb; text-align: left; }
  th { background: #f0f4f8; font-weight: 600; }
  td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; }
  tr:nth-child(even) td { background: #fafbfc; }
  tr.stack td { font-weight: 600; }
  .ci { color: #7b8794; font-size: .88em; }
  .tag { display: inline-block; padding: 0 6px; border-radius: 3px; font-size: .8em;
         background: #e4e7eb; color: #323f4b; }
  .tag.stack { background: #d9e8f6; color: #1d4f7c; }
  .ok { color: #2f7d32; font-weight: 600; }
  .bad { color: #b42318; font-weight: 600; }
  .na { color: #7b8794; }
  figure { margin: 12px 0; }
  figure img { max-width: 100%; height: auto; border: 1px solid #e4e7eb; }
  figcaption { color: #52606d; font-size: .88em; margin-top: 4px; }
  td.est, td.src { font-size: .85em; color: #52606d; }
  details { margin: 4px 0; } summary { cursor: pointer; color: #52606d; font-size: .92em; }
  h4 { font-size: .98em; margin: 16px 0 4px; }
  .cuts { font-family: "DejaVu Sans Mono", Menlo, monospace; font-size: .88em; }
</style>
</head>
<body>
<main>
<h1>{{ ctx.title }}</h1>
<p class="lead">Out-of-fold evaluation of every prediction file in the store,
recomputed with one method for all.</p>
<dl class="meta">
{% for key, value in ctx.dataset.items() %}  <dt>{{ key }}</dt><dd>{{ value }}</dd>
{% endfor %}</dl>

<h2 id="leaderboard">Leaderboard</h2>
<table>
  <thead><tr><th class="num">#</th><th>model</th><th>learner</th>
  <th class="num">QWK rounded</th><th class="num">QWK thresholded</th>
  <th class="num">prepare s</th><th class="num">fit s</th><th class="num">predict s</th>
  <th class="num">waited s</th></tr></thead>
  <tbody>
  {% for row in ctx.leaderboard %}
  <tr{% if row.is_stack %} class="stack"{% endif %}>
    <td class="num">{{ loop.index }}</td>
    <td>{{ row.name }} {% if row.is_stack %}<span class="tag stack">stack</span>{% endif %}</td>
    <td>{{ row.learner }}</td>
    <td class="num">{{ num(row.qwk_rounded) }}
      <span class="ci">[{{ num(row.ci_rounded[0]) }}, {{ num(row.ci_rounded[1]) }}]</span></td>
    <td class="num">{{ num(row.qwk_thresholded) }}
      <span class="ci">[{{ num(row.ci_thresholded[0]) }},
      {{ num(row.ci_thresholded[1]) }}]</span></td>
    <td class="num">{{ num(row.timing.prepare, 1) }}</td>
    <td class="num">{{ num(row.timing.fit, 1) }}</td>
    <td class="num">{{ num(row.timing.predict, 1) }}</td>
    <td class="num">{{ num(row.timing.total, 1) }}</td>
  </tr>
  {% endfor %}
  </tbody>
</table>
<p class="note">QWK on the out-of-fold predictions of all {{ ctx.leaderboard[0].n }} training
essays{% if ctx.dataset.get("headline") %} ({{ ctx.dataset["headline"] }}){% endif %}.
<em>Rounded</em>: each prediction rounded to the nearest level. <em>Thresholded</em>: cut points
fitted to maximise QWK, cross-fitted over the same folds, so the number is not inflated by
fitting on the rows it scores: a learner's fold is cut by points fitted on the other folds, a
stack's fold by the points its nested cross-validation fitted without that fold's labels. These
are the numbers <code>aes-ensemble stack</code> prints and writes to
<code>reports/NAME.json</code>. Brackets: 95% bootstrap interval. Seconds, summed over folds,
are the time waited: <em>prepare</em> per-essay features (embeddings, once per run),
<em>fit</em> and <em>predict</em>; files that do not record them separately
(imports, stacks) show one fit time that includes prediction.</p>

{% for s in ctx.summaries if s.weights %}
<h3>Stack weights: {{ s.name }}</h3>
<table>
  <thead><tr><th>learner</th><th class="num">weight</th></tr></thead>
  <tbody>{% for learner, w in s.weights.items() %}
  <tr><td>{{ learner }}</td><td class="num">{{ num(w) }}</td></tr>{% endfor %}
  </tbody>
</table>
{% endfor %}

<h2 id="confusion">Confusion matrix: {{ ctx.featured }}</h2>
{% if "confusion" in ctx.figures %}
<figure><img src="{{ uri(ctx.figures['confusion']) }}" alt="confusion matrix of {{ ctx.featured }}">
<figcaption>Human score (rows) against the {{ "stack's" if ctx.featured_is_stack
else "best model's" }} cross-fitted thresholded OOF score (columns).</figcaption></figure>
{% endif %}

<h2 id="correlation">OOF correlation of the learners</h2>
{% if "correlation" in ctx.figures %}
<figure><img src="{{ uri(ctx.figures['correlation']) }}" alt="correlation heatmap">
<figcaption>Learners that disagree (lower correlation) give a stack more to work
with. {{ ctx.correlation_note }}</figcaption></figure>
{% else %}<p class="note">Fewer than two base learners: no correlation to show.</p>{% endif %}

<h2 id="thresholds">Threshold cut points: {{ ctx.featured }}</h2>
<p class="note">{{ ctx.cutpoints_source }}</p>
<table>
  <thead><tr><th>scale</th><th>fitted cut points</th><th>plain rounding</th></tr></thead>
  <tbody>{% for c in ctx.cutpoints %}
  <tr><td>{{ c.scale }}</td>
  <td class="cuts">{{ c.fitted | map("round", 3) | join(", ") }}</td>
  <td class="cuts">{{ c.rounding | map("round", 3) | join(", ") }}</td></tr>{% endfor %}
  </tbody>
</table>
{% if "cutpoints" in ctx.figures %}
<figure><img src="{{ uri(ctx.figures['cutpoints']) }}" alt="cut points over the predictions">
<figcaption>Continuous OOF predictions of {{ ctx.featured }} with the cut points above, per
score scale (the four largest where there are more).</figcaption></figure>
{% endif %}

<h2 id="prompts">QWK per prompt</h2>
{% if "per_prompt" in ctx.figures %}
<figure><img src="{{ uri(ctx.figures['per_prompt']) }}" alt="QWK per prompt">
<figcaption>Cross-fitted thresholded QWK of the essays of each prompt.</figcaption></figure>
{% else %}<p class="note">The data has no prompt column.</p>{% endif %}

<h2 id="validity">Validity: RSMTool's statistics for every model</h2>
<p class="lead">The statistics of ETS's RSMTool (<code>rsmeval</code>) and the checks of
Williamson, Xi &amp; Breyer (2012), for every base learner and stack, on the continuous
out-of-fold predictions and on the levels after cross-fitted cut points. All of them are also in
<code>validity.json</code> (schema: docs/validity.md). {{ overall_note }}</p>

<h3>Every model, overall</h3>
<table>
  <thead><tr><th>model</th><th class="num">QWK</th><th class="num">QWK continuous</th>
  <th class="num">r</th><th class="num">exact %</th><th class="num">adjacent %</th>
  <th class="num">SMD</th><th class="num">RMSE</th><th class="num">flags</th></tr></thead>
  <tbody>{% for m in models %}
  <tr{% if m.is_stack %} class="stack"{% endif %}><td>{{ m.name }}</td>
  <td class="num">{{ num(m.overall.levels.wtkappa) }}
    <span class="ci">{{ ci(m.intervals.levels.wtkappa) }}</span></td>
  <td class="num">{{ num(m.overall.continuous.wtkappa) }}</td>
  <td class="num">{{ num(m.overall.levels.corr) }}</td>
  <td class="num">{{ num(m.overall.levels.exact_agr, 1) }}</td>
  <td class="num">{{ num(m.overall.levels.adj_agr_level, 1) }}</td>
  <td class="num">{{ signed(m.overall.levels.smd) }}</td>
  <td class="num">{{ num(m.overall.levels.rmse) }}</td>
  <td class="num">{% if m.flags %}<span class="bad">{{ m.flags | length }}</span>
  {% else %}<span class="ok">0</span>{% endif %}</td></tr>{% endfor %}
  </tbody>
</table>
<p class="note">Levels (cross-fitted cut points) except <em>QWK continuous</em>: RSMTool's QWK
of the raw prediction, 2·cov / (var H + var M + (mean M − mean H)²). Adjacent: at most one level
apart. Brackets: 95% bootstrap interval ({{ settings_text }}). Flags: the rules below, on the
levels.</p>

<h3>{{ top.name }} in detail</h3>
<table>
  <thead><tr><th>statistic</th><th class="num">continuous</th><th class="num">95% interval</th>
  <th class="num">levels</th><th class="num">95% interval</th></tr></thead>
  <tbody>{% for key, label, digits in statistics %}
  <tr><td>{{ label | safe }}</td>
  <td class="num">{{ num(top.overall.continuous[key], digits) }}</td>
  <td class="num ci">{{ ci(top.intervals.continuous.get(key), digits or 3) }}</td>
  <td class="num">{{ num(top.overall.levels[key], digits) }}</td>
  <td class="num ci">{{ ci(top.intervals.levels.get(key), digits or 3) }}</td></tr>{% endfor %}
  </tbody>
</table>
<p class="note">Exact and adjacent agreement of the continuous prediction follow RSMTool (no
rounding), so they are near 0 and say little; read them on the levels.</p>

{% if top.per_prompt %}
<h3>{{ top.name }} per prompt (levels)</h3>
<table>
  <thead><tr><th>prompt</th><th class="num">essays</th><th class="num">QWK</th>
  {% if hh %}<th class="num">QWK human-human</th><th class="num">degradation</th>{% endif %}
  <th class="num">r</th><th class="num">SMD</th><th class="num">exact %</th>
  <th class="num">adjacent %</th></tr></thead>
  <tbody>{% for prompt, kinds in top.per_prompt.items() %}{% set row = kinds.levels %}
  <tr><td>{{ prompt }}</td><td class="num">{{ row.n }}</td>
  <td class="{{ cls('qwk_low', row.wtkappa) }}">{{ num(row.wtkappa) }}</td>
  {% if hh %}{% set c = top.consistency.per_prompt.get(prompt) %}
  <td class="num">{{ num(hh.per_prompt[prompt].wtkappa) if prompt in hh.per_prompt else "—" }}</td>
  <td class="num">{{ signed(c.levels.degradation.wtkappa) if c else "—" }}</td>{% endif %}
  <td class="num">{{ num(row.corr) }}</td><td class="num">{{ signed(row.smd) }}</td>
  <td class="num">{{ num(row.exact_agr, 1) }}</td>
  <td class="num">{{ num(row.adj_agr_level, 1) }}</td></tr>{% endfor %}
  </tbody>
</table>
{% endif %}

<h3 id="distribution">Score distributions: {{ top.name }}</h3>
{% if "distribution" in ctx.figures %}
<figure><img src="{{ uri(ctx.figures['distribution']) }}"
  alt="score distributions, human and machine">
<figcaption>Share of essays at each level, human against {{ top.name }}'s levels.</figcaption>
</figure>{% endif %}
{% for table in top.distribution %}
<details{% if loop.first %} open{% endif %}><summary>scale {{ table.scale }}, {{ table.n }}
essays</summary>
<table>
  <thead><tr><th class="num">level</th><th class="num">human %</th><th class="num">machine %</th>
  <th class="num">difference</th></tr></thead>
  <tbody>{% for share in table.levels %}
  <tr><td class="num">{{ "%g" | format(share.level) }}</td>
  <td class="num">{{ num(share.human_pct, 1) }}</td>
  <td class="num">{{ num(share.machine_pct, 1) }}</td>
  <td class="{{ cls('level_share_diff', share.difference) }}">{{ signed(share.difference, 1) }}</td>
  </tr>{% endfor %}
  </tbody>
</table></details>{% endfor %}
<p class="note">A level whose machine share differs from the human share by more than
{{ num(rules.level_share_diff.threshold, 0) }} points is flagged.</p>

<h3 id="consistency">Consistency and true score</h3>
{% if not hh %}
<p class="note">{{ consistency_note }}</p>
{% else %}
<table>
  <thead><tr><th>human 1 vs human 2</th><th class="num">essays</th><th class="num">QWK</th>
  <th class="num">kappa</th><th class="num">exact %</th><th class="num">adjacent %</th>
  <th class="num">r</th><th class="num">SMD pooled</th></tr></thead>
  <tbody>{% for label, row in [("all double-scored essays", hh.overall)] + hh_rows %}
  <tr><td>{{ label }}</td><td class="num">{{ row.n }}</td>
  <td class="num">{{ num(row.wtkappa) }}</td>
  <td class="num">{{ num(row.kappa) }}</td>
  <td class="{{ cls('hh_exact_low', row.exact_agr) }}">{{ num(row.exact_agr, 1) }}</td>
  <td class="{{ cls('hh_adjacent_low', row.adj_agr) }}">{{ num(row.adj_agr, 1) }}</td>
  <td class="num">{{ num(row.corr) }}</td><td class="num">{{ signed(row.smd) }}</td>
  </tr>{% endfor %}
  </tbody>
</table>
<table>
  <thead><tr><th>model</th><th class="num">degradation QWK</th><th class="num">degradation r</th>
  <th class="num">disattenuated r</th><th class="num">PRMSE levels</th>
  <th class="num">PRMSE continuous</th></tr></thead>
  <tbody>{% for m in models %}{% set c = m.consistency.overall %}
  <tr{% if m.is_stack %} class="stack"{% endif %}><td>{{ m.name }}</td>
  <td class="num">{{ signed(c.levels.degradation.wtkappa) }}</td>
  <td class="num">{{ signed(c.levels.degradation.corr) }}</td>
  <td class="num">{{ num(c.levels.disattenuated_corr) }}</td>
  <td class="num">{{ num(c.levels.true_score.prmse if c.levels.true_score else none) }}</td>
  <td class="num">{{ num(c.continuous.true_score.prmse if c.continuous.true_score else none) }}</td>
  </tr>{% endfor %}
  </tbody>
</table>
<p class="note">Degradation: machine-human minus human-human (machine against the resolved
score on all essays, the raters against each other on the {{ hh.n }} double-scored essays),
flagged below {{ num(rules.degradation_low.threshold, 2) }}. Disattenuated r = r<sub>MH</sub> /
√r<sub>HH</sub>, flagged below {{ num(rules.disattenuated_low.threshold, 2) }}. PRMSE:
proportional reduction in mean squared error against the true score, rater error estimated
from the double-scored essays (Loukina et al. 2020).</p>
{% endif %}

<h3 id="fairness">Fairness by subgroup</h3>
{% if not fairness_columns %}
<p class="note">No subgroup column to analyse (<code>subgroups:</code> in configs/data.yaml
declares them).</p>
{% endif %}
{% for column in fairness_columns %}{% set f = top.fairness[column].levels %}
<h4>{{ column }}: {{ top.name }}</h4>
<table>
  <thead><tr><th>group</th><th class="num">essays</th><th class="num">human mean</th>
  <th class="num">machine mean</th><th class="num">QWK</th><th class="num">r</th>
  <th class="num">DSM</th><th>verdict</th></tr></thead>
  <tbody>{% for g in f.groups %}
  <tr><td>{{ g.group }}</td><td class="num">{{ g.n }}</td><td class="num">{{ num(g.h_mean) }}</td>
  <td class="num">{{ num(g.sys_mean) }}</td><td class="num">{{ num(g.wtkappa) }}</td>
  <td class="num">{{ num(g.corr) }}</td><td class="num">{{ signed(g.dsm) }}</td>
  <td>{% if not g.judged %}<span class="na">not judged</span>
  {% elif g.flagged %}<span class="bad">✗ |DSM| &gt; {{ num(rules.dsm_high.threshold, 2) }}</span>
  {% else %}<span class="ok">✓ ok</span>{% endif %}</td></tr>{% endfor %}
  </tbody>
</table>
{% if f.analyses %}
<table>
  <thead><tr><th>analysis</th><th class="num">R²</th><th class="num">p</th>
  <th>group estimates against {{ f.analyses[0].base_group }} [95% CI]</th></tr></thead>
  <tbody>{% for key, label in analyses %}{% set a = analysis(top, column, key) %}{% if a %}
  <tr><td>{{ key | upper }}: {{ label }}</td><td class="num">{{ num(a.r2, 4) }}
  <span class="ci">{{ ci([a.r2_ci_low, a.r2_ci_high], 4) }}</span></td>
  <td class="num">{{ num(a.p_value) }}</td>
  <td class="est">{% for e in a.estimates[1:] %}{{ e.group }} {{ signed(e.estimate) }}
  {{ ci([e.ci_low, e.ci_high]) }}{% if not loop.last %}; {% endif %}{% endfor %}</td></tr>
  {% endif %}{% endfor %}
  </tbody>
</table>{% endif %}
{% endfor %}
{% if "dsm" in ctx.figures %}
<figure><img src="{{ uri(ctx.figures['dsm']) }}" alt="DSM per group">
<figcaption>DSM of each group for {{ top.name }} (levels): within
±{{ num(rules.dsm_high.threshold, 2) }} (green) a group passes; hollow: fewer than
{{ min_group_n }} essays, shown but not judged.</figcaption>
</figure>{% endif %}
{% if fairness_columns %}
<p class="note">DSM: the machine's z-score minus the human's, averaged over a group, both
z-scored on all essays{{ " (scores normalised per prompt)" if per_prompt_scales else "" }}.
OSA, OSD and CSD are RSMTool's fairness models (Loukina, Madnani &amp; Zechner 2019): the share
of variance in the squared error, the signed error, and the signed error beyond the human score
that group membership explains (adjusted R²; for CSD the R² it adds).</p>
<h4>Did stacking change fairness?</h4>
<table>
  <thead><tr><th>model</th>{% for column in fairness_columns %}
  <th class="num">{{ column }}: max |DSM|</th><th class="num">CSD R²</th>{% endfor %}</tr></thead>
  <tbody>{% for m in models %}
  <tr{% if m.is_stack %} class="stack"{% endif %}><td>{{ m.name }}</td>
  {% for column in fairness_columns %}
  {% set d = max_dsm(m, column) %}{% set a = analysis(m, column, "csd") %}
  <td class="{{ cls('dsm_high', d) }}">{{ num(d) }}</td>
  <td class="num">{{ num(a.r2, 4) if a else "—" }}</td>{% endfor %}</tr>{% endfor %}
  </tbody>
</table>
{% endif %}

<h3 id="flags">Flags: {{ top.name }}</h3>
{% if top.flags or v.flags %}
<table>
  <thead><tr><th>where</th><th>statistic</th><th class="num">value</th><th>rule</th></tr></thead>
  <tbody>{% for flag in v.flags + top.flags %}
  <tr><td>{{ where(flag) }}</td><td>{{ flag.statistic }}</td>
  <td class="num">{{ num(flag.value) }}</td><td>{{ flag.text }}</td></tr>{% endfor %}
  </tbody>
</table>
{% else %}<p class="note">No rule is broken.</p>{% endif %}
<table>
  <thead><tr><th>rule</th><th>flags when</th><th>source</th></tr></thead>
  <tbody>{% for rule in rules.values() %}
  <tr><td>{{ rule.key }}</td><td>{{ rule.text }}</td><td class="src">{{ rule.source }}</td>
  </tr>{% endfor %}
  </tbody>
</table>
{% if v.notes %}
<h3 id="notes">Notes</h3>
<ul>{% for note in v.notes %}<li class="note">{{ note }}</li>{% endfor %}</ul>
{% endif %}

<p class="note">Williamson, D. M., Xi, X., &amp; Breyer, F. J. (2012). A framework for evaluation
and use of automated scoring. <em>Educational Measurement: Issues and Practice</em>, 31(1),
2–13. Loukina, A., Madnani, N., Cahill, A., et al. (2020). Using PRMSE to evaluate automated
scoring systems in the presence of label noise. <em>BEA workshop</em>. Loukina, A., Madnani, N.,
&amp; Zechner, K. (2019). The many dimensions of algorithmic fairness in educational
applications. <em>BEA workshop</em>.</p>
</main>
</body>
</html>
"""


def render(ctx: ReportContext) -> str:
    """The report page; every interpolated value is HTML-escaped."""
    env = Environment(autoescape=True, undefined=StrictUndefined, keep_trailing_newline=True)
    template = env.from_string(TEMPLATE)
    v = ctx.validity
    models = _models(ctx)
    top = next(m for m in models if m["name"] == ctx.featured)
    hh = v["human_human"]
    settings = v["settings"]
    return template.render(
        ctx=ctx,
        v=v,
        models=models,
        top=top,
        hh=hh,
        hh_rows=[(f"prompt {p}", row) for p, row in (hh or {}).get("per_prompt", {}).items()],
        rules=RULES,
        statistics=STATISTICS,
        analyses=ANALYSES,
        fairness_columns=v["dataset"]["fairness_columns"],
        per_prompt_scales=v["dataset"]["per_prompt_scales"],
        overall_note=_overall_note(v),
        settings_text=_settings_text(settings),
        consistency_note=next(
            (n for n in v["notes"] if "human rating" in n), "No second human rating."
        ),
        min_group_n=settings["min_group_n"],
        num=_num,
        signed=_signed,
        ci=_ci,
        where=flag_where,
        max_dsm=_max_dsm,
        analysis=_analysis,
        cls=_cls,
        uri=_data_uri,
    )


def _overall_note(v: Mapping[str, Any]) -> str:
    overall = v["dataset"]["overall"]
    if not v["dataset"]["per_prompt_scales"]:
        return ""
    return (
        f"Prompts have their own scales: overall rows compare scores {overall['scores']}; "
        f"{', '.join(overall['pooled_mean_of_prompts'])} are the mean of the prompts' values "
        "(the ASAP protocol), the agreement rates pooled over prompts."
    )


def _settings_text(settings: Mapping[str, Any]) -> str:
    if settings["n_boot"] is None:
        return "resamples and seed of the leaderboard"
    return f"{settings['n_boot']} resamples, seed {settings['seed']}"
