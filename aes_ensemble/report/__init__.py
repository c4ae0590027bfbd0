"""``write_report``: the workspace's predictions as one self-contained HTML page plus PNGs.

The numbers come from ``leaderboard`` and ``validity`` (pure computation), the pictures from
``plots`` and the page from ``html``; this module only gathers the inputs and writes the files.
"""

from __future__ import annotations

import os
from collections import Counter
from pathlib import Path

import numpy as np
import polars as pl

from aes_ensemble.data import Essays, load_workspace_dataset, scale_text
from aes_ensemble.errors import AesError
from aes_ensemble.io import atomic_path, write_text_atomic
from aes_ensemble.report import plots
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
    per_prompt,
    read_stack_summaries,
    score,
    scoring,
)
from aes_ensemble.report.validity import (
    MIN_GROUP_N,
    QWK_MINIMUM,
    AgreementRow,
    SmdRow,
    agreement_table,
    smd_table,
)
from aes_ensemble.sample import TRAIN, sample_path
from aes_ensemble.scales import ScoreScale
from aes_ensemble.stacking.lineage import check_stacks_current
from aes_ensemble.store import PredictionStore
from aes_ensemble.thresholds import Cutpoints, Thresholds, fit_thresholds
from aes_ensemble.workspace import Workspace

__all__ = ["write_report"]

REPORT_NAME = "report.html"
FIGURES = ("confusion", "correlation", "cutpoints", "per_prompt")
MAX_PANELS = 4


def write_report(workspace: Workspace | str | Path, out_dir: str | Path | None = None) -> Path:
    """Write ``report.html`` and its PNGs to ``out_dir`` (default: the workspace's ``reports/``)
    from the training essays of ``configs/data.yaml``, every file in ``oof/`` and each stack's
    summary ``reports/NAME.json``; return the HTML path."""
    ws = workspace if isinstance(workspace, Workspace) else Workspace.at(workspace)
    out = ws.reports_dir if out_dir is None else Path(out_dir)
    essays, _ = load_workspace_dataset(ws)
    store = PredictionStore(ws.oof_dir)
    names = store.names()
    if not names:
        raise AesError(
            "no prediction files to report on; run `aes-ensemble fit-base` first", path=ws.oof_dir
        )
    sets = store.read_many(names, expected_ids=essays.ids)
    check_stacks_current(ws, sets)
    summaries = read_stack_summaries(ws.reports_dir, [ps.name for ps in sets if is_stack(ps)])
    settings = scoring(sets)
    scored = [score(ps, essays, settings) for ps in sets]
    rows = leaderboard(scored, essays)
    top = featured(scored, rows)
    thresholds, source = _cutpoints(top, summaries, essays)
    figures = _figures(scored, rows, top, thresholds, essays)

    ctx = ReportContext(
        title="aes-ensemble report",
        dataset=_dataset(ws, essays, sets[0].meta.folds_hash, names),
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
        agreement=_agreement(essays, top),
        smd=_smd(essays, top),
        subgroups=essays.subgroups,
        smd_note=(
            "Scores are normalised to 0-1 on each prompt's scale, since the scales differ."
            if essays.scales.is_per_prompt
            else ""
        ),
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
) -> dict[str, bytes]:
    y = essays.scores
    groups = _scale_rows(essays)
    figures = {
        "confusion": plots.confusion_png(
            [(f"{scale_text(s)}, {len(r)} essays", s, y[r], top.thresholded[r]) for s, r in groups]
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
    if essays.has_prompts:
        series = {top.name: per_prompt(top, essays)}
        best = best_learner(scored, rows)
        if best is not None and best.name != top.name:
            series[f"{best.name} (best single learner)"] = per_prompt(best, essays)
        counts = Counter(str(p) for p in essays.prompts if p is not None)
        figures["per_prompt"] = plots.per_prompt_png(series, counts, QWK_MINIMUM, MIN_GROUP_N)
    return figures


def _smd(essays: Essays, top: Scored) -> list[SmdRow]:
    """SMD rows on the score scale, or on 0..1 per scale where prompts' scales differ."""
    human, machine, prompts = essays.scores, top.thresholded, essays.prompts
    if essays.scales.is_per_prompt:
        human = essays.scales.normalise(human, prompts)
        machine = essays.scales.normalise(machine, prompts)
    return smd_table(
        machine,
        human,
        {c: essays.frame[c].to_list() for c in essays.subgroups},
        prompts if essays.has_prompts else None,
    )


def _agreement(essays: Essays, top: Scored) -> list[AgreementRow]:
    frame = essays.frame
    if not {"rater1", "rater2"} <= set(frame.columns):
        return []
    r1, r2 = (frame[c].cast(pl.Float64).fill_null(np.nan).to_numpy() for c in ("rater1", "rater2"))
    return agreement_table(essays.scores, top.thresholded, r1, r2, essays.prompts, essays.scales)
