"""``aes-ensemble data check`` and ``aes-ensemble folds``: look at the essays, split them once."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, cast

import numpy as np
import polars as pl
import typer
import yaml
from rich.table import Table

from aes_ensemble.cli.common import WorkdirOption, console, workspace
from aes_ensemble.config import DataConfig, load_config
from aes_ensemble.data import (
    FORMATS,
    Essays,
    detect_role,
    load_dataset,
    load_workspace_dataset,
    read_essays,
    scale_text,
)
from aes_ensemble.errors import AesError
from aes_ensemble.folds import Folds, Method, assign_folds, read_folds_file, save_folds
from aes_ensemble.io import write_text_atomic
from aes_ensemble.scales import ScoreScale, ScoreScales
from aes_ensemble.workspace import Workspace

FormatOption = Annotated[
    str, typer.Option("--format", help=f"File format: {', '.join(FORMATS)}.", show_default=True)
]


_ALL_LEVELS = 15  # wider scales (ASAP 0-60) list only the levels that occur


def register(app: typer.Typer) -> None:
    """Add ``data check`` and ``folds`` to ``app``."""
    data_app = typer.Typer(help="Inspect essay files.", no_args_is_help=True)
    data_app.command("check")(check)
    app.add_typer(data_app, name="data")
    app.command("folds")(folds)


def check(
    file: Annotated[Path, typer.Argument(help="Essays file (CSV, or ASAP's TSV).")],
    data_format: FormatOption = "auto",
    scale: Annotated[
        str | None, typer.Option(help="Score scale, e.g. 1-6 or 1-5:0.5 (default: the format's).")
    ] = None,
) -> None:
    """Validate an essays file and print its prompts, score levels and lengths."""
    role = detect_role(file, data_format=data_format)
    scales = None if scale is None else ScoreScales(default=ScoreScale.parse(scale))
    essays = read_essays(file, role=role, data_format=data_format, scales=scales)
    console.print(f"[bold]{file}[/bold]: {len(essays)} essays ({role} file, no errors found)")
    _print_prompts(essays)
    if role == "train":
        _print_levels(essays)
    _print_lengths(essays)


def _print_prompts(essays: Essays) -> None:
    if not essays.has_prompts:
        console.print("prompts: none (no prompt column)")
        return
    counts = essays.frame.group_by("prompt").len().sort(["len", "prompt"], descending=[True, False])
    table = Table(title=f"{counts.height} prompts")
    for column in ("prompt", "essays"):
        table.add_column(column, justify="right" if column == "essays" else "left")
    for prompt, n in counts.iter_rows():
        table.add_row(str(prompt), str(n))
    console.print(table)


def _print_levels(essays: Essays) -> None:
    table = Table(title="score levels")
    for column in ("scale", "prompts", "level", "essays", "share"):
        table.add_column(column, justify="left" if column in ("scale", "prompts") else "right")
    prompts = essays.prompts
    for scale, rows in essays.scales.groups(prompts).items():
        names = sorted({str(p) for p in prompts[rows] if p in essays.scales.per_prompt})
        counts = np.bincount(scale.to_index(essays.scores[rows]), minlength=scale.n_levels)
        shown = [i for i, n in enumerate(counts) if n or scale.n_levels <= _ALL_LEVELS]
        for i in shown:
            level, n, first = scale.levels[i], counts[i], i == shown[0]
            table.add_row(
                scale_text(scale) if first else "",
                (", ".join(names) or "all") if first else "",
                scale.label(level),
                str(n),
                f"{n / len(rows):.1%}",
            )
        table.add_section()
    console.print(table)


def _print_lengths(essays: Essays) -> None:
    text = pl.col("full_text")
    lengths = essays.frame.select(
        text.str.count_matches(r"\S+").alias("words"), text.str.len_chars().alias("chars")
    )
    table = Table(title="length")
    for column in ("", "mean", "median", "min", "max"):
        table.add_column(column, justify="right")
    for column in ("words", "chars"):
        values = lengths[column].to_numpy()
        table.add_row(
            column,
            f"{values.mean():.1f}",
            f"{np.median(values):g}",
            str(values.min()),
            str(values.max()),
        )
    console.print(table)


def folds(
    workdir: WorkdirOption = Path(),
    train: Annotated[
        Path | None, typer.Option(help="Training essays; also recorded in configs/data.yaml.")
    ] = None,
    test: Annotated[Path | None, typer.Option(help="Test essays (with --train).")] = None,
    data_format: FormatOption = "auto",
    n_folds: Annotated[int, typer.Option(help="Number of folds.")] = 5,
    seed: Annotated[int, typer.Option(help="Seed of the split.")] = 42,
    method: Annotated[str, typer.Option(help="auto, grouped (by prompt) or stratified.")] = "auto",
    infer_prompts: Annotated[
        int | None,
        typer.Option(help="Cluster essays into K pseudo-prompts and group by them."),
    ] = None,
    from_file: Annotated[
        Path | None, typer.Option(help="Use an existing CSV essay_id,fold instead.")
    ] = None,
    force: Annotated[
        bool, typer.Option(help="Replace a different saved assignment (stale OOF files).")
    ] = False,
) -> None:
    """Assign the training essays to folds once and save folds.csv + folds.json."""
    if method not in ("auto", "grouped", "stratified"):
        raise AesError(f"unknown --method '{method}' (valid: auto, grouped, stratified)")
    ws = workspace(workdir)
    config = None if train is None else _data_config(ws, train, test, data_format)
    if config is None:
        if test is not None or data_format != "auto":
            raise AesError("--test and --format go with --train (or edit configs/data.yaml)")
        essays, _ = load_workspace_dataset(ws)
    else:
        essays, _ = load_dataset(config, ws.root)
    if from_file is not None:
        assignment = read_folds_file(from_file, essays)
    else:
        assignment = assign_folds(
            essays,
            n_folds,
            seed=seed,
            method=cast(Method, method),
            infer_prompts=infer_prompts,
        )
    path = save_folds(ws, assignment, force=force)
    if config is not None:  # only once the folds are saved: both must describe the same data
        _write_data_config(ws, config)
    _print_folds(essays, assignment)
    console.print(f"method {assignment.method}, hash [bold]{assignment.hash}[/bold], saved {path}")


def _relative(ws: Workspace, path: Path) -> Path:
    """Inside the workspace: relative, so the workspace can move; else absolute."""
    resolved = path.expanduser().resolve()
    return resolved.relative_to(ws.root) if resolved.is_relative_to(ws.root) else resolved


def _data_config(ws: Workspace, train: Path, test: Path | None, data_format: str) -> DataConfig:
    """The new data config; other settings (scales, columns) survive only for the same file."""
    new_train = _relative(ws, train)
    fields: dict[str, object] = {}
    if ws.data_config_path.is_file():
        old = load_config(DataConfig, ws.data_config_path)
        if old.train == new_train:
            fields = old.model_dump(exclude={"train", "test", "format"})
    return DataConfig.model_validate(
        {
            **fields,
            "train": new_train,
            "test": None if test is None else _relative(ws, test),
            "format": data_format,
        }
    )


def _write_data_config(ws: Workspace, config: DataConfig) -> None:
    data = config.model_dump(mode="json", exclude_defaults=True)
    write_text_atomic(ws.data_config_path, yaml.safe_dump(data, sort_keys=False))


def _print_folds(essays: Essays, assignment: Folds) -> None:
    """Fold sizes and, per fold, the share of each score level (global scale) or the mean
    normalised score (per-prompt scales), so a lopsided split shows at a glance."""
    fold = assignment.fold_array(essays)
    scale = None if essays.scales.is_per_prompt else essays.scales.default
    what = "% of the fold at each score level" if scale else "mean normalised score (0-1)"
    table = Table(title=f"{assignment.n_folds} folds; {what}")
    for column in ("fold", "essays", "prompts"):
        table.add_column(column, justify="right")
    labels = [scale.label(v) for v in scale.levels] if scale is not None else ["mean score"]
    for label in labels:
        table.add_column(label, justify="right")
    fold_prompts = essays.prompts
    if "prompt" in assignment.frame.columns:  # inferred prompts live only in the folds
        lookup = dict(assignment.frame.select("essay_id", "prompt").iter_rows())
        fold_prompts = np.asarray([lookup[i] for i in essays.ids], dtype=object)
    normalised = essays.scales.normalise(essays.scores, essays.prompts)
    for k in [*range(assignment.n_folds), None]:
        rows = np.arange(len(essays)) if k is None else np.flatnonzero(fold == k)
        n_prompts = len({p for p in fold_prompts[rows] if p is not None})
        if scale is not None:
            counts = np.bincount(scale.to_index(essays.scores[rows]), minlength=scale.n_levels)
            cells = [f"{100 * c / len(rows):.0f}" for c in counts]
        else:
            cells = [f"{normalised[rows].mean():.3f}"]
        name = "all" if k is None else str(k)
        if k is None:
            table.add_section()
        table.add_row(name, str(len(rows)), str(n_prompts or "-"), *cells)
    console.print(table)
