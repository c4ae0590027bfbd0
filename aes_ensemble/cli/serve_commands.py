"""``serve``: a fitted ensemble answering HTTP requests (the optional ``serve`` extra)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Annotated

import typer

from aes_ensemble.cli.common import WorkdirOption, console
from aes_ensemble.cli.score_commands import StackOption


def register(app: typer.Typer) -> None:
    app.command("serve")(serve)


def serve(
    bundle: Annotated[
        Path | None,
        typer.Option(help="A bundle folder from `aes-ensemble export` (instead of -w)."),
    ] = None,
    stack_name: StackOption = None,
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on (0: any free port).")] = 8000,
    max_essays: Annotated[int, typer.Option(min=1, help="Most essays in one request.")] = 1000,
    max_chars: Annotated[int, typer.Option(min=1, help="Most characters in one essay.")] = 50_000,
    workdir: WorkdirOption = Path(),
) -> None:
    """Score essays over HTTP: POST /score {"essays": [{"id", "text", "prompt"}]}, GET /health."""
    from aes_ensemble.scoring.ensemble import Ensemble
    from aes_ensemble.scoring.server import Limits, address, bind, require_serve
    from aes_ensemble.scoring.server import serve as run_server

    require_serve()
    with bind(host, port) as sock:
        with console.status("loading the ensemble"):
            loaded = Ensemble.load(bundle if bundle is not None else workdir, stack_name)
            # Features of the essays served are computed in memory: written to a workspace's
            # feature cache, one shard per request would grow it without bound.
            ensemble = replace(loaded, cache_dir=None)
            for name in ensemble.learners:  # every fold model now, not on the first request
                ensemble.fitted(name)
        learners = ", ".join(ensemble.learners)
        console.print(f"serving {ensemble.stack_name} ({learners}) on {address(sock)}")
        console.print("POST /score, GET /health; Ctrl-C stops", markup=False)
        run_server(sock, ensemble, Limits(max_essays, max_chars), log_level="info")
