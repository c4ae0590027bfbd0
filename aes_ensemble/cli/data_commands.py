"""``aes-ensemble data check`` and ``aes-ensemble folds``: look at the essays, split them once."""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich import box
from rich.table import Table

from aes_ensemble.cli.common import WorkdirOption, console, err_console, workspace
from aes_ensemble.formats import FORMATS
from aes_ensemble.io import require_file

if TYPE_CHECKING:
    from aes_ensemble.data import Essays
    from aes_ensemble.folds import Folds

FormatOption = Annotated[
    str | None,
    typer.Option(
        "--format",
        help=f"File format: {', '.join(FORMATS)} (default: the data config's, else auto).",
        show_default=False,
    ),
]
CheckFormatOption = Annotated[
    str, typer.Option("--format", help=f"File format: {', '.join(FORMATS)}.", show_default=True)
]
ScaleOption = Annotated[
    list[str] | None,
    typer.Option(
        "--scale",
        help="Score scale, e.g. 1-6 or 1-5:0.5; PROMPT=SCALE gives one prompt its own scale "
        "(repeat the option). Default: the format's scales, else inferred from the scores.",
        show_default=False,
    ),
]
CHECK_FOLDS = 5  # `data check` judges rare levels against the default number of folds


_ALL_LEVELS = 15  # wider scales (ASAP 0-60) list only the levels that occur


def register(app: typer.Typer) -> None:
    """Add ``data check`` and ``folds`` to ``app``."""
    data_app = typer.Typer(help="Inspect essay files.", no_args_is_help=True)
    data_app.command("check")(check)
    app.add_typer(data_app, name="data")
    app.command("folds")(folds)


