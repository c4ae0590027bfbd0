"""``aes-ensemble validity``: a workspace's validity document, and its flags in the terminal."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from aes_ensemble.cli.common import WorkdirOption, console, workspace

StackOption = Annotated[
    str | None,
    typer.Option(
        "--stack", help="Stack whose flags to print; default: the best stack (or learner)."
    ),
]


def register(app: typer.Typer) -> None:
    """Add ``validity`` to ``app``."""
    app.command("validity")(validity)


def validity(workdir: WorkdirOption = Path(), stack: StackOption = None) -> None:
    """Write reports/validity.json (RSMTool's statistics for every model) and print the flags.

    Flags are findings, not failures: the command exits 0 with or without them."""
    from aes_ensemble.report import write_validity  # statsmodels loads only for this command

    found = write_validity(workspace(workdir), stack)
    print_flags(found.document, found.featured, console)
    console.print(f"wrote {found.path}")


PERCENT_RULES = frozenset({"level_share_diff", "hh_exact_low", "hh_adjacent_low"})
"""Rules on percentages, printed with one decimal; the rest are coefficients (three)."""


def _value(flag: Mapping[str, Any]) -> str:
    value = flag["value"]
    if value is None:
        return "—"
    return f"{value:.1f}" if flag["rule"] in PERCENT_RULES else f"{value:.3f}"


def print_flags(document: Mapping[str, Any], name: str, out: Console) -> None:
    """The flagged rows of model ``name`` (and of the human raters), then each model's count."""
    from aes_ensemble.report.validity_doc import flag_where

    model = next(m for m in document["models"] if m["name"] == name)
    flags = [*document["flags"], *model["flags"]]
    if flags:
        table = Table(title=f"{name}: {len(flags)} flagged rows")
        for column in ("where", "statistic", "value", "rule"):
            table.add_column(column, justify="right" if column == "value" else "left")
        for flag in flags:
            table.add_row(flag_where(flag), flag["statistic"], _value(flag), flag["rule"])
        out.print(table)
        for key in dict.fromkeys(f["rule"] for f in flags):
            rule = document["rules"][key]
            out.print(f"{key}: {rule['text']} (source: {rule['source']})", highlight=False)
    else:
        out.print(f"{name}: no rule is broken")
    summary = Table(title="flags per model (levels after cross-fitted cut points)")
    for column in ("model", "QWK", "flags"):
        summary.add_column(column, justify="left" if column == "model" else "right")
    for m in document["models"]:
        qwk = m["overall"]["levels"]["wtkappa"]
        label = f"{m['name']} (stack)" if m["is_stack"] else m["name"]
        summary.add_row(label, "—" if qwk is None else f"{qwk:.4f}", str(len(m["flags"])))
    out.print(summary)
    for note in document["notes"]:
        out.print(f"note: {note}", highlight=False)
