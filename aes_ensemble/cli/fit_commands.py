"""``aes-ensemble fit-base``: fit a base learner over the folds and print its summary."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from aes_ensemble.cli.common import WorkdirOption, console, err_console, workspace
from aes_ensemble.errors import AesError
from aes_ensemble.runner import RunSummary, fit_learner


def parse_folds(text: str) -> str | list[int]:
    """``all``, ``K`` or ``K,K,...``."""
    if text.strip() == "all":
        return "all"
    try:
        return [int(part) for part in text.split(",")]
    except ValueError:
        raise AesError(
            f"--fold '{text}' must be 'all', a fold number or numbers like 0,2"
        ) from None


def summary_table(summary: RunSummary) -> Table:
    """Per-fold QWK, fit and predict seconds, then the overall OOF QWK once every fold is
    complete; the caption gives this run's feature preparation (embeddings), the rest of the
    time the user waited."""
    table = Table(
        title=f"{summary.name} ({summary.kind}, config {summary.config_hash})",
        caption=f"feature preparation this run: {summary.prepare_seconds:.1f} s",
    )
    table.add_column("fold", justify="right")
    table.add_column("essays", justify="right")
    table.add_column("QWK", justify="right")
    table.add_column("fit s", justify="right")
    table.add_column("predict s", justify="right")
    table.add_column("status")
    for r in summary.folds:
        table.add_row(
            str(r.fold),
            str(r.n_valid),
            f"{r.qwk:.4f}",
            f"{r.fit_seconds:.1f}",
            f"{r.predict_seconds:.1f}",
            r.status,
        )
    if summary.overall_qwk is not None:
        table.add_section()
        table.add_row(
            "OOF",
            "",
            f"[bold]{summary.overall_qwk:.4f}[/]",
            f"{sum(r.fit_seconds for r in summary.folds):.1f}",
            f"{sum(r.predict_seconds for r in summary.folds):.1f}",
            "",
        )
    return table


def fit_base(
    name: Annotated[str, typer.Argument(help="Learner config: configs/NAME.yaml.")],
    overrides: Annotated[
        list[str] | None,
        typer.Argument(help="Settings on top of the config, e.g. params.learning_rate=0.05."),
    ] = None,
    fold: Annotated[
        str, typer.Option("--fold", "-f", help="'all', a fold number, or numbers like 0,2.")
    ] = "all",
    workdir: WorkdirOption = Path(),
    progress: Annotated[
        bool,
        typer.Option(help="A live bar in a terminal; --no-progress: plain lines now and then."),
    ] = True,
) -> None:
    """Fit base learner NAME on each fold; folds finished with the same config and data are
    skipped."""
    if not progress:  # also the Hugging Face loading and saving bars (read when they load)
        os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    summary = fit_learner(
        workspace(workdir),
        name,
        folds=parse_folds(fold),
        overrides=overrides or [],
        progress=progress,
    )
    if not progress:  # the progress display showed them as they happened
        for note in summary.notes:
            err_console.print(f"{summary.name}: {note}", markup=False, highlight=False)
    console.print(summary_table(summary))
    if summary.oof_path is not None and summary.oof_written:
        console.print(f"wrote {summary.oof_path}")
    elif summary.oof_path is not None:
        console.print(f"{summary.oof_path} is up to date (every fold current, nothing rewritten)")
    else:
        waiting = ", ".join(str(k) for k in summary.missing_folds)
        console.print(f"folds {waiting} still to fit before oof/{summary.name}.parquet is written")


def register(app: typer.Typer) -> None:
    app.command("fit-base")(fit_base)
