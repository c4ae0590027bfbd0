"""``aes-ensemble tune``: search a learner's parameters with Optuna on the workspace folds and
write the best as ``configs/NAME_tuned.yaml``; one line per trial as it finishes."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.table import Table

from aes_ensemble.cli.common import WorkdirOption, console, err_console, workspace

if TYPE_CHECKING:
    from aes_ensemble.tuning.study import TrialRecord, TuneResult


def _values(params: dict[str, Any]) -> str:
    return ", ".join(
        f"{key}={value:.4g}" if isinstance(value, float) else f"{key}={value}"
        for key, value in params.items()
    )


def trial_line(record: TrialRecord) -> str:
    """``lgbm trial 3: QWK 0.7123 (running 0.70 0.71 0.71) params.alpha=3.2``: the study (an
    outer fold's under ``--nested``), then the running QWK after each fold."""
    running = " ".join(f"{q:.4f}" for q in record.running)
    if record.state == "complete" and record.value is not None:
        head = f"QWK {record.value:.4f} (running {running})"
    elif record.state == "pruned":
        head = f"pruned after fold {len(record.running)} (running {running})"
    else:
        head = record.state
    return f"{record.study} trial {record.number}: {head} {_values(record.params)}"


def _nested_table(result: TuneResult) -> Table:
    table = Table(
        title="nested: tuned on the other folds, scored on the outer fold",
        caption=f"honest estimate of tuning then fitting: {result.nested_qwk:.4f}",
    )
    for column in ("outer fold", "inner best", "outer QWK", "chosen"):
        table.add_column(column, justify="left" if column == "chosen" else "right")
    for row in result.nested:
        table.add_row(
            str(row.fold), f"{row.inner_best:.4f}", f"{row.outer_qwk:.4f}", _values(row.params)
        )
    return table


def tune(
    name: Annotated[str, typer.Argument(help="Learner config: configs/NAME.yaml.")],
    overrides: Annotated[
        list[str] | None,
        typer.Argument(help="Settings on top of the config (kept fixed), e.g. params.alpha=2."),
    ] = None,
    trials: Annotated[
        int, typer.Option("--trials", "-n", help="Trials this process runs (each worker its own).")
    ] = 20,
    storage: Annotated[
        str | None,
        typer.Option(
            help="Optuna RDB URL shared by workers, e.g. postgresql://user@host/db; "
            "default: sqlite in the workspace (tune/NAME.db)."
        ),
    ] = None,
    timeout: Annotated[
        float | None, typer.Option(help="Stop starting trials after this many seconds (per study).")
    ] = None,
    study_name: Annotated[
        str | None, typer.Option(help="Study to create or join; default: NAME.")
    ] = None,
    nested: Annotated[
        bool,
        typer.Option(
            help="Also tune inside each outer training fold for an honest estimate "
            "(about n_folds times the work)."
        ),
    ] = False,
    workdir: WorkdirOption = Path(),
    progress: Annotated[
        bool,
        typer.Option(help="Show per-essay feature preparation (embeddings) as it runs."),
    ] = True,
) -> None:
    """Tune learner NAME: each trial fits the folds in memory (nothing in base_models/ or oof/),
    scores the OOF predictions with the leaderboard's headline QWK (cross-fitted cut points)
    and is pruned when its running QWK falls behind. Several processes (or machines, with a
    server --storage) can run one study at once."""
    from aes_ensemble.tuning.study import tune_learner

    def report(record: TrialRecord) -> None:
        err_console.print(trial_line(record), markup=False, highlight=False)

    result = tune_learner(
        workspace(workdir),
        name,
        trials=trials,
        storage=storage,
        timeout=timeout,
        study_name=study_name,
        nested=nested,
        overrides=overrides or [],
        on_trial=report,
        progress=progress,
    )
    console.print(
        f"study '{result.study_name}' ({result.storage}): {result.n_complete} complete, "
        f"{result.n_pruned} pruned trials"
    )
    console.print(
        f"best: trial {result.best_number}, headline OOF QWK {result.best_value:.4f} "
        f"(cross-fitted cut points) with {_values(result.best_params)}"
    )
    console.print(f"wrote {result.tuned_path}")
    for note in result.notes:
        console.print(f"note: {note}", markup=False, highlight=False)
    if result.nested_qwk is None:
        console.print(
            "note: this OOF QWK is optimistic: the parameters were chosen on the same folds "
            "that measure them; `aes-ensemble tune --nested` gives an honest estimate"
        )
    else:
        console.print(_nested_table(result))
        console.print(
            f"note: the best OOF QWK {result.best_value:.4f} is optimistic; the nested "
            f"estimate {result.nested_qwk:.4f} is the honest one"
        )


def register(app: typer.Typer) -> None:
    app.command("tune")(tune)
