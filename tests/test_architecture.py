"""docs/architecture.md matches the code: its import table is what grimp reports now, and every
module path its prose names in backticks exists, so a reader never opens a module that is gone."""

from __future__ import annotations

import importlib.util
import re
import sys
from pathlib import Path
from types import ModuleType

import pytest

REPO = Path(__file__).resolve().parents[1]
DOC = REPO / "docs" / "architecture.md"
PACKAGE_DIR = REPO / "aes_ensemble"
# `engine.py`, `stacking/run.py`, `aes_ensemble/learners/base.py`, `tests/test_cli_usage.py`
PY_PATH = re.compile(r"`([\w./-]+\.py)`")
# Paths outside the package that the prose may name, relative to the repository root.
REPO_FOLDERS = ("tests/", "bench/", "scripts/", "docs/")


@pytest.fixture(scope="module")
def table() -> ModuleType:
    """scripts/architecture_table.py: a script beside the package, not an installed module."""
    path = REPO / "scripts" / "architecture_table.py"
    spec = importlib.util.spec_from_file_location("architecture_table", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # NamedTuple rows need their module to be importable
    spec.loader.exec_module(module)
    return module


def test_import_table_is_current(table: ModuleType) -> None:
    _, current, _ = table.split_doc(DOC.read_text(encoding="utf-8"))
    expected = table.render_table(table.table_rows())
    stale = table.difference(current, expected)
    assert stale is None, f"{stale}: run python scripts/architecture_table.py"


def test_table_names_every_module(table: ModuleType) -> None:
    """The rows are the package's modules, one each: a module grimp missed would be missing."""
    files = {
        ".".join(p.relative_to(PACKAGE_DIR).with_suffix("").parts).removesuffix(".__init__")
        for p in PACKAGE_DIR.rglob("*.py")
        if (p.parent / "__init__.py").is_file()
    }
    rows = {row.module for row in table.table_rows()}
    assert rows == ({"aes_ensemble"} | files) - {"__init__"}


def test_first_sentence(table: ModuleType) -> None:
    assert table.first_sentence("One. Two.") == "One."
    assert table.first_sentence("Kernels (Cozma et al. 2018).\n\nMore.") == (
        "Kernels (Cozma et al. 2018)."
    )
    assert table.first_sentence("Across\nlines, e.g. this one: 2.0 too") == (
        "Across lines, e.g. this one: 2.0 too"
    )
    assert table.first_sentence(None) == "—"


def test_module_paths_in_prose_exist(table: ModuleType) -> None:
    """Only the prose: the generated table quotes docstrings and has a test of its own."""
    before, _, after = table.split_doc(DOC.read_text(encoding="utf-8"))
    text = before + after
    named = sorted(set(PY_PATH.findall(text)))
    assert len(named) >= 10, "docs/architecture.md names the modules a reader opens"
    missing = []
    for name in named:
        if name.startswith(REPO_FOLDERS):
            path = REPO / name
        else:
            path = PACKAGE_DIR / name.removeprefix("aes_ensemble/")
        if not path.is_file():
            missing.append(name)
    assert not missing, f"docs/architecture.md names modules that do not exist: {missing}"
