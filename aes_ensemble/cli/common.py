"""Options every command shares."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from aes_ensemble.workspace import Workspace

console = Console()
err_console = Console(stderr=True)

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
