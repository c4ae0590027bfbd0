"""``write_report``: the workspace's predictions as one self-contained HTML page plus PNGs and
the validity document ``validity.json``; ``write_validity``: the document alone.

The numbers come from ``leaderboard`` and ``validity_doc`` (pure computation), the pictures from
``plots`` and the page from ``html``; this module only gathers the inputs and writes the files.
"""

from __future__ import annotations

import math
import os
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from aes_ensemble.data import Essays, load_workspace_dataset, scale_text
from aes_ensemble.errors import AesError, did_you_mean
from aes_ensemble.folds import load_folds
from aes_ensemble.io import atomic_path, write_json_atomic, write_text_atomic
from aes_ensemble.report import plots
from aes_ensemble.report.flags import RULES
from aes_ensemble.report.html import CutpointRow, ReportContext, render
from aes_ensemble.report.leaderboard import (
    LeaderboardRow,
    Scored,
    StackSummary,
    best_learner,
    correlation,
    featured,
    is_stack,
    leaderboard,
    measure,
    newest_stack_settings,
    per_prompt,
    read_stack_summaries,
)
from aes_ensemble.report.validity_doc import MIN_GROUP_N, validity_document
from aes_ensemble.sample import TRAIN, sample_path
from aes_ensemble.scales import ScoreScale
from aes_ensemble.stacking.lineage import check_stacks_current
from aes_ensemble.store import PredictionSet, PredictionStore
from aes_ensemble.thresholds import Cutpoints, Thresholds, fit_thresholds
from aes_ensemble.workspace import Workspace

__all__ = ["Validity", "write_report", "write_validity"]

REPORT_NAME = "report.html"
VALIDITY_NAME = "validity.json"
FIGURES = ("confusion", "correlation", "cutpoints", "per_prompt", "distribution", "dsm")
MAX_PANELS = 4


@dataclass(frozen=True)
class Validity:
    """The validity document of a workspace, where it was written, and the model it features."""

    document: dict[str, Any]
    path: Path
    featured: str


@dataclass(frozen=True)
class _Inputs:
    essays: Essays
    sets: list[PredictionSet]
    scored: list[Scored]
    rows: list[LeaderboardRow]


def _inputs(ws: Workspace) -> _Inputs:
    """The training essays and every prediction file of ``oof/``, scored as the leaderboard."""
    essays, _ = load_workspace_dataset(ws)
    store = PredictionStore(ws.oof_dir)
    names = store.names()
    if not names:
        raise AesError(
            "no prediction files to report on; run `aes-ensemble fit-base` first", path=ws.oof_dir
        )
    # On the workspace's folds where it has them: after `folds --force`, the files still on the
    # old folds are named, not the one just refitted.
    current = load_folds(ws).hash if ws.folds_path.exists() else None
    sets = store.read_many(names, current, expected_ids=essays.ids)
    check_stacks_current(ws, sets)
    settings = newest_stack_settings(sets)
    scored = [measure(ps, essays, settings) for ps in sets]
    return _Inputs(essays, sets, scored, leaderboard(scored, essays))


def write_validity(workspace: Workspace | str | Path, stack: str | None = None) -> Validity:
    """Write ``reports/validity.json`` for every prediction file in ``oof/``; ``stack`` names the
    stack to feature (an unknown name is an error naming the stacks there), else the best stack
    or, without stacks, the best single learner."""
    ws = workspace if isinstance(workspace, Workspace) else Workspace.at(workspace)
    inputs = _inputs(ws)
    if stack is not None:
        stacks = [s.name for s in inputs.scored if s.is_stack]
        if stack not in stacks:
            where = did_you_mean(stack, stacks) if stacks else " (there is none; run `stack`)"
            raise AesError(f"no stack named '{stack}'{where}", path=ws.oof_dir)
    chosen = stack or featured(inputs.scored, inputs.rows).name
    path = ws.reports_dir / VALIDITY_NAME
    document = validity_document(inputs.essays, inputs.scored)
    write_json_atomic(path, document)
    return Validity(document, path, chosen)


def write_report(workspace: Workspace | str | Path, out_dir: str | Path | None = None) -> Path:
    """Write ``report.html``, its PNGs and ``validity.json`` to ``out_dir`` (default: the
    workspace's ``reports/``) from the training essays of ``configs/data.yaml``, every file in
    ``oof/`` and each stack's summary ``reports/NAME.json``; return the HTML path."""
    ws = workspace if isinstance(workspace, Workspace) else Workspace.at(workspace)
    out = ws.reports_dir if out_dir is None else Path(out_dir)
    inputs = _inputs(ws)
    essays, sets, scored, rows = inputs.essays, inputs.sets, inputs.scored, inputs.rows
    summaries = read_stack_summaries(ws.reports_dir, [ps.name for ps in sets if is_stack(ps)])
    top = featured(scored, rows)
    document = validity_document(essays, scored)
    thresholds, source = _cutpoints(top, summaries, essays)
    figures = _figures(scored, rows, top, thresholds, essays, document)

    ctx = ReportContext(
        title="aes-ensemble report",
        dataset=_dataset(ws, essays, sets[0].meta.folds_hash, [ps.name for ps in sets]),
        leaderboard=rows,
        featured=top.name,
        featured_is_stack=top.is_stack,
        summaries=summaries,
        cutpoints=[
            CutpointRow(
                scale=scale_text(c.scale),
                fitted=[float(x) for x in c.cuts],
                rounding=[float(x) for x in Cutpoints.midpoints(c.scale).cuts],
            )
            for c in thresholds.cutpoints
        ],
        cutpoints_source=source,
        validity=document,
        correlation_note=(
            "Predictions are normalised per scale and centred within each prompt."
            if essays.scales.is_per_prompt
            else ""
        ),
        figures=figures,
    )
    for name in FIGURES:
        png = out / f"{name}.png"
        if name in figures:
            with atomic_path(png) as tmp:
                tmp.write_bytes(figures[name])
        else:
            png.unlink(missing_ok=True)  # a stale figure from an earlier run would mislead
    write_json_atomic(out / VALIDITY_NAME, document)
    report = out / REPORT_NAME
    write_text_atomic(report, render(ctx))
    return report


