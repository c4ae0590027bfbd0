"""The report's figures as PNG bytes, drawn with matplotlib's object API on the Agg canvas (no
pyplot state, no display needed). PNG metadata carries no version or date, so the same inputs
give the same bytes."""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from aes_ensemble.scales import ScoreScale
from aes_ensemble.thresholds import Cutpoints

DPI = 100
MAX_ANNOTATED_LEVELS = 13
PALETTE = ("#3b6ea8", "#e08a2e", "#5a9e5a", "#b84a4a")


def _png(fig: Figure) -> bytes:
    FigureCanvasAgg(fig)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI, metadata={"Software": None})
    return buf.getvalue()


def _labels(scale: ScoreScale) -> list[str]:
    return [scale.label(v) for v in scale.levels]


def confusion_png(panels: Sequence[tuple[str, ScoreScale, np.ndarray, np.ndarray]]) -> bytes:
    """One confusion matrix per ``(title, scale, human, machine)``: counts, rows = human."""
    n = len(panels)
    fig = Figure(figsize=(5.2 * n, 4.6), layout="constrained")
    for ax, (title, scale, human, machine) in zip(
        fig.subplots(1, n, squeeze=False)[0], panels, strict=True
    ):
        k = scale.n_levels
        idx = scale.to_index(human) * k + scale.to_index(machine)
        conf = np.bincount(idx, minlength=k * k).reshape(k, k)
        image = ax.imshow(conf, cmap="Blues")
        labels = _labels(scale)
        ax.set_xticks(range(k), labels, rotation=90 if k > MAX_ANNOTATED_LEVELS else 0)
        ax.set_yticks(range(k), labels)
        ax.set_xlabel("machine score")
        ax.set_ylabel("human score")
        ax.set_title(title)
        if k <= MAX_ANNOTATED_LEVELS:
            top = conf.max() or 1
            for i in range(k):
                for j in range(k):
                    if conf[i, j]:
                        color = "white" if conf[i, j] > 0.6 * top else "black"
                        ax.text(j, i, str(conf[i, j]), ha="center", va="center", color=color)
        fig.colorbar(image, ax=ax, shrink=0.8)
    return _png(fig)


def correlation_png(names: Sequence[str], matrix: np.ndarray) -> bytes:
    """Heatmap of the learners' OOF correlations, each cell annotated."""
    k = len(names)
    side = 2.6 + 0.75 * k
    fig = Figure(figsize=(side + 1.2, side), layout="constrained")
    ax = fig.subplots()
    low = min(0.5, float(np.nanmin(matrix))) if k else 0.5
    image = ax.imshow(matrix, cmap="viridis", vmin=low, vmax=1.0)
    ax.set_xticks(range(k), names, rotation=45, ha="right")
    ax.set_yticks(range(k), names)
    for i in range(k):
        for j in range(k):
            color = "black" if matrix[i, j] > low + 0.7 * (1 - low) else "white"
            ax.text(j, i, f"{matrix[i, j]:.2f}", ha="center", va="center", color=color)
    ax.set_title("Pearson correlation of OOF predictions")
    fig.colorbar(image, ax=ax, shrink=0.8)
    return _png(fig)


COMPACT_AFTER = 15
"""Past this many prompts the per-prompt figure draws dots on thin rows instead of bars."""


@dataclass(frozen=True)
class PromptRow:
    prompt: str
    n: int
    label: str
    small: bool


def prompt_rows(
    series: Mapping[str, Mapping[str, float]], counts: Mapping[str, int], small_n: int
) -> list[PromptRow]:
    """Prompts in the figure's order: best QWK of the first series first (then more essays),
    each labelled with its essay count; prompts under ``small_n`` essays are marked small."""
    first = next(iter(series.values()), {})
    prompts = {p for values in series.values() for p in values}

    def key(p: str) -> tuple[float, int, str]:
        value = first.get(p, np.nan)
        return (-value if np.isfinite(value) else np.inf, -counts.get(p, 0), p)

    rows = []
    for p in sorted(prompts, key=key):
        n = counts.get(p, 0)
        small = n < small_n
        rows.append(PromptRow(p, n, f"{p} (n={n}{', too few' if small else ''})", small))
    return rows


def per_prompt_png(
    series: Mapping[str, Mapping[str, float]],
    counts: Mapping[str, int],
    minimum: float,
    small_n: int,
) -> bytes:
    """QWK per prompt for each model in ``series``, best prompt first, with the minimum line.

    Up to :data:`COMPACT_AFTER` prompts: labelled bars. More (ELLIPSE has 44): one thin row per
    prompt with a dot per model, so the figure stays a screen or two high. Prompts with fewer
    than ``small_n`` essays are drawn hollow and say so: their QWK is noise.
    """
    rows = prompt_rows(series, counts, small_n)
    compact = len(rows) > COMPACT_AFTER
    n_series = max(len(series), 1)
    per_row = 0.2 if compact else 0.32 * n_series
    fig = Figure(figsize=(9, 1.4 + per_row * len(rows)), layout="constrained")
    ax = fig.subplots()
    y = np.arange(len(rows))
    small = np.array([r.small for r in rows], dtype=bool)
    height = 0.8 / n_series
    for s, (label, values) in enumerate(series.items()):
        qwks = np.array([values.get(r.prompt, np.nan) for r in rows])
        color = PALETTE[s % len(PALETTE)]
        if compact:
            ax.scatter(qwks[~small], y[~small], color=color, s=18, label=label, zorder=3)
            ax.scatter(qwks[small], y[small], facecolors="none", edgecolors=color, s=18, zorder=3)
        else:
            offset = (s - (n_series - 1) / 2) * height
            bars = ax.barh(y + offset, qwks, height=height, label=label, color=color)
            for bar, is_small in zip(bars, small, strict=True):
                if is_small:
                    bar.set_alpha(0.35)
                    bar.set_hatch("//")
            ax.bar_label(bars, fmt="%.3f", padding=2, fontsize=8)
    if compact:
        ax.grid(axis="y", color="#eeeeee", linewidth=0.8)
    ax.axvline(
        minimum, color="#888888", linestyle="--", linewidth=1, label=f"{minimum:.2f} minimum"
    )
    ax.set_yticks(y, [r.label for r in rows], fontsize=7 if compact else 9)
    for tick, row in zip(ax.get_yticklabels(), rows, strict=True):
        if row.small:
            tick.set_color("#9aa5b1")
    ax.set_ylim(len(rows) - 0.5, -0.5)
    ax.set_xlim(0, 1.08)
    shape = "hollow dots" if compact else "faded bars"
    ax.set_xlabel(
        f"QWK (cross-fitted thresholds); {shape}: fewer than {small_n} essays, too few to judge"
    )
    ax.legend(loc="lower left", fontsize=8)
    return _png(fig)


