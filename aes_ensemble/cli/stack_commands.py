"""``stack``, ``predict`` and ``oof import``: the stacking layer from the command line."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import numpy as np
import polars as pl
import typer
from rich.table import Table

from aes_ensemble.cli.common import WorkdirOption, console, workspace
from aes_ensemble.config import read_yaml, validate
from aes_ensemble.data import Essays, load_workspace_dataset
from aes_ensemble.errors import AesError
from aes_ensemble.folds import Folds, load_folds
from aes_ensemble.io import atomic_path, write_json_atomic
from aes_ensemble.stacking.config import StackConfig
from aes_ensemble.stacking.inputs import aligned_rows, build_stack_data, length_features
from aes_ensemble.stacking.nested import fit_cuts
from aes_ensemble.stacking.run import STACK_LEARNER, StackRun, run_stack
from aes_ensemble.store import PredictionSet, PredictionStore
from aes_ensemble.thresholds import Thresholds
from aes_ensemble.workspace import Workspace

oof_app = typer.Typer(help="Manage the prediction store (oof/).", no_args_is_help=True)


def register(app: typer.Typer) -> None:
    app.command("stack")(stack)
    app.command("predict")(predict)
    oof_app.command("import")(oof_import)
    app.add_typer(oof_app, name="oof")


def _stack_config(ws: Workspace, config: Path | None, overrides: dict[str, Any]) -> StackConfig:
    path = config if config is not None else ws.config_path("stack")
    data = {**read_yaml(path), **{k: v for k, v in overrides.items() if v is not None}}
    cfg = validate(StackConfig, data, path=path)
    cfg.check()
    return cfg


def _default_models(store: PredictionStore, exclude: str) -> list[str]:
    """Every file in ``oof/`` except stacks (stack them by naming them with --models)."""
    names = []
    for name in store.names():
        if name == exclude:
            continue
        if store.read(name).meta.learner != STACK_LEARNER:
            names.append(name)
    if not names:
        raise AesError(
            "no base learner predictions to stack; fit learners or `aes-ensemble oof import`",
            path=store.oof_dir,
        )
    return names


def _sources(essays: Essays) -> np.ndarray | None:
    column = essays.frame["source"]
    return None if column.null_count() == len(column) else np.asarray(column.to_list(), object)


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
    cfg = _stack_config(
        ws, config, {"meta": meta, "models": model_list, "thresholds": thresholds, "name": name}
    )
    train, test = load_workspace_dataset(ws)
    folds = load_folds(ws)
    store = PredictionStore(ws.oof_dir)
    store.path(cfg.output_name)
    names = cfg.models or _default_models(store, cfg.output_name)
    sets = store.read_many(names, folds.hash, train.ids)
    extra = extra_test = None
    if cfg.features.length:
        extra = length_features(train.texts)
        extra_test = None if test is None else length_features(test.texts)
    data = build_stack_data(
        sets,
        train.ids,
        train.scores,
        train.prompts,
        train.scales,
        test_ids=None if test is None else test.ids,
        test_prompts=None if test is None else test.prompts,
        proba=cfg.features.proba,
        extra=extra,
        extra_test=extra_test,
        extra_names=["log_words"] if cfg.features.length else (),
    )
    with console.status(f"stacking {len(names)} learners with {cfg.meta_name}"):
        run = run_stack(data, cfg, sources=_sources(train))
    path = store.write(run.predictions)
    report = ws.reports_dir / f"{run.name}.json"
    write_json_atomic(report, run.summary)
    _print_leaderboard(run)
    console.print(f"wrote {path} and {report}")


def _fmt_ci(ci: list[float]) -> str:
    return f"{ci[0]:.4f}-{ci[1]:.4f}"


def _print_leaderboard(run: StackRun) -> None:
    s = run.summary
    weights = s.get("weights") or s.get("importances") or {}
    table = Table(title=f"{run.name}: QWK ({s['thresholds']} thresholds), {s['seconds']:.1f} s")
    for column in ("learner", "plain", "thresholded", "cross-fitted", "95% CI (cross)", "weight"):
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


def _single_stack(store: PredictionStore) -> str:
    stacks = [n for n in store.names() if store.read(n).meta.learner == STACK_LEARNER]
    if len(stacks) == 1:
        return stacks[0]
    if not stacks:
        raise AesError(
            "no stack in oof/ yet; run `aes-ensemble stack` or pass --stack NAME",
            path=store.oof_dir,
        )
    raise AesError(
        f"several stacks ({', '.join(stacks)}); pick one with --stack", path=store.oof_dir
    )


def _format_level(value: float) -> str:
    return f"{value:g}"


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
    ws = workspace(workdir)
    train, test = load_workspace_dataset(ws)
    if test is None:
        raise AesError(
            "the data config names no test file; add `test:` to predict", path=ws.data_config_path
        )
    store = PredictionStore(ws.oof_dir)
    name = stack_name or _single_stack(store)
    ps = store.read(name, load_folds(ws).hash, train.ids)
    cuts = _thresholds_for(ps, train, thresholds)
    rows = aligned_rows(ps, "test", test.ids)
    levels = cuts.apply(rows["pred"].to_numpy(), test.prompts, train.scales)
    target = output or ws.submission_path
    submission = pl.DataFrame(
        {"essay_id": test.ids, "score": [_format_level(v) for v in levels]},
        schema={"essay_id": pl.String, "score": pl.String},
    )
    with atomic_path(target) as tmp:
        submission.write_csv(tmp)
    counts = dict(sorted(zip(*np.unique(levels, return_counts=True), strict=True)))
    spread = ", ".join(f"{_format_level(k)}: {v}" for k, v in counts.items())
    console.print(f"wrote {target}: {len(levels)} essays from '{name}' ({spread})")


def _thresholds_for(ps: PredictionSet, train: Essays, method: str) -> Thresholds:
    """The stack's stored final cut points, else cut points fitted on the file's OOF rows."""
    stored = ps.meta.extra.get("final_thresholds")
    if stored is not None:
        return Thresholds.from_dict(stored)
    oof = aligned_rows(ps, "oof", train.ids)["pred"].to_numpy()
    seed = ps.meta.seed if ps.meta.seed is not None else 0
    return fit_cuts(train.scores, oof, train.prompts, train.scales, method, seed, np.empty(0))


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
