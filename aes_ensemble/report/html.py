"""Render the report as one self-contained HTML file: inline CSS, figures as base64 data URIs,
nothing fetched from anywhere, so it can be mailed, archived or opened offline. Jinja2 escapes
every value (learner names, prompts and subgroup labels come from user files)."""

from __future__ import annotations

import base64
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from jinja2 import Environment, StrictUndefined

from aes_ensemble.report.leaderboard import LeaderboardRow, StackSummary
from aes_ensemble.report.validity import (
    DEGRADATION_LIMIT,
    MIN_GROUP_N,
    QWK_MINIMUM,
    AgreementRow,
    SmdRow,
    smd_limits,
)


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
    agreement: Sequence[AgreementRow]
    smd: Sequence[SmdRow]
    subgroups: Sequence[str]
    smd_note: str = ""
    correlation_note: str = ""
    figures: Mapping[str, bytes] = field(default_factory=dict)


def _num(value: float | None, digits: int = 3) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "—"
    return f"{value:.{digits}f}"


def _signed(value: float) -> str:
    return "—" if math.isnan(value) else f"{value:+.3f}"


def _limits_text(rows: Sequence[SmdRow]) -> str:
    """``|SMD| ≤ 0.15 for all essays and each prompt; ≤ 0.10 for each gender group, ...``."""
    parts = []
    for limit, what in smd_limits(rows):
        joined = what[0] if len(what) == 1 else ", ".join(what[:-1]) + " and " + what[-1]
        parts.append(f"≤ {limit:.2f} for {joined}")
    return "|SMD| " + "; ".join(parts) if parts else ""


def _data_uri(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


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
<em>fit</em> and <em>predict</em>; files that do not record them separately (older files,
imports, stacks) show one fit time that includes prediction.</p>

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

<h2 id="validity">Validity of operational scoring</h2>
<p class="lead">The checks of Williamson, Xi &amp; Breyer (2012), applied to the
cross-fitted thresholded OOF scores of {{ ctx.featured }}.</p>

<h3>Agreement: human-machine against human-human</h3>
{% if ctx.agreement %}
<table>
  <thead><tr><th>prompt</th><th class="num">essays</th><th class="num">QWK human-machine</th>
  <th class="num">QWK human-human</th><th class="num">degradation</th><th>verdict</th></tr></thead>
  <tbody>{% for a in ctx.agreement %}
  <tr><td>{{ a.prompt }}</td><td class="num">{{ a.n }}</td>
  <td class="num">{{ num(a.human_machine_qwk) }}</td>
  <td class="num">{{ num(a.human_human_qwk) }}</td>
  <td class="num">{{ signed(a.degradation) }}</td>
  <td>{% if a.flagged %}<span class="bad">✗ degrades &gt; {{ num(degradation_limit, 2) }}</span>
  {% endif %}{% if a.below_minimum %}<span class="bad">✗ QWK &lt; {{ num(qwk_minimum, 2) }}</span>
  {% endif %}{% if not a.flagged and not a.below_minimum %}<span class="ok">✓ ok</span>{% endif %}
  </td></tr>{% endfor %}
  </tbody>
</table>
<p class="note">Human-machine: machine against the resolved human score, on the prompt's scale.
Human-human: first against second rater, on the raters' own range. Degradation = human-human
minus human-machine, flagged above {{ num(degradation_limit, 2) }}; human-machine QWK should reach
{{ num(qwk_minimum, 2) }}.</p>
{% else %}
<p class="note">The data has no second human rating (<code>rater1</code>, <code>rater2</code>),
so human-human agreement cannot be measured here. ASAP files carry both.</p>
{% endif %}

<h3>Standardized mean difference (machine − human)</h3>
<table>
  <thead><tr><th>subgroup column</th><th>group</th><th class="num">essays</th>
  <th class="num">human mean</th><th class="num">machine mean</th><th class="num">SMD</th>
  <th>verdict</th></tr></thead>
  <tbody>{% for r in ctx.smd %}
  <tr><td>{{ r.column or "all essays" }}</td><td>{{ r.group }}</td><td class="num">{{ r.n }}</td>
  <td class="num">{{ num(r.human_mean) }}</td><td class="num">{{ num(r.machine_mean) }}</td>
  <td class="num">{{ signed(r.smd) }}</td>
  <td>{% if not r.judged %}<span class="na">not judged</span>
  {% elif r.flagged %}<span class="bad">✗ |SMD| &gt; {{ num(r.limit, 2) }}</span>
  {% else %}<span class="ok">✓ within {{ num(r.limit, 2) }}</span>{% endif %}</td></tr>
  {% endfor %}</tbody>
</table>
<p class="note">SMD = (mean machine − mean human) / pooled SD, pooled SD =
√((SD<sub>machine</sub>² + SD<sub>human</sub>²) / 2), computed within each group. Limits:
{{ limits_text(ctx.smd) }}. Groups of
fewer than {{ min_group_n }} essays are shown but not judged. {{ ctx.smd_note }}
{% if not ctx.subgroups %}No subgroup columns are declared (<code>subgroups:</code> in
configs/data.yaml), so no subgroup rows are shown.{% endif %}</p>

<p class="note">Williamson, D. M., Xi, X., &amp; Breyer, F. J. (2012). A framework for evaluation
and use of automated scoring. <em>Educational Measurement: Issues and Practice</em>, 31(1),
2–13.</p>
</main>
</body>
</html>
"""


def render(ctx: ReportContext) -> str:
    """The report page; every interpolated value is HTML-escaped."""
    env = Environment(autoescape=True, undefined=StrictUndefined, keep_trailing_newline=True)
    template = env.from_string(TEMPLATE)
    return template.render(
        ctx=ctx,
        num=_num,
        signed=_signed,
        uri=_data_uri,
        degradation_limit=DEGRADATION_LIMIT,
        qwk_minimum=QWK_MINIMUM,
        limits_text=_limits_text,
        min_group_n=MIN_GROUP_N,
    )
