"""Entry point: builds the Typer app from the command modules and turns bad input into
``error: ...`` on stderr with exit code 2, never a traceback.

Usage mistakes (a misspelled command, an unknown option, an option without its value) are
click's ``UsageError``. typer >= 0.2x raises them from its own copy of click (``typer._click``),
older typer from click itself, so the classes are taken from typer's own ``BadParameter``
rather than imported from ``click``: whichever click typer uses, they are caught.
"""

from __future__ import annotations

import difflib
import functools
import re
import sys
from importlib import metadata
from typing import Annotated, Any

import typer
import typer.main

from aes_ensemble.errors import AesError, did_you_mean

PROG = "aes-ensemble"

app = typer.Typer(
    name=PROG,
    help="Score essays with base learners, stacking and QWK thresholds.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)


def package_version() -> str:
    """The installed distribution's version (the source tree's when it is not installed)."""
    try:
        return metadata.version(PROG)
    except metadata.PackageNotFoundError:
        from aes_ensemble.version import __version__

        return __version__


def _print_version(value: bool) -> None:
    if value:
        print(f"{PROG} {package_version()}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_print_version, is_eager=True, help="Print the version and exit."
        ),
    ] = False,
) -> None:
    """Score essays with base learners, stacking and QWK thresholds."""


def _click_class(name: str) -> type[Exception]:
    """The exception class ``name`` of the click typer runs on (vendored or not)."""
    for cls in typer.BadParameter.__mro__:
        if cls.__name__ == name:
            return cls
    raise LookupError(f"typer.BadParameter does not derive from a click {name}")


def _type_label(param: Any, ctx: Any) -> str | None:
    """typer >= 0.2x writes a parameter's Python type as ``<str>``, ``<path>``, ``<list[str]>``:
    the label click always showed (TEXT, PATH, INTEGER), or None where it shows none."""
    shown = param.display_type_rich(ctx) if hasattr(param, "display_type_rich") else None
    if not (isinstance(shown, str) and shown.startswith("<")):
        return None
    inner = shown.strip("<>.").removeprefix("list[").rstrip("]")
    return {"str": "TEXT", "int": "INTEGER", "float": "FLOAT"}.get(inner, inner.upper())


def _argument_usage(param: Any) -> str:
    """click's usage piece of an argument: NAME, [NAME], NAME... or [NAME]..."""
    name = param.metavar
    piece = name if param.required else f"[{name}]"
    return piece + ("..." if param.nargs != 1 else "")


def _plain_placeholders(command: Any) -> None:
    """Help in click's words: ``NAME [OVERRIDES]...``, ``--fold TEXT``, flags without a type,
    instead of typer 0.2x's ``{name} [overrides]...``, ``<str>`` and ``<bool>``. A no-op on a
    typer that already prints these (the parameters it does not mark ``<...>``)."""
    ctx = command.context_class(command, info_name=command.name)
    help_option = command.get_help_option(ctx)
    for param in [*command.params, *([help_option] if help_option is not None else [])]:
        label = _type_label(param, ctx)
        if label is None or param.metavar is not None:
            continue
        if param.param_type_name == "argument":
            param.metavar = param.name.upper()
            param.display_type_rich = lambda ctx: None
            param.get_usage_pieces = lambda ctx, p=param: [_argument_usage(p)]
        else:
            param.metavar = "" if getattr(param, "is_flag", False) else label
    for sub in getattr(command, "commands", {}).values():
        _plain_placeholders(sub)


@functools.cache
def command() -> Any:
    """The click command of ``app``, built once: each module adds its commands (imported here so
    ``--help`` lists them all), then the help placeholders are set."""
    from aes_ensemble.cli import (
        data_commands,
        demo_commands,
        fit_commands,
        report_commands,
        score_commands,
        serve_commands,
        stack_commands,
        tune_commands,
        validity_commands,
    )

    for module in (
        data_commands,
        fit_commands,
        stack_commands,
        report_commands,
        validity_commands,
        demo_commands,
        score_commands,
        serve_commands,
        tune_commands,
    ):
        module.register(app)
    built = typer.main.get_command(app)
    _plain_placeholders(built)
    return built


def _is(exc: Exception, name: str) -> bool:
    """``exc`` is click's exception ``name``, or derives from it."""
    return any(cls.__name__ == name for cls in type(exc).__mro__)


def _usage_message(exc: Any) -> str:
    """The error of a usage mistake; an unknown option names the closest one."""
    if _is(exc, "NoSuchOption") and exc.ctx is not None:
        names = [o for p in exc.ctx.command.get_params(exc.ctx) for o in p.opts + p.secondary_opts]
        return f"{exc.message}{did_you_mean(exc.option_name, names)}"
    message = str(exc.format_message())
    unknown = re.fullmatch(r"No such command '(.+)'\.", message)
    commands = getattr(exc.ctx.command, "commands", None) if exc.ctx is not None else None
    if unknown and commands:  # click < 8.2 names no close command; say it as later ones do
        close = difflib.get_close_matches(unknown.group(1), list(commands), n=1)
        message += f" Did you mean '{close[0]}'?" if close else ""
    return message


def _context_of(args: list[str]) -> Any:
    """The context of the deepest command named in ``args``: click raises some usage errors
    (an option without its value) before it has one."""
    cmd = command()
    ctx = cmd.context_class(cmd, info_name=PROG)
    for word in args:
        sub = getattr(cmd, "commands", {}).get(word)
        if sub is None:
            continue
        cmd = sub
        ctx = cmd.context_class(cmd, info_name=word, parent=ctx)
    return ctx


def _show_usage_error(exc: Any, args: list[str]) -> int:
    """The usage line, where to find help, and one ``error:`` line; a bare group, its help."""
    if _is(exc, "NoArgsIsHelpError"):  # typer's rich help is printed as the error is made
        if message := str(exc.format_message()).strip():
            print(message)
        return 0
    ctx = exc.ctx if exc.ctx is not None else _context_of(args)
    print(ctx.get_usage(), file=sys.stderr)
    print(f"Try '{ctx.command_path} --help' for help.", file=sys.stderr)
    print(f"error: {_usage_message(exc)}", file=sys.stderr)
    return int(exc.exit_code)


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else list(argv)
    try:
        code = command().main(args=args, prog_name=PROG, standalone_mode=False)
    except AesError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except _click_class("UsageError") as exc:
        return _show_usage_error(exc, args)
    except _click_class("ClickException") as exc:
        print(f"error: {exc.format_message()}", file=sys.stderr)  # type: ignore[attr-defined]
        return int(exc.exit_code)  # type: ignore[attr-defined]
    except typer.Exit as exc:
        return exc.exit_code
    except (typer.Abort, KeyboardInterrupt):
        code = 130
    if code == 130:  # typer >= 0.2x turns Ctrl-C into exit code 130 without a word
        print("error: interrupted; finished folds are kept", file=sys.stderr)
    return code if isinstance(code, int) else 0


if __name__ == "__main__":
    sys.exit(main())
