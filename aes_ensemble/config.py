"""Typed configs from YAML plus dot-list overrides (``train.learning_rate=3e-5``).

Every model forbids unknown keys; the error names the file, the dotted key and the closest valid
key, so a misspelled setting never passes silently.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Literal, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError

from aes_ensemble.errors import AesError, did_you_mean

M = TypeVar("M", bound=BaseModel)

COMMAND_LINE = "command line"
"""Where a ``key=value`` override came from: errors about it name this, not the config file."""


class StrictModel(BaseModel):
    """Base of every config: unknown keys are errors, values are validated, instances frozen."""

    model_config = ConfigDict(extra="forbid", frozen=True, protected_namespaces=())


class DataConfig(StrictModel):
    """Where the essays are and how to read them (``configs/data.yaml``)."""

    train: Path
    test: Path | None = None
    format: Literal["auto", "aes2", "asap", "ellipse", "generic"] = "auto"
    scale: str | None = None
    per_prompt_scales: dict[str, str] | None = None
    subgroups: list[str] = []
    id_column: str | None = None
    text_column: str | None = None
    score_column: str | None = None
    prompt_column: str | None = None
    source_column: str | None = None
    # A second human rating beside the score (the score is the first): the report's
    # human-human agreement, degradation and PRMSE baseline.
    second_score_column: str | None = None


def read_yaml(path: str | Path) -> dict[str, Any]:
    file = Path(path)
    if file.is_dir():
        raise AesError("is a folder, not a config file", path=file)
    if not file.is_file():
        raise AesError("config file not found", path=file)
    try:
        data = yaml.safe_load(file.read_bytes().decode("utf-8"))
    except OSError as exc:
        raise AesError(f"cannot read the config ({exc.strerror})", path=file) from None
    except UnicodeDecodeError as exc:
        raise AesError(
            f"invalid UTF-8 at byte offset {exc.start}; restore the file or save it as UTF-8",
            path=file,
        ) from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        row = None if mark is None else mark.line + 1
        raise AesError(
            f"invalid YAML ({getattr(exc, 'problem', exc)})", path=file, row=row
        ) from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise AesError("config must be a mapping of keys to values", path=file)
    return data


def apply_overrides(data: Mapping[str, Any], overrides: Sequence[str]) -> dict[str, Any]:
    """Return a copy of ``data`` with each ``a.b.c=value`` set; the value is parsed as YAML."""
    out: dict[str, Any] = json.loads(json.dumps(data, default=str))
    for item in overrides:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise AesError(f"override '{item}' must look like key.subkey=value", path=COMMAND_LINE)
        parts = key.strip().split(".")
        node = out
        for part in parts[:-1]:
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                raise AesError(
                    f"'{part}' is a value, not a section", path=COMMAND_LINE, key=key.strip()
                )
            node = child
        try:
            node[parts[-1]] = yaml.safe_load(raw) if raw.strip() else ""
        except yaml.YAMLError:
            node[parts[-1]] = raw
    return out


def override_sources(overrides: Sequence[str]) -> dict[str, str]:
    """The dotted key of each ``key=value`` override, mapped to :data:`COMMAND_LINE`: the
    ``sources`` that :func:`validate` blames for a bad value there."""
    return {item.partition("=")[0].strip(): COMMAND_LINE for item in overrides}


def origin(
    key: str | None, path: str | Path | None, sources: Mapping[str, str]
) -> tuple[str | Path | None, str | None]:
    """Where the value at ``key`` came from, as ``(path, key)`` of an ``AesError``.

    A key set by a flag (``--thresholds``) is blamed on the flag alone; one set by a
    ``key=value`` override on the command line with its key; anything else on the file. A key
    inside or above an overridden one counts as overridden (``params={num_leavs: 3}``,
    ``modle.pooling=cls``)."""
    if key:
        parts = key.split(".")
        for given, where in sources.items():
            other = given.split(".")
            n = min(len(parts), len(other))
            if parts[:n] == other[:n]:
                return where, (key if where == COMMAND_LINE else None)
    return path, key


@contextmanager
def blame_sources(path: str | Path | None, sources: Mapping[str, str]) -> Iterator[None]:
    """Re-raise a keyed ``AesError`` that names no file (a config's own ``check()``) against
    the flag, the command line or the file that set the key."""
    try:
        yield
    except AesError as exc:
        if exc.path is not None or exc.key is None:
            raise
        where, key = origin(exc.key, path, sources)
        raise AesError(exc.message, path=where, row=exc.row, key=key) from None


def _choices(expected: str) -> list[str]:
    """``"'a', 'b' or 'c'"`` (pydantic's list of literals) as ``['a', 'b', 'c']``."""
    return re.findall(r"'([^']*)'", expected)


def _field_names(model: type[BaseModel], loc: Sequence[str | int]) -> set[str]:
    """Valid keys at ``loc`` (the parent of the bad key) in ``model``."""
    current: Any = model
    for part in loc:
        field = current.model_fields.get(part) if isinstance(part, str) else None
        if field is None:
            return set()
        annotation = field.annotation
        candidates = [annotation, *getattr(annotation, "__args__", ())]
        current = next(
            (c for c in candidates if isinstance(c, type) and issubclass(c, BaseModel)), None
        )
        if current is None:
            return set()
    return set(current.model_fields)


def validate(
    model: type[M],
    data: Mapping[str, Any],
    *,
    path: str | Path | None = None,
    sources: Mapping[str, str] | None = None,
) -> M:
    """Build ``model`` from ``data``; the first problem becomes one ``AesError`` line.

    ``sources`` maps dotted keys that did not come from ``path`` to where they came from (a
    flag such as ``--thresholds``, or :data:`COMMAND_LINE` for ``key=value`` overrides), so
    the error sends the user to the place they typed the value."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        error = exc.errors()[0]
        loc = [str(p) for p in error["loc"]]
        dotted = ".".join(loc)
        if error["type"] == "extra_forbidden":
            valid = _field_names(model, loc[:-1])
            message = f"unknown key{did_you_mean(loc[-1], valid)}"
        elif error["type"] == "missing":
            message = "required key is missing"
        elif error["type"] == "value_error":  # a validator's own sentence says what to change
            message = str(error["ctx"]["error"])
        elif error["type"] == "literal_error":
            choices = _choices(str(error["ctx"]["expected"]))
            value = str(error.get("input"))
            hint = did_you_mean(value, choices)
            close = hint if hint.startswith(" (did you mean") else ""
            message = f"'{value}' is not one of {', '.join(choices)}{close}"
        else:
            message = f"{error['msg']} (got {error.get('input')!r})"
        where, key = origin(dotted or None, path, sources or {})
        raise AesError(message, path=where, key=key) from None


def load_config(
    model: type[M], path: str | Path, overrides: Sequence[str] = (), **defaults: Any
) -> M:
    """Read ``path`` (YAML), apply ``overrides`` and validate into ``model``; a bad override
    is blamed on the command line, not on ``path``."""
    data = {**defaults, **read_yaml(path)}
    return validate(
        model, apply_overrides(data, overrides), path=path, sources=override_sources(overrides)
    )


def hash_mapping(data: Mapping[str, Any]) -> str:
    """Stable 16-hex digest of a JSON-able mapping: same settings, same hash."""
    canonical = json.dumps(data, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]


def config_hash(config: BaseModel) -> str:
    """The digest of a resolved config."""
    return hash_mapping(config.model_dump(mode="json"))


def dump_yaml(config: BaseModel) -> str:
    return yaml.safe_dump(config.model_dump(mode="json"), sort_keys=False)
