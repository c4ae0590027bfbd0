"""``stack``, ``predict`` and ``oof import``: the stacking layer from the command line."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.table import Table

from aes_ensemble.cli.common import WorkdirOption, console, workspace

if TYPE_CHECKING:
    from aes_ensemble.stacking.run import StackRun

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
    from aes_ensemble.stacking.stack_workspace import stack_config, stack_workspace

    ws = workspace(workdir)
    model_list = None if models is None else [m.strip() for m in models.split(",") if m.strip()]
    cfg = stack_config(
        ws, config, {"meta": meta, "models": model_list, "thresholds": thresholds, "name": name}
    )
    with console.status(f"stacking with {cfg.meta_name}"):
        run, path, summary_path = stack_workspace(ws, cfg)
    for note in run.notes:
        console.print(f"note: {note}", markup=False)
    print_leaderboard(run)
    console.print(f"wrote {path} and {summary_path}")


def _fmt_ci(ci: list[float]) -> str:
    return f"{ci[0]:.4f}-{ci[1]:.4f}"


BEST_MARK = "*"
MAX_PROMPT_ROWS = 15


def print_leaderboard(run: StackRun, out: Console | None = None) -> None:
    """The stack's leaderboard, one line per learner at 80 columns (the best single learner is
    marked, with a footnote), then its per-prompt QWK where the data has prompts."""
    out = out or console
    s = run.summary
    weights = s.get("weights") or s.get("importances") or {}
    table = Table(title=f"{run.name}: QWK ({s['thresholds']} thresholds), {s['seconds']:.1f} s")
    table.add_column("learner", no_wrap=True)
    for column in ("plain", "in-sample cuts", "cross-fitted cuts", "95% CI (cross)", "weight"):
        table.add_column(column, justify="right", no_wrap=column == "95% CI (cross)")
    entries = sorted(s["leaderboard"], key=lambda e: (e["role"] == "stack", -e["cross"]))
    for e in entries:
        label = e["name"] + (BEST_MARK if e["name"] == s["best_single"] else "")
        weight = weights.get(e["name"])
        table.add_row(
            f"[bold]{label}[/bold]" if e["role"] == "stack" else label,
            f"{e['plain']:.4f}",
            f"{e['insample']:.4f}",
            f"{e['cross']:.4f}",
            _fmt_ci(e["cross_ci"]),
            "" if weight is None else f"{weight:.3f}",
        )
    out.print(table)
    out.print(
        f"{BEST_MARK} best single learner; gain of the stack over it (cross-fitted): "
        f"{s['gain_over_best_single']:+.4f}"
    )
    _print_per_prompt(run, out)


def _print_per_prompt(run: StackRun, out: Console) -> None:
    """Cross-fitted QWK of each prompt for the stack and the best single learner (the ASAP
    headline is their mean); past MAX_PROMPT_ROWS prompts only the weakest are listed."""
    import numpy as np

    by_name = {e["name"]: e for e in run.summary["leaderboard"]}
    stack, best = by_name[run.name], by_name[run.summary["best_single"]]
    if not stack.get("per_prompt"):
        return
    counts = Counter(str(p) for p in run.data.prompts if p is not None)
    prompts = sorted(stack["per_prompt"], key=lambda p: (stack["per_prompt"][p], p))
    shown = prompts if len(prompts) <= MAX_PROMPT_ROWS else prompts[:10]
    table = Table(title=f"QWK per prompt (cross-fitted), weakest first: {len(prompts)} prompts")
    table.add_column("prompt", no_wrap=True, overflow="ellipsis", max_width=34)
    for column in ("essays", run.name, f"{best['name']}{BEST_MARK}"):
        table.add_column(column, justify="right", no_wrap=True)
    for p in shown:
        table.add_row(
            p,
            str(counts.get(p, "")),
            f"{stack['per_prompt'][p]:.4f}",
            f"{best['per_prompt'].get(p, float('nan')):.4f}",
        )
    if len(shown) < len(prompts):
        table.caption = f"{len(prompts) - len(shown)} more prompts in reports/report.html"
    out.print(table)
    out.print(
        f"mean of the per-prompt QWKs: {run.name} {np.mean(list(stack['per_prompt'].values())):.4f}"
        f", {best['name']} {np.mean(list(best['per_prompt'].values())):.4f}"
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
    import numpy as np

    from aes_ensemble.stacking.stack_workspace import write_submission

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
    from aes_ensemble.stacking.oof_import import import_into_store

    path, ps = import_into_store(workspace(workdir), file, name, force=force)
    oof = ps.oof.height
    console.print(f"wrote {path}: {oof} OOF and {ps.frame.height - oof} test predictions")
