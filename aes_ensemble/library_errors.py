"""Errors of the model libraries as one line naming the config key that caused them.

A LightGBM, XGBoost, scikit-learn or torch error during a fold is almost always a setting the
library refuses (``num_leaves=0``) or a resource it lacks (GPU memory): the user fixes it in the
config, so they need the key and the library's reason, not 30 lines of traceback. Our own bugs
must still surface as tracebacks, so only the libraries' own error types count, and generic
``ValueError``/``RuntimeError``/``OSError`` only when raised inside a library's code.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from types import TracebackType
from typing import Any

from pydantic import BaseModel

from aes_ensemble.errors import AesError

LIBRARIES = {
    "lightgbm": "LightGBM",
    "xgboost": "XGBoost",
    "sklearn": "scikit-learn",
    "torch": "PyTorch",
    "transformers": "Transformers",
    "huggingface_hub": "Hugging Face Hub",
}
# Always the library's: raised for what it was given or lacks, never by our code.
_OWN_TYPES = {
    "lightgbm.basic.LightGBMError",
    "xgboost.core.XGBoostError",
    "sklearn.utils._param_validation.InvalidParameterError",
    "torch.OutOfMemoryError",
}
# A library's only when raised in its code (OSError: a model name Transformers cannot find).
_GENERIC_TYPES = (ValueError, RuntimeError, OSError)
# Library spellings of our keys (XGBoost's native names).
ALIASES = {"eta": "learning_rate", "lambda": "reg_lambda", "alpha": "reg_alpha"}
_LOCATION = re.compile(r"\s+at \S+, line \d+\s*\.?\s*$")  # LightGBM's C++ source position


def _top_module(name: str) -> str:
    return name.split(".", 1)[0]


def _raised_in(tb: TracebackType | None) -> str | None:
    """Top-level module of the innermost Python frame that raised (None: no traceback)."""
    last = None
    while tb is not None:
        last = tb
        tb = tb.tb_next
    if last is None:
        return None
    return _top_module(str(last.tb_frame.f_globals.get("__name__", "")))


def library_of(exc: BaseException) -> str | None:
    """The display name of the library that raised ``exc``, or None when it is not one of
    theirs (then it is ours, and must stay a traceback)."""
    for cls in type(exc).__mro__:
        if f"{cls.__module__}.{cls.__qualname__}" in _OWN_TYPES:
            return LIBRARIES[_top_module(cls.__module__)]
    if isinstance(exc, _GENERIC_TYPES):
        module = _raised_in(exc.__traceback__)
        if module in LIBRARIES:
            return LIBRARIES[module]
    return None


def config_keys(config: BaseModel) -> dict[str, str]:
    """Leaf setting name -> dotted key (``num_leaves`` -> ``params.num_leaves``); names found in
    two sections are left out, since a message naming them cannot say which was meant."""
    found: dict[str, list[str]] = {}

    def walk(items: Any, prefix: str) -> None:
        for name, value in items:
            if isinstance(value, BaseModel):
                walk(value, f"{prefix}{name}.")
            elif isinstance(value, dict):
                walk(value.items(), f"{prefix}{name}.")
            elif name not in ("kind", "seed"):
                found.setdefault(str(name), []).append(f"{prefix}{name}")

    walk(config, "")
    keys = {name: paths[0] for name, paths in found.items() if len(paths) == 1}
    for alias, name in ALIASES.items():
        if name in keys and alias not in keys:
            keys[alias] = keys[name]
    return keys


@contextmanager
def library_errors(where: str, config: BaseModel) -> Iterator[None]:
    """A model library's error inside the block as one line naming ``where`` and the config
    key (:func:`library_error`); ours, and our own ``AesError``, pass unchanged."""
    try:
        yield
    except AesError:
        raise
    except Exception as exc:
        error = library_error(exc, where, config)
        if error is None:
            raise
        raise error from exc


def _value(config: BaseModel, key: str) -> Any:
    value: Any = config
    for part in key.split("."):
        value = value[part] if isinstance(value, dict) else getattr(value, part)
    return value


def _reason(exc: BaseException) -> str:
    lines = [line.strip() for line in str(exc).strip().splitlines() if line.strip()]
    text = lines[0] if lines else type(exc).__name__
    return _LOCATION.sub("", text)


def library_error(exc: BaseException, where: str, config: BaseModel) -> AesError | None:
    """``exc`` as one line (``lgbm fold 0: LightGBM refused params.num_leaves=0: Check failed:
    (num_leaves) > (1)``), or None when it is not a library's error."""
    library = library_of(exc)
    if library is None:
        return None
    reason = _reason(exc)
    keys = config_keys(config)
    hits = [
        (m.start(), keys[name])
        for name in keys
        if (m := re.search(rf"(?<![A-Za-z0-9_]){re.escape(name)}(?![A-Za-z0-9_])", reason))
    ]
    if not hits:  # the message may quote a value instead (a model name it cannot find)
        hits = [
            (reason.find(value), key)
            for key in sorted(set(keys.values()))
            if isinstance(value := _value(config, key), str) and len(value) >= 4 and value in reason
        ]
    if "OutOfMemoryError" in type(exc).__name__:
        return AesError(
            f"{where}: {library} ran out of memory ({reason}); lower the batch size or the "
            "maximum length in the config"
        )
    if hits:
        key = min(hits)[1]
        return AesError(f"{where}: {library} refused {key}={_value(config, key)}: {reason}")
    return AesError(f"{where}: {library} failed: {reason}")
