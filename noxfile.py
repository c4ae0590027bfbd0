"""Developer sessions. They run in the current environment, which ``scripts/dev.py`` creates
(CPU torch where there is no GPU): ``python3 scripts/dev.py nox -s lint``."""

from __future__ import annotations

import nox

nox.options.default_venv_backend = "none"
nox.options.sessions = ["lint", "tests"]

PACKAGES = ["aes_ensemble", "tests", "bench", "scripts", "noxfile.py"]


@nox.session
def tests(session: nox.Session) -> None:
    """The test suite; tests that need ../shared/data skip with a reason where it is absent."""
    session.run("pytest", *(session.posargs or ["-q"]))


@nox.session
def lint(session: nox.Session) -> None:
    """ruff (rules and formatting) and mypy on the package."""
    session.run("ruff", "check", *PACKAGES)
    session.run("ruff", "format", "--check", *PACKAGES)
    session.run("mypy", "aes_ensemble")


@nox.session
def fmt(session: nox.Session) -> None:
    """Apply ruff's fixes and formatting."""
    session.run("ruff", "check", "--fix", *PACKAGES)
    session.run("ruff", "format", *PACKAGES)


@nox.session
def demo(session: nox.Session) -> None:
    """The quickstart: folds, CPU learners, stack, report on the embedded sample."""
    session.run("aes-ensemble", "demo", *session.posargs)


@nox.session
def bench(session: nox.Session) -> None:
    """Quality and speed benchmarks; pass data paths after --, see bench/README.md."""
    session.run("python", "-m", "bench", *session.posargs)
