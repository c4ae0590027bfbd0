"""``score`` and ``export``: a fitted stack scores new essays, here or on another machine."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from aes_ensemble.cli.common import WorkdirOption, console, err_console, workspace
from aes_ensemble.formats import FORMATS
from aes_ensemble.io import require_file

StackOption = Annotated[
    str | None,
    typer.Option("--stack", help="The stack to use (default: the only stack in oof/)."),
]


def register(app: typer.Typer) -> None:
    app.command("score")(score)
    app.command("export")(export)


def score(
    essays: Annotated[
        Path, typer.Argument(help="Essays file (CSV, or ASAP's TSV); scores optional.")
    ],
    workdir: WorkdirOption = Path(),
    bundle: Annotated[
        Path | None,
        typer.Option(help="A bundle folder from `aes-ensemble export` (instead of -w)."),
    ] = None,
    stack_name: StackOption = None,
    output: Annotated[
        Path, typer.Option("--output", "-o", help="Where to write essay_id,score.")
    ] = Path("scores.csv"),
    explain: Annotated[
        bool, typer.Option(help="Add the continuous prediction and one column per learner.")
    ] = False,
    data_format: Annotated[
        str, typer.Option("--format", help=f"File format: {', '.join(FORMATS)}.")
    ] = "auto",
    progress: Annotated[
        bool, typer.Option(help="Show each learner's progress and pace (essays/s).")
    ] = True,
) -> None:
    """Score an essays file with a workspace's stack or a bundle; print QWK where the file has
    scores."""
    require_file(essays)  # before the ensemble loads: a wrong path is answered at once
    import numpy as np

    from aes_ensemble.scoring import Ensemble
    from aes_ensemble.scoring.score_file import score_file

    if bundle is not None:
        ensemble = Ensemble.from_bundle(bundle, stack_name)
    else:
        ensemble = Ensemble.load(workspace(workdir).root, stack_name)
    for note in ensemble.notes:
        err_console.print(f"note: {note}", markup=False)
    done = score_file(
        ensemble, essays, output, data_format=data_format, explain=explain, progress=progress
    )
    for prompt in done.standardised:
        who = "essays without a prompt" if prompt is None else f"prompt '{prompt}'"
        err_console.print(
            f"note: {who} not in the stack's training essays: standardised over its "
            "essays in this file (unseen_prompts: standardise)",
            markup=False,
        )
    counts = dict(zip(*np.unique(done.levels, return_counts=True), strict=True))
    spread = ", ".join(f"{k:g}: {v}" for k, v in sorted(counts.items()))
    console.print(
        f"wrote {output}: {len(done.levels)} essays scored by '{ensemble.stack_name}' ({spread})",
        markup=False,
    )
    if done.qwk is not None:
        console.print(f"QWK against the file's scores: {done.qwk:.4f}", markup=False)


def export(
    out: Annotated[Path, typer.Argument(help="New folder to write the bundle into.")],
    workdir: WorkdirOption = Path(),
    stack_name: StackOption = None,
    half: Annotated[
        bool,
        typer.Option(
            help="Store transformer and embedding weights in fp16: half the size, scores "
            "move a little."
        ),
    ] = False,
) -> None:
    """Write a bundle: what scoring needs (fold models, stack, weights) and a manifest with the
    sha256 of every file, for `aes-ensemble score --bundle` on another machine."""
    from aes_ensemble.scoring import export_bundle

    path = export_bundle(workspace(workdir), out, stack=stack_name, half=half)
    size = sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
    count = sum(1 for p in path.rglob("*") if p.is_file())
    console.print(f"wrote {path}: {count} files, {size / 1e6:.1f} MB", markup=False)
