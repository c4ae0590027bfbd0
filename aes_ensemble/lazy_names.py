"""Names a package exports but imports on first use (PEP 562 ``__getattr__``), so importing
the package stays light: ``import aes_ensemble`` must not load scikit-learn or torch."""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Mapping
from typing import Any


def lazy_getattr(package: str, where: Mapping[str, str]) -> Callable[[str], Any]:
    """A module ``__getattr__`` for ``package``: name -> the module (``where[name]``) that
    defines it, imported when the name is first asked for and then kept in the package."""

    def attribute(name: str) -> Any:
        if name not in where:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(where[name]), name)
        setattr(sys.modules[package], name, value)
        return value

    return attribute
