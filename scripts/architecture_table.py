"""Write (or check) the import table of docs/architecture.md from the code itself.

    python scripts/architecture_table.py          # rewrite the table between the markers
    python scripts/architecture_table.py --check  # exit 1, naming what differs, if it is stale

Why: a hand-written table of who imports whom is wrong after the first refactor, and a newcomer
trusts it. Here every row comes from the code: the imports from grimp's graph (the graph
import-linter checks the layers on, imports inside functions and under ``TYPE_CHECKING``
included), the job from the module's own docstring, read from the file without importing it.
``tests/test_architecture.py`` fails when the committed table differs from what the code gives.
"""

from __future__ import annotations

import argparse
import ast
import importlib.util
import os
import re
import sys
import tempfile
from pathlib import Path
from typing import NamedTuple

import grimp

PACKAGE = "aes_ensemble"
ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "architecture.md"
BEGIN = "<!-- import-table:begin -->"
END = "<!-- import-table:end -->"
HEADER = "| module | what it is | imports |\n| --- | --- | --- |"
# The end of a docstring's first sentence: a stop followed by a space or the end, except after
# an abbreviation ("e.g.", "i.e.", "et al.").
SENTENCE_END = re.compile(r"(?<!\be\.g)(?<!\bi\.e)(?<!\bal)(?<!\bvs)[.!?](?=\s|$)")
SHOWN = 5  # names listed per kind of difference in a --check message


class Row(NamedTuple):
    module: str  # short name: ``learners.base``, the package root as ``aes_ensemble``
    what: str  # the docstring's first sentence, on one line
    imports: tuple[str, ...]  # short names of the package's modules it imports directly, sorted


def short_name(module: str) -> str:
    """``aes_ensemble.learners.base`` -> ``learners.base``; the root stays ``aes_ensemble``."""
    return module if module == PACKAGE else module.removeprefix(f"{PACKAGE}.")


def first_sentence(docstring: str | None) -> str:
    """The first sentence of the docstring's first paragraph, on one line; "—" without one."""
    if not docstring or not docstring.strip():
        return "—"
    paragraph = " ".join(docstring.strip().split("\n\n")[0].split())
    end = SENTENCE_END.search(paragraph)
    return paragraph[: end.end()] if end else paragraph


def package_dir() -> Path:
    """The folder of the package grimp reads (the same search path, so the same files)."""
    spec = importlib.util.find_spec(PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit(f"error: package {PACKAGE} not found on sys.path")
    return Path(next(iter(spec.submodule_search_locations)))


def module_file(root: Path, module: str) -> Path:
    """The file of ``module``: a package's ``__init__.py``, else ``NAME.py``."""
    parts = module.split(".")[1:]
    folder = root.joinpath(*parts)
    return folder / "__init__.py" if folder.is_dir() else folder.with_suffix(".py")


def table_rows() -> list[Row]:
    """One row per module of the package, sorted by dotted name (the root first)."""
    graph = grimp.build_graph(PACKAGE, cache_dir=None)
    root = package_dir()
    rows = []
    for module in sorted(graph.modules):
        source = module_file(root, module).read_text(encoding="utf-8")
        docstring = ast.get_docstring(ast.parse(source))
        imported = graph.find_modules_directly_imported_by(module)
        rows.append(Row(short_name(module), first_sentence(docstring), _sorted_short(imported)))
    return rows


def _sorted_short(modules: set[str]) -> tuple[str, ...]:
    return tuple(sorted(short_name(m) for m in modules))


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def render_table(rows: list[Row]) -> str:
    """The Markdown table, without the markers."""
    lines = [HEADER]
    for row in rows:
        imports = ", ".join(f"`{name}`" for name in row.imports) or "—"
        lines.append(f"| `{row.module}` | {_cell(row.what)} | {imports} |")
    return "\n".join(lines)


def split_doc(text: str) -> tuple[str, str, str]:
    """``(before, block, after)``: the text up to and including the begin marker's line, the
    block between the markers (stripped), and the text from the end marker's line on."""
    lines = text.splitlines(keepends=True)
    begins = [i for i, line in enumerate(lines) if line.strip() == BEGIN]
    ends = [i for i, line in enumerate(lines) if line.strip() == END]
    if len(begins) != 1 or len(ends) != 1 or begins[0] > ends[0]:
        raise ValueError(f"{_shown(DOC)} needs one line {BEGIN} and, after it, one line {END}")
    b, e = begins[0], ends[0]
    return "".join(lines[: b + 1]), "".join(lines[b + 1 : e]).strip(), "".join(lines[e:])


def _modules_of(block: str) -> dict[str, str]:
    """Row text by module name, for the rows of a table block (header lines aside)."""
    rows = {}
    for line in block.splitlines():
        match = re.match(r"\|\s*`([^`]+)`\s*\|", line)
        if match:
            rows[match.group(1)] = line.strip()
    return rows


def _names(label: str, names: list[str]) -> str:
    more = f" and {len(names) - SHOWN} more" if len(names) > SHOWN else ""
    return f"{label} {', '.join(names[:SHOWN])}{more}"


def difference(current: str, expected: str) -> str | None:
    """None when the blocks are the same, else one line naming the rows that differ."""
    if current.strip() == expected.strip():
        return None
    have, want = _modules_of(current), _modules_of(expected)
    parts = []
    if missing := sorted(want.keys() - have.keys()):
        parts.append(_names("no row for", missing))
    if gone := sorted(have.keys() - want.keys()):
        parts.append(_names("rows for modules that are gone:", gone))
    if changed := sorted(m for m in have.keys() & want.keys() if have[m] != want[m]):
        parts.append(_names("rows that changed:", changed))
    detail = "; ".join(parts) or "the header, the row order or the spacing changed"
    return f"the import table in {_shown(DOC)} is stale ({detail})"


def _shown(path: Path) -> str:
    """``path`` relative to the repository where it is inside it."""
    return str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path)


def write_atomic(path: Path, text: str) -> None:
    """Write ``text`` to a hidden sibling, then rename it over ``path`` (``Path.replace`` is
    ``os.replace``: a reader sees the old file or the new one, never half of one)."""
    handle, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    tmp = Path(name)
    try:
        with os.fdopen(handle, "w", encoding="utf-8", newline="") as out:
            out.write(text)
        tmp.chmod(path.stat().st_mode & 0o777)
        tmp.replace(path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="Write or check the import table of docs/architecture.md."
    )
    parser.add_argument("--check", action="store_true", help="exit 1 if the table is stale")
    args = parser.parse_args(argv)
    sys.path.insert(0, str(ROOT))  # this checkout's package, whatever is installed
    text = DOC.read_text(encoding="utf-8")
    try:
        before, current, after = split_doc(text)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    expected = render_table(table_rows())
    stale = difference(current, expected)
    if args.check:
        if stale:
            print(f"{stale}: run python scripts/architecture_table.py", file=sys.stderr)
            return 1
        return 0
    if stale:
        write_atomic(DOC, f"{before}{expected}\n{after}")
        print(f"rewrote the import table of {_shown(DOC)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
