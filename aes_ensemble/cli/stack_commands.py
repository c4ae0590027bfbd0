"""``stack``, ``predict`` and ``oof import``: the stacking layer from the command line."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import numpy as np
import typer
from rich.table import Table

from aes_ensemble.cli.common import WorkdirOption, console, workspace
from aes_ensemble.data import load_workspace_dataset
from aes_ensemble.errors import AesError
from aes_ensemble.folds import Folds, load_folds
from aes_ensemble.stacking.run import StackRun
from aes_ensemble.stacking.workspace import stack_config, stack_workspace, write_submission
from aes_ensemble.store import PredictionStore

oof_app = typer.Typer(help="Manage the prediction store (oof/).", no_args_is_help=True)


def register(app: typer.Typer) -> None:
    app.command("stack")(stack)
    app.command("predict")(predict)
    oof_app.command("import")(oof_import)
    app.add_typer(oof_app, name="oof")


def stack(
    meta: Annotated[
        str | None, typer.Option(help="ridge | nnls | lgbm | hill | mean | vote (default: config)")
    ] = None,
    models: Annotated[
        str | None, typer.Option(help="Comma-separated learner names (default: all in oof/).")
    ] = None,
    thresholds: Annotated[
        str | None, typer.Option(help="nelder-mead | optuna | none (default: config).")
    ] = None,
    name: Annotated[str | None, typer.Option(help="Output name (default: stack_<meta>).")] = None,
    config: Annotated[
        Path | None, typer.Option(help="Stack config (default: configs/stack.yaml).")
    ] = None,
    workdir: WorkdirOption = Path(),
) -> None:
    """Stack learners with nested grouped CV; print the leaderboard, write oof/ and reports/."""
    ws = workspace(workdir)
    model_list = None if models is None else [m.strip() for m in models.split(",") if m.strip()]
    cfg = stack_config(
        ws, config, {"meta": meta, "models": model_list, "thresholds": thresholds, "name": name}
    )
    with console.status(f"stacking with {cfg.meta_name}"):
        run, path, summary_path = stack_workspace(ws, cfg)
    print_leaderboard(run)
    console.print(f"wrote {path} and {summary_path}")


def _fmt_ci(ci: list[float]) -> str:
    return f"{ci[0]:.4f}-{ci[1]:.4f}"


def print_leaderboard(run: StackRun) -> None:
    s = run.summary
    weights = s.get("weights") or s.get("importances") or {}
    table = Table(title=f"{run.name}: QWK ({s['thresholds']} thresholds), {s['seconds']:.1f} s")
    for column in (
        "learner",
        "plain",
        "in-sample cuts",
        "cross-fitted cuts",
        "95% CI (cross)",
        "weight",
    ):
        table.add_column(column, justify="left" if column == "learner" else "right")
    entries = sorted(s["leaderboard"], key=lambda e: (e["role"] == "stack", -e["cross"]))
    for e in entries:
        label = e["name"] + (" (best single)" if e["name"] == s["best_single"] else "")
        weight = weights.get(e["name"])
        table.add_row(
            f"[bold]{label}[/bold]" if e["role"] == "stack" else label,
            f"{e['plain']:.4f}",
            f"{e['insample']:.4f}",
            f"{e['cross']:.4f}",
            _fmt_ci(e["cross_ci"]),
            "" if weight is None else f"{weight:.3f}",
        )
    console.print(table)
    console.print(
        f"gain over the best single learner (cross-fitted): {s['gain_over_best_single']:+.4f}"
    )


def predict(
    stack_name: Annotated[
        str | None,
        typer.Option("--stack", help="Predictions to submit (default: the only stack in oof/)."),
    ] = None,
    thresholds: Annotated[
        str, typer.Option(help="For a file without stored cut points: nelder-mead|optuna|none.")
    ] = "nelder-mead",
    output: Annotated[Path | None, typer.Option(help="Default: submission.csv.")] = None,
    workdir: WorkdirOption = Path(),
) -> None:
    """Write submission.csv (essay_id,score levels) from a stack's (or a learner's) test rows."""
    target, chosen, levels = write_submission(
        workspace(workdir), stack_name, thresholds=thresholds, output=output
    )
    counts = dict(sorted(zip(*np.unique(levels, return_counts=True), strict=True)))
    spread = ", ".join(f"{k:g}: {v}" for k, v in counts.items())
    console.print(f"wrote {target}: {len(levels)} essays from '{chosen}' ({spread})")


def oof_import(
    file: Annotated[
        Path, typer.Argument(help="CSV or Parquet: essay_id, split, fold?, pred, proba_*?")
    ],
    name: Annotated[str, typer.Option(help="Name in the store (oof/NAME.parquet).")],
    force: Annotated[bool, typer.Option(help="Replace an existing file of that name.")] = False,
    workdir: WorkdirOption = Path(),
) -> None:
    """Bring predictions made elsewhere (a teammate's notebook) into the store, validated."""
    from aes_ensemble.stacking.imports import import_predictions

    ws = workspace(workdir)
    store = PredictionStore(ws.oof_dir)
    if name in store.names() and not force:
        raise AesError(
            f"predictions named '{name}' exist; pass --force to replace them", path=store.path(name)
        )
    train, test = load_workspace_dataset(ws)
    folds: Folds = load_folds(ws)
    ps = import_predictions(file, name, train, test, folds)
    path = store.write(ps)
    oof = ps.oof.height
    console.print(f"wrote {path}: {oof} OOF and {ps.frame.height - oof} test predictions")