def check(
    file: Annotated[Path, typer.Argument(help="Essays file (CSV, or ASAP's TSV).")],
    data_format: CheckFormatOption = "auto",
    scale: ScaleOption = None,
    second_score: Annotated[
        str | None,
        typer.Option(
            "--second-score",
            help="Column with a second human rating (data.yaml `second_score_column`); "
            "ASAP's two raters are read without it.",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Validate an essays file; print its format, prompts, score levels, how many essays are
    double-scored, lengths and the columns that look like subgroups, with the `folds` line
    that keeps them."""
    require_file(file)  # before the readers load: a wrong path is answered at once
    from aes_ensemble.data import detect_role, inspect_header, read_essays
    from aes_ensemble.folds import check_score_levels
    from aes_ensemble.scales import scales_of_settings

    role = detect_role(file, data_format=data_format)
    scales = scales_of_settings(scale or [])
    essays = read_essays(
        file,
        role=role,
        data_format=data_format,
        scales=scales,
        second_score_column=second_score,
        check_ratings=True,
    )
    notes = check_score_levels(essays, CHECK_FOLDS) if role == "train" else ()
    notes = tuple(f"at {CHECK_FOLDS} folds (the default): {note}" for note in notes)
    console.print(f"[bold]{file}[/bold]: {len(essays)} essays ({role} file, no errors found)")
    found = inspect_header(file, data_format=data_format)
    how = "detected from the columns" if found.detected else "--format"
    console.print(f"format: {found.format} ({how})", markup=False)
    _print_prompts(essays)
    if role == "train":
        _print_levels(essays)
        _print_double_scored(essays)
    _print_lengths(essays)
    _print_subgroups(file, data_format, scale or [], role)
    _warn(notes)


def _print_subgroups(file: Path, data_format: str, scales: list[str], role: str) -> None:
    """The columns that look like subgroups and the exact `folds` line that keeps them."""
    from aes_ensemble.data import subgroup_candidates

    found = subgroup_candidates(file, data_format=data_format)
    if not found:
        console.print(
            "subgroup columns: none found (text columns with 2 to 20 distinct values)",
            markup=False,
        )
        return
    console.print(f"subgroup columns: {', '.join(found)}", markup=False)
    if role != "train":
        return
    words = ["aes-ensemble", "folds", "--train", str(file)]
    if data_format != "auto":
        words += ["--format", data_format]
    for value in scales:
        words += ["--scale", value]
    words += ["--subgroups", ",".join(found)]
    console.print("to report QWK per subgroup, split with:", markup=False)
    console.print(f"  {shlex.join(words)}", markup=False)


def _warn(notes: tuple[str, ...]) -> None:
    for note in notes:
        err_console.print(f"warning: {note}", markup=False)


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
    import numpy as np

    from aes_ensemble.data import scale_text

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
                _share(int(n), len(rows)),
            )
        table.add_section()
    console.print(table)


def _print_double_scored(essays: Essays) -> None:
    """How many essays have two human ratings: the report's human-human baseline."""
    import numpy as np

    ratings = essays.human_ratings()
    if ratings is None:
        console.print(
            "double-scored: none (no second human rating; generic files name one with "
            "--second-score or data.yaml `second_score_column`)",
            markup=False,
        )
        return
    both = int((np.isfinite(ratings[0]) & np.isfinite(ratings[1])).sum())
    console.print(
        f"double-scored: {both} of {len(essays)} essays ({_share(both, len(essays))}) have two "
        "human ratings",
        markup=False,
    )


def _print_lengths(essays: Essays) -> None:
    import numpy as np
    import polars as pl

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
    test: Annotated[Path | None, typer.Option(help="Test essays.")] = None,
    data_format: FormatOption = None,
    scale: ScaleOption = None,
    subgroups: Annotated[
        str | None,
        typer.Option(
            help="Comma-separated subgroup columns for the report's fairness rows, e.g. "
            "gender,grade; '' for none. Default: the data config's; for a new ELLIPSE file, "
            "its gender, grade, race_ethnicity and SES columns.",
            show_default=False,
        ),
    ] = None,
    n_folds: Annotated[int, typer.Option(help="Number of folds.")] = 5,
    seed: Annotated[
        int,
        typer.Option(
            help="Seed of the split: shuffles essays within score levels (stratified) or the "
            "order prompts are placed in (grouped); another seed, another split."
        ),
    ] = 42,
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
    """Assign the training essays to folds once and save folds.csv + folds.json; --train,
    --test, --format, --scale and --subgroups are recorded in configs/data.yaml."""
    from aes_ensemble.splitting import split

    done = split(
        workspace(workdir),
        train=train,
        test=test,
        data_format=data_format,
        scale=scale,
        subgroups=None if subgroups is None else subgroups.split(","),
        n_folds=n_folds,
        seed=seed,
        method=method,
        infer_prompts=infer_prompts,
        from_file=from_file,
        force=force,
    )
    _print_folds(done.essays, done.folds)
    for note in done.notes:
        console.print(f"note: {note}", markup=False)
    _warn(done.folds.notes)
    console.print(
        f"method {done.folds.method}, hash [bold]{done.folds.hash}[/bold], saved {done.path}"
    )


def _share(count: int, total: int) -> str:
    """A share with one decimal; a level too rare for that shows as <0.1%, never as 0."""
    share = 100 * count / total
    return "<0.1%" if 0 < share < 0.05 else f"{share:.1f}%"


def _print_folds(essays: Essays, assignment: Folds) -> None:
    """Fold sizes and, per fold, the share of each score level (global scale) or the mean
    normalised score (per-prompt scales), so a lopsided split shows at a glance."""
    import numpy as np

    fold = assignment.fold_array(essays)
    scale = None if essays.scales.is_per_prompt else essays.scales.default
    what = "% of the fold at each score level" if scale else "mean normalised score (0-1)"
    table = Table(
        title=f"{assignment.n_folds} folds; {what}", box=box.SIMPLE_HEAD, collapse_padding=True
    )
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
            cells = [_share(int(c), len(rows)).removesuffix("%") for c in counts]
        else:
            cells = [f"{normalised[rows].mean():.3f}"]
        name = "all" if k is None else str(k)
        if k is None:
            table.add_section()
        table.add_row(name, str(len(rows)), str(n_prompts or "-"), *cells)
    console.print(table)
