"""``aes-ensemble fit-base``: fit base learners over the folds (one after another, several at
once with ``--jobs``, or on a Ray cluster) and print a summary per learner."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table

from aes_ensemble.cli.common import WorkdirOption, console, err_console, workspace
from aes_ensemble.errors import AesError

if TYPE_CHECKING:
    from aes_ensemble.engine import Backend
    from aes_ensemble.fold_fit import RunSummary


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


def _names(text: str) -> list[str]:
    names = [part.strip() for part in text.split(",")]
    if not all(names):
        raise AesError(f"learners '{text}' must be names like lgbm,xgb,ridge_tfidf")
    return names


def _backend(backend: str, jobs: int, address: str | None) -> Backend:
    from aes_ensemble.engine import LocalBackend

    if backend == "local":
        return LocalBackend(jobs)
    if backend == "ray":
        from aes_ensemble.ray_backend import RayBackend  # optional extra, loaded only here

        return RayBackend(address)
    raise AesError(f"--backend '{backend}' must be local or ray", key="backend")


def _print_summary(summary: RunSummary) -> None:
    console.print(summary_table(summary))
    if summary.oof_path is not None and summary.oof_written:
        console.print(f"wrote {summary.oof_path}")
    elif summary.oof_path is not None:
        console.print(f"{summary.oof_path} is up to date (every fold current, nothing rewritten)")
    else:
        waiting = ", ".join(str(k) for k in summary.missing_folds)
        console.print(f"folds {waiting} still to fit before oof/{summary.name}.parquet is written")


def fit_base(
    name: Annotated[
        str, typer.Argument(help="Learner config: configs/NAME.yaml; several as lgbm,xgb.")
    ],
    overrides: Annotated[
        list[str] | None,
        typer.Argument(
            help="Settings on top of the config, e.g. params.learning_rate=0.05; "
            "NAME:key=value for one learner only."
        ),
    ] = None,
    fold: Annotated[
        str, typer.Option("--fold", "-f", help="'all', a fold number, or numbers like 0,2.")
    ] = "all",
    jobs: Annotated[
        int, typer.Option("--jobs", "-j", help="(learner, fold) tasks at once on this machine.")
    ] = 1,
    backend: Annotated[
        str, typer.Option(help="Where tasks run: local (this machine) or ray (a Ray cluster).")
    ] = "local",
    address: Annotated[
        str | None,
        typer.Option(
            help="Ray cluster: auto (the running one) or ray://HOST:PORT; "
            "default: a local Ray started for this run."
        ),
    ] = None,
    workdir: WorkdirOption = Path(),
    progress: Annotated[
        bool,
        typer.Option(help="A live bar in a terminal; --no-progress: plain lines now and then."),
    ] = True,
) -> None:
    """Fit base learner NAME (or several, comma-separated) on each fold; folds finished with
    the same config and data are skipped. A failed fold is one error line; the other folds
    finish (exit 2 at the end)."""
    from aes_ensemble.engine import fit_learners

    if not progress:  # also the Hugging Face loading and saving bars (read when they load)
        os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    result = fit_learners(
        workspace(workdir),
        _names(name),
        _backend(backend, jobs, address),
        folds=parse_folds(fold),
        overrides=overrides or [],
        progress=progress,
    )
    if not result.errors or any(s.folds for s in result.summaries):
        for summary in result.summaries:  # a table of folds only where a fold finished
            _print_summary(summary)
    for error in result.errors:
        err_console.print(f"error: {error}", markup=False, highlight=False)
    if result.errors:
        raise typer.Exit(2)


def register(app: typer.Typer) -> None:
    app.command("fit-base")(fit_base)
