"""``aes-ensemble demo``: the main job end to end on the embedded essay sample."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

import typer

from aes_ensemble.cli.common import WorkdirOption, console, workspace
from aes_ensemble.cli.stack_commands import print_leaderboard


def register(app: typer.Typer) -> None:
    app.command("demo")(demo)


def demo(
    learners: Annotated[
        str | None,
        typer.Option(
            help="Comma-separated learner configs (default: ridge_tfidf,lgbm; +minilm on a GPU)."
        ),
    ] = None,
    meta: Annotated[
        str | None,
        typer.Option(help="Meta-learner of the stack (default: nnls, non-negative weights)."),
    ] = None,
    workdir: WorkdirOption = Path(),
) -> None:
    """Folds, CPU learners, stack with thresholds, leaderboard, submission.csv and a report."""
    from aes_ensemble.demo import DEMO_META, run_demo

    started = time.perf_counter()
    names = None if learners is None else [n.strip() for n in learners.split(",") if n.strip()]
    result = run_demo(
        workspace(workdir),
        learners=names,
        meta=meta or DEMO_META,
        step=lambda s: console.print(f"[bold]>[/] {s}"),
    )
    print_leaderboard(result.stack)
    console.print(f"wrote {result.submission} and {result.report}")
    console.print(f"demo finished in {time.perf_counter() - started:.0f} s")