def _dataset(ws: Workspace, essays: Essays, folds_hash: str, names: list[str]) -> dict[str, str]:
    scales = essays.scales
    if scales.is_per_prompt:
        scale = "per prompt: " + ", ".join(
            f"{p} {scale_text(s)}" for p, s in sorted(scales.per_prompt.items())
        )
        headline = "mean of the per-prompt QWKs, the ASAP protocol"
    else:
        scale = scale_text(scales.for_prompt(None))
        headline = "one QWK over all essays"
    n_prompts = essays.frame["prompt"].drop_nulls().n_unique()
    return {
        "workspace": ws.root.resolve().name or ".",
        "training essays": f"{len(essays)} from {_shown_path(essays.path, ws.root)}",
        "prompts": str(n_prompts) if n_prompts else "none",
        "score scale": scale,
        "prediction files": ", ".join(names),
        "folds hash": folds_hash,
        "headline": headline,
    }


def _shown_path(path: Path | None, root: Path) -> str:
    """``path`` as it can be shared: relative to the workspace, the embedded sample by name;
    never an absolute path of this machine."""
    if path is None:
        return "(not a file)"
    path, root = path.resolve(), root.resolve()
    if path.is_relative_to(root):
        return path.relative_to(root).as_posix()
    if path.parent == sample_path(TRAIN).resolve().parent:
        return f"{path.name} (the embedded sample)"
    try:
        return Path(os.path.relpath(path, root)).as_posix()
    except ValueError:  # another drive (Windows): no relative path exists
        return path.name


def _cutpoints(
    top: Scored, summaries: list[StackSummary], essays: Essays
) -> tuple[Thresholds, str]:
    """The stack's own final cut points when its summary has them, else fitted here."""
    for s in summaries:
        if s.name == top.name and s.thresholds is not None:
            return s.thresholds, (
                f"Final cut points of the stack, read from {s.path.name} (fitted on all OOF rows)."
            )
    fitted = fit_thresholds(essays.scores, top.pred, essays.prompts, essays.scales)
    return fitted, (
        f"Cut points fitted by this report on all OOF rows of {top.name} (in-sample; the "
        "leaderboard's thresholded QWK uses cross-fitted cut points instead)."
    )


def _scale_rows(essays: Essays) -> list[tuple[ScoreScale, np.ndarray]]:
    """Row indices per distinct scale, largest group first, at most MAX_PANELS."""
    groups = essays.scales.groups(essays.prompts)
    ordered = sorted(groups.items(), key=lambda kv: (-len(kv[1]), kv[0].low, kv[0].high))
    return ordered[:MAX_PANELS]


def _figures(
    scored: list[Scored],
    rows: list[LeaderboardRow],
    top: Scored,
    thresholds: Thresholds,
    essays: Essays,
    document: Mapping[str, Any],
) -> dict[str, bytes]:
    groups = _scale_rows(essays)
    human = essays.scores
    figures = {
        "confusion": plots.confusion_png(
            [
                (f"{scale_text(s)}, {len(r)} essays", s, human[r], top.thresholded[r])
                for s, r in groups
            ]
        ),
        "cutpoints": plots.cutpoints_png(
            [
                (f"{top.name}: scale {scale_text(s)}", s, top.pred[r], thresholds.for_scale(s).cuts)
                for s, r in groups
            ]
        ),
    }
    names, matrix = correlation(scored, essays)
    if len(names) >= 2:
        figures["correlation"] = plots.correlation_png(names, matrix)
    model = next(m for m in document["models"] if m["name"] == top.name)
    if essays.has_prompts:
        series = prompt_series(top, best_learner(scored, rows), essays, document)
        counts = Counter(str(p) for p in essays.prompts if p is not None)
        figures["per_prompt"] = plots.per_prompt_png(
            series, counts, RULES["qwk_low"].threshold, MIN_GROUP_N
        )
    figures["distribution"] = plots.distribution_png(
        [
            (
                f"{top.name}: scale {table['scale']}, {table['n']} essays",
                [f"{share['level']:g}" for share in table["levels"]],
                np.array([share["human_pct"] for share in table["levels"]]),
                np.array([share["machine_pct"] for share in table["levels"]]),
            )
            for table in model["distribution"][:MAX_PANELS]
        ]
    )
    points = [
        plots.DsmPoint(column, g["group"], g["n"], _number(g["dsm"]), g["judged"])
        for column, kinds in model["fairness"].items()
        for g in kinds["levels"]["groups"]
    ]
    if points:
        figures["dsm"] = plots.dsm_png(points, RULES["dsm_high"].threshold)
    return figures


def prompt_series(
    top: Scored, best: Scored | None, essays: Essays, document: Mapping[str, Any]
) -> dict[str, dict[str, float]]:
    """QWK per prompt of the featured model, the best single learner and, where the essays
    carry a second rating, the two human raters: the bar a machine is held against."""
    series = {top.name: per_prompt(top, essays)}
    if best is not None and best.name != top.name:
        series[f"{best.name} (best single learner)"] = per_prompt(best, essays)
    human_human = document["human_human"]
    if human_human is not None:
        series["human-human"] = {p: row["wtkappa"] for p, row in human_human["per_prompt"].items()}
    return series


def _number(value: float | None) -> float:
    """A JSON number back as a float (null: NaN)."""
    return math.nan if value is None else float(value)
