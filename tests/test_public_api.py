"""The front door: ``import aes_ensemble as aes`` gives the names of the job's steps, lazily."""

from __future__ import annotations

import importlib
import inspect
import subprocess
import sys

import pytest

import aes_ensemble as aes

HEAVY = ("numpy", "polars", "sklearn", "scipy", "torch", "lightgbm", "pydantic", "optuna")


def test_every_advertised_name_is_the_object_its_module_defines() -> None:
    for name in aes.__all__:
        value = getattr(aes, name)
        if name == "__version__":
            assert value == importlib.import_module("aes_ensemble.version").__version__
            continue
        module = importlib.import_module(inspect.getmodule(value).__name__)  # type: ignore[union-attr]
        assert getattr(module, name) is value, name
        assert inspect.getdoc(value), f"aes.{name} has no docstring"
    assert set(aes.__all__) <= set(dir(aes))  # a notebook's tab completion lists them


def test_a_name_that_is_not_advertised_is_an_attribute_error() -> None:
    with pytest.raises(AttributeError, match="has no attribute 'fit_many'"):
        aes.fit_many  # noqa: B018


def test_importing_the_package_loads_no_library_until_a_name_is_used() -> None:
    probe = (
        "import sys\n"
        "import aes_ensemble as aes\n"
        "before = {m.partition('.')[0] for m in sys.modules}\n"
        "aes.qwk\n"
        "after = {m.partition('.')[0] for m in sys.modules}\n"
        "print(' '.join(sorted(before)), '|', ' '.join(sorted(after)))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=120, check=True
    )
    before, after = (set(part.split()) for part in result.stdout.split("|"))
    assert before & set(HEAVY) == set(), before
    assert "numpy" in after  # the name loaded its module, and only then
