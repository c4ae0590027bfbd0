"""``aes-ensemble report``: the workspace's predictions as one self-contained HTML page."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from aes_ensemble.cli.common import WorkdirOption, console, workspace

OutOption = Annotated[
    Path | None,
    typer.Option("--out", help="Folder for report.html and its PNGs; default: WORKDIR/reports."),
]


def register(app: typer.Typer) -> None:
    """Add ``report`` to ``app``."""
    app.command("report")(report)


def report(workdir: WorkdirOption = Path(), out: OutOption = None) -> None:
    """Write reports/report.html: leaderboard, confusion, correlations, cut points, validity.

    The page is self-contained (images embedded) and recomputes every QWK from oof/."""
    from aes_ensemble.report import write_report  # matplotlib loads only for this command

    path = write_report(workspace(workdir), out)
    console.print(f"wrote {path}")