def cutpoints_png(panels: Sequence[tuple[str, ScoreScale, np.ndarray, np.ndarray]]) -> bytes:
    """Histogram of continuous predictions per ``(title, scale, pred, cuts)``: fitted cut points
    as solid lines, plain-rounding cut points dotted, so the shift is visible at a glance."""
    n = len(panels)
    fig = Figure(figsize=(9, 2.9 * n), layout="constrained")
    for ax, (title, scale, pred, cuts) in zip(
        fig.subplots(n, 1, squeeze=False)[:, 0], panels, strict=True
    ):
        low, high = scale.low - scale.step, scale.high + scale.step
        ax.hist(np.clip(pred, low, high), bins=60, range=(low, high), color="#b9cde5")
        for c in Cutpoints.midpoints(scale).cuts:
            ax.axvline(c, color="#888888", linestyle=":", linewidth=1)
        for c in cuts:
            ax.axvline(c, color="#b84a4a", linewidth=1.5)
        ax.set_xticks(scale.levels, _labels(scale))
        ax.set_xlabel("continuous OOF prediction (red: fitted cut points, dotted: rounding)")
        ax.set_ylabel("essays")
        ax.set_title(title)
    return _png(fig)


def distribution_png(panels: Sequence[tuple[str, Sequence[str], np.ndarray, np.ndarray]]) -> bytes:
    """Share of essays at each level, human beside machine, one panel per
    ``(title, level labels, human %, machine %)`` (a scale): where a stack squeezes the ends of
    the scale, the machine bars are short at both ends."""
    n = len(panels)
    fig = Figure(figsize=(9, 2.7 * n), layout="constrained")
    for ax, (title, labels, human, machine) in zip(
        fig.subplots(n, 1, squeeze=False)[:, 0], panels, strict=True
    ):
        x = np.arange(len(labels))
        ax.bar(x - 0.2, human, width=0.4, color=PALETTE[0], label="human")
        ax.bar(x + 0.2, machine, width=0.4, color=PALETTE[1], label="machine")
        many = len(labels) > MAX_ANNOTATED_LEVELS
        ax.set_xticks(x, labels, rotation=90 if many else 0, fontsize=7 if many else 9)
        ax.set_ylabel("% of essays")
        ax.set_title(title)
        ax.legend(loc="upper right", fontsize=8)
    return _png(fig)


@dataclass(frozen=True)
class DsmPoint:
    """One subgroup's DSM; ``judged`` False: too few essays for a verdict (drawn hollow)."""

    column: str
    group: str
    n: int
    dsm: float
    judged: bool


def dsm_png(points: Sequence[DsmPoint], band: float) -> bytes:
    """DSM of every group, one row each, grouped by subgroup column, over the ``±band`` zone
    within which a group passes; hollow dots are groups too small to judge."""
    fig = Figure(figsize=(9, 1.2 + 0.28 * len(points)), layout="constrained")
    ax = fig.subplots()
    y = np.arange(len(points))
    dsm = np.array([p.dsm for p in points], dtype=float)
    judged = np.array([p.judged for p in points], dtype=bool)
    columns = list(dict.fromkeys(p.column for p in points))
    colors = np.array([PALETTE[columns.index(p.column) % len(PALETTE)] for p in points])
    ax.axvspan(-band, band, color="#e3f0e3", zorder=0, label=f"±{band:.2f}: no flag")
    ax.axvline(0, color="#888888", linewidth=0.8)
    ax.scatter(dsm[judged], y[judged], c=colors[judged], s=30, zorder=3)
    ax.scatter(
        dsm[~judged], y[~judged], facecolors="none", edgecolors=colors[~judged], s=30, zorder=3
    )
    ax.set_yticks(y, [f"{p.column}: {p.group} (n={p.n})" for p in points], fontsize=8)
    for tick, point in zip(ax.get_yticklabels(), points, strict=True):
        if not point.judged:
            tick.set_color("#9aa5b1")
    ax.set_ylim(len(points) - 0.5, -0.5)
    finite = np.abs(dsm[np.isfinite(dsm)])
    limit = max(2 * band, float(finite.max()) * 1.1 if len(finite) else 0.0)
    ax.set_xlim(-limit, limit)
    ax.set_xlabel("DSM: machine z-score minus human z-score (hollow: too few essays to judge)")
    ax.legend(loc="lower right", fontsize=8)
    return _png(fig)
