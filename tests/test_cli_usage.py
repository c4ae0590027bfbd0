"""Usage mistakes on the command line: the usage line and one ``error:`` line, exit 2, never a
traceback; a bare command prints its help; ``--version``; help without typer's placeholders."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from collections.abc import Callable
from importlib import metadata
from pathlib import Path
from typing import Any

import pytest

MISTAKES = {
    ("fit-bas",): "No such command 'fit-bas'. Did you mean 'fit-base'?",
    ("stak",): "No such command 'stak'. Did you mean 'stack'?",
    ("fit-base", "lgbm", "--folds", "1"): "No such option: --folds (did you mean '--fold'?)",
    ("stack", "--meta"): "Option '--meta' requires an argument.",
    ("data", "chek"): "No such command 'chek'. Did you mean 'check'?",
    ("oof", "imprt"): "No such command 'imprt'. Did you mean 'import'?",
    ("fit-base",): "Missing argument 'NAME'.",
}
COMMANDS = [
    (),
    ("folds",),
    ("fit-base",),
    ("stack",),
    ("predict",),
    ("report",),
    ("demo",),
    ("data",),
    ("data", "check"),
    ("oof",),
    ("oof", "import"),
]
# What the commands use; none may load before one runs (docs/benchmarks.md, "Start-up").
LIBRARIES = (
    "sklearn", "torch", "polars", "numpy", "scipy", "pandas", "lightgbm", "xgboost", "optuna",
    "ray", "transformers", "sentence_transformers", "statsmodels", "matplotlib", "pydantic",
)  # fmt: skip
PLACEHOLDER = re.compile(r"<(?:bool|str|int|float|path|file|list\[\w+\])\.*>|\{\w+\}")


def console_script() -> Path:
    """The installed ``aes-ensemble`` next to this interpreter (the virtualenv's), else on PATH."""
    beside = Path(sys.executable).parent / "aes-ensemble"
    found = beside if beside.is_file() else shutil.which("aes-ensemble")
    if found is None:
        pytest.skip("the aes-ensemble console script is not installed (pip install -e .)")
    return Path(found)


def test_installed_script_answers_a_misspelled_command_without_a_traceback() -> None:
    result = subprocess.run(
        [str(console_script()), "fit-bas"],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "COLUMNS": "100"},
    )
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert lines[0].startswith("Usage: aes-ensemble [OPTIONS] COMMAND"), result.stderr
    assert lines[-1] == "error: No such command 'fit-bas'. Did you mean 'fit-base'?"
    assert sum(line.startswith("error:") for line in lines) == 1
    assert result.stdout == ""


@pytest.mark.parametrize("args", list(MISTAKES), ids=" ".join)
def test_usage_mistake_prints_usage_and_one_error_line(
    args: tuple[str, ...], run_cli: Callable[..., Any]
) -> None:
    result = run_cli(*args)
    assert result.exit_code == 2, (result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    command = " ".join(a for a in args if a in {"fit-base", "stack", "data", "oof"})
    assert lines[0].startswith(f"Usage: aes-ensemble {command}".rstrip()), result.stderr
    assert lines[-1] == f"error: {MISTAKES[args]}", result.stderr
    assert sum(line.startswith("error:") for line in lines) == 1


@pytest.mark.parametrize("args", [(), ("data",), ("oof",)], ids=lambda a: " ".join(a) or "bare")
def test_a_bare_command_prints_its_help(args: tuple[str, ...], run_cli: Callable[..., Any]) -> None:
    result = run_cli(*args)
    assert result.exit_code == 0, result.stderr
    assert result.stderr == ""
    assert len(re.findall(rf"Usage: aes-ensemble {' '.join(args)}.*COMMAND", result.stdout)) == 1
    assert "Commands" in result.stdout


def test_version_is_the_installed_package_version(run_cli: Callable[..., Any]) -> None:
    result = run_cli("--version")
    assert result.exit_code == 0, result.stderr
    assert result.stdout == f"aes-ensemble {metadata.version('aes-ensemble')}\n"


def test_the_command_line_loads_no_library_of_the_commands_before_one_runs() -> None:
    """``--version``, ``--help`` and usage mistakes answer at once: building every command's
    parser (what they all need) imports none of the libraries the commands use."""
    probe = (
        "import sys\n"
        "from aes_ensemble.cli.main import command\n"
        "command()\n"
        "print(' '.join(sorted({name.partition('.')[0] for name in sys.modules})))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=120, check=True
    )
    assert set(result.stdout.split()) & set(LIBRARIES) == set(), result.stdout


def test_demo_help_names_the_meta_learner_the_demo_uses(run_cli: Callable[..., Any]) -> None:
    from aes_ensemble.demo import DEMO_META

    result = run_cli("demo", "--help")
    assert result.exit_code == 0, result.stderr
    assert f"default: {DEMO_META}" in " ".join(result.stdout.split())


@pytest.mark.parametrize("args", COMMANDS, ids=lambda a: " ".join(a) or "aes-ensemble")
def test_help_shows_no_type_placeholders_at_80_columns(
    args: tuple[str, ...], run_cli: Callable[..., Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "80")
    result = run_cli(*args, "--help")
    assert result.exit_code == 0, result.stderr
    assert "Usage: aes-ensemble" in result.stdout
    assert PLACEHOLDER.findall(result.stdout) == [], result.stdout
    assert max(len(line) for line in result.stdout.splitlines()) <= 80


def test_test_run_sums_up_skips_by_reason_and_reports_failures_in_full(tmp_path: Path) -> None:
    """A clean clone skips every test of the real corpora: one line per reason, not per test."""
    repo = Path(__file__).resolve().parents[1]
    (tmp_path / "test_sample.py").write_text(
        "import pytest\n"
        "@pytest.mark.parametrize('k', range(3))\n"
        "def test_needs_data(k):\n    pytest.skip('needs ../shared/data')\n"
        "def test_needs_gpu():\n    pytest.skip('needs a GPU')\n"
        "def test_broken():\n    assert 1 == 2\n",
        encoding="utf-8",
    )
    # `-p conftest` from tests/ itself: a dependency (textstat) installs a top-level `tests`
    # package that would shadow the repository's namespace package `tests`.
    options = ["-c", str(repo / "pyproject.toml"), "-p", "conftest", "-p", "no:cacheprovider"]
    env = {**os.environ, "PYTHONPATH": str(repo / "tests")}
    result = subprocess.run(
        [sys.executable, "-m", "pytest", *options, "--rootdir", str(tmp_path), str(tmp_path)],
        cwd=repo,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 1, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    assert "3 tests skipped: needs ../shared/data" in lines, result.stdout
    assert "1 test skipped: needs a GPU" in lines, result.stdout
    assert not any(line.startswith("SKIPPED") for line in lines), result.stdout
    assert any(line.startswith("FAILED") and "test_broken" in line for line in lines)
    assert "assert 1 == 2" in result.stdout
