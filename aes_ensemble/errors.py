"""The one exception for bad input. The CLI prints it as a single ``error: ...`` line, exit 2."""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from pathlib import Path


class AesError(Exception):
    """Bad input the user can fix: names the file, the row or key, and what is wrong.

    ``row`` is the 1-based data row (the header is not counted), as a spreadsheet user counts.
    """

    def __init__(
        self,
        message: str,
        *,
        path: str | Path | None = None,
        row: int | None = None,
        key: str | None = None,
    ) -> None:
        self.message = message
        self.path = None if path is None else Path(path)
        self.row = row
        self.key = key
        super().__init__(str(self))

    def __str__(self) -> str:
        where = []
        if self.path is not None:
            where.append(str(self.path))
        if self.row is not None:
            where.append(f"row {self.row}")
        if self.key is not None:
            where.append(f"key '{self.key}'")
        return f"{': '.join(where)}: {self.message}" if where else self.message


def did_you_mean(word: str, choices: Iterable[str]) -> str:
    """A ``" (did you mean 'x'?)"`` suffix naming the closest choice, or the valid choices."""
    options = sorted(choices)
    close = difflib.get_close_matches(word, options, n=1, cutoff=0.5)
    if close:
        return f" (did you mean '{close[0]}'?)"
    return f" (valid: {', '.join(options)})" if options else ""
