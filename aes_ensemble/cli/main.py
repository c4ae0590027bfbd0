"""Entry point: builds the Typer app from the command modules and turns bad input into
``error: ...`` on stderr with exit code 2, never a traceback."""

from __future__ import annotations

import functools
import sys

import typer

from aes_ensemble.errors import AesError

app = typer.Typer(
    name="aes-ensemble",
    help="Score essays with base learners, stacking and QWK thresholds.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)


@functools.cache
def _register() -> None:
    """Each module adds its commands to ``app``, once however often ``main`` runs; imported here
    so ``--help`` lists them all."""
    from aes_ensemble.cli import (
        data_commands,
        demo_commands,
        fit_commands,
        report_commands,
        stack_commands,
    )

    for module in (data_commands, fit_commands, stack_commands, report_commands, demo_commands):
        module.register(app)


def main(argv: list[str] | None = None) -> int:
    _register()
    try:
        app(args=argv, standalone_mode=False)
    except AesError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except typer.Exit as exc:
        return exc.exit_code
    except typer.Abort:
        print("error: aborted", file=sys.stderr)
        return 130
    except KeyboardInterrupt:
        print("error: interrupted; finished folds are kept", file=sys.stderr)
        return 130
    except Exception as exc:  # click's usage errors
        import click

        if isinstance(exc, click.ClickException):
            exc.show()
            return exc.exit_code
        raise
    return 0


if __name__ == "__main__":
    sys.exit(main())
