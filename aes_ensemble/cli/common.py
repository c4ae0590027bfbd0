"""Options every command shares."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from aes_ensemble.workspace import Workspace

# soft_wrap: long lines (file paths) stay whole, so they can be copied; tables still fit.
console = Console(soft_wrap=True)
err_console = Console(stderr=True, soft_wrap=True)

WorkdirOption = Annotated[
    Path,
    typer.Option(
        "--workdir",
        "-w",
        help="Workspace folder (configs/, base_models/, oof/); default: the current folder.",
        envvar="AES_WORKDIR",
    ),
]


def workspace(workdir: Path) -> Workspace:
    return Workspace.at(workdir)
