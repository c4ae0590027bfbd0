"""Developer sessions. They run in the current environment, which ``scripts/dev.py`` creates
(CPU torch where there is no GPU): ``python3 scripts/dev.py nox -s lint``."""

from __future__ import annotations

import runpy
import sys
from pathlib import Path

import nox

nox.options.default_venv_backend = "none"
nox.options.sessions = ["lint", "tests"]

PACKAGES = ["aes_ensemble", "tests", "bench", "scripts", "noxfile.py"]
ROOT = Path(__file__).resolve().parent
SHARED_DATA = ROOT.parent / "shared" / "data"
RSMTOOL = "rsmtool==12.0.0"


# One worker per core, a whole test file to each (its module fixtures are built once); the
# slowest 15 tests printed at the end, so growth shows.
TEST_OPTIONS = ["-n", "auto", "--dist", "loadfile", "--durations=15"]


@nox.session
def tests(session: nox.Session) -> None:
    """The test suite; tests that need ../shared/data skip with a reason where it is absent.

    The order is random (pytest-randomly), so a test that passes only after another one fails;
    the seed is printed at the top and ``-- --randomly-seed=N`` replays it (``-p no:randomly``:
    file order). Arguments after ``--`` are added to TEST_OPTIONS (``-n 0``: one process)."""
    session.run("pytest", *TEST_OPTIONS, *session.posargs)


@nox.session
def lint(session: nox.Session) -> None:
    """ruff (rules and formatting), mypy on the package, and import-linter's contracts on its
    layers, import circles and what the library never imports (pyproject.toml,
    ``[tool.importlinter]``)."""
    session.run("ruff", "check", *PACKAGES)
    session.run("ruff", "format", "--check", *PACKAGES)
    session.run("mypy", "aes_ensemble")
    session.run("lint-imports")


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


@nox.session(venv_backend="uv", reuse_venv=False)
def peer(session: nox.Session) -> None:
    """The validity statistics against ETS's RSMTool: rsmeval on the same predictions (ASAP with
    both raters, ELLIPSE with its subgroups), every statistic to 1e-6 (bench/peer_rsmtool.py).

    RSMTool lives in this session's own environment, built afresh with uv (its pins never meet
    the project's); the project's side runs in the interpreter that runs nox. Pass
    ``-- --workdir DIR`` to keep the fitted learner elsewhere than bench/runs/peer."""
    if not (SHARED_DATA / "asap-aes").is_dir() or not (SHARED_DATA / "ellipse").is_dir():
        session.skip(f"{SHARED_DATA} has no asap-aes/ and ellipse/: the check needs both corpora")
    # Local wheel folders as scripts/dev.py finds them (a machine without internet keeps them).
    pip_find_links = runpy.run_path(str(ROOT / "scripts" / "dev.py"))["pip_find_links"]
    local = [arg for folder in pip_find_links() for arg in ("--find-links", folder)]
    session.install(RSMTOOL, *local)
    rsm_python = Path(session.virtualenv.bin) / "python"
    session.run(
        sys.executable,
        "-m",
        "bench.peer_rsmtool",
        "--rsm-python",
        str(rsm_python),
        "--data",
        str(SHARED_DATA),
        *session.posargs,
        external=True,
    )
