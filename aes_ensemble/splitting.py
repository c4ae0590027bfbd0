"""``aes-ensemble folds`` as one library call: record the data config, then split the essays once.

The options a user gives (training file, test file, format, scales, subgroups) become
``configs/data.yaml``, merged with the one already there for the same training file; a new
training file starts afresh, with its format written down as detected and, for ELLIPSE, its
demographic columns kept as subgroups (the report's fairness rows need them, and a user who
splits ELLIPSE without them would lose those rows without a word). The data config is written
only once the folds are saved, so both always describe the same essays.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import cast

import yaml

from aes_ensemble.config import DataConfig, load_config, validate
from aes_ensemble.data import Essays, inspect_header, load_dataset, subgroup_candidates
from aes_ensemble.errors import AesError
from aes_ensemble.folds import METHODS, Folds, Method, assign_folds, read_folds_file, save_folds
from aes_ensemble.io import write_text_atomic
from aes_ensemble.scales import scale_settings
from aes_ensemble.workspace import Workspace


@dataclass(frozen=True)
class Split:
    """What ``split`` did: the training essays, their folds, where the folds were saved, and
    notes on what was chosen for the user (subgroup columns kept or left out)."""

    essays: Essays
    folds: Folds
    path: Path
    notes: tuple[str, ...]


def split(
    ws: Workspace,
    *,
    train: Path | None = None,
    test: Path | None = None,
    data_format: str | None = None,
    scale: Sequence[str] | None = None,
    subgroups: Sequence[str] | None = None,
    n_folds: int = 5,
    seed: int = 42,
    method: str = "auto",
    infer_prompts: int | None = None,
    from_file: Path | None = None,
    force: bool = False,
) -> Split:
    """Record the data config the options ask for and save the fold assignment (assigned, or
    ``from_file``'s); ``scale`` as ``--scale`` values (``1-6``, ``PROMPT=0-3``). A different
    saved assignment is replaced only with ``force``."""
    if method not in METHODS:
        raise AesError(f"unknown --method '{method}' (valid: {', '.join(METHODS)})")
    if from_file is not None and infer_prompts is not None:
        raise AesError("--from-file takes the folds from the file; drop --infer-prompts")
    old = load_config(DataConfig, ws.data_config_path) if ws.data_config_path.exists() else None
    if old is None and train is None:
        raise AesError(
            "no data config; run `aes-ensemble folds --train FILE` or write configs/data.yaml",
            path=ws.data_config_path,
        )
    config, notes = data_config(ws, old, train, test, data_format, scale, subgroups)
    essays, _ = load_dataset(config, ws.root)
    if from_file is not None:
        assignment = read_folds_file(from_file, essays)
    else:
        assignment = assign_folds(
            essays,
            n_folds,
            seed=seed,
            method=cast(Method, method),
            infer_prompts=infer_prompts,
        )
    path = save_folds(ws, assignment, force=force)
    if config != old:  # only once the folds are saved: both must describe the same data
        write_data_config(ws, config)
    return Split(essays, assignment, path, tuple(notes))


def _relative(ws: Workspace, path: Path) -> Path:
    """Inside the workspace: relative, so the workspace can move; else absolute."""
    resolved = path.expanduser().resolve()
    return resolved.relative_to(ws.root) if resolved.is_relative_to(ws.root) else resolved


def data_config(
    ws: Workspace,
    old: DataConfig | None,
    train: Path | None,
    test: Path | None,
    data_format: str | None,
    scale: Sequence[str] | None,
    subgroups: Sequence[str] | None,
) -> tuple[DataConfig, list[str]]:
    """The data config the options ask for, and notes on what was chosen for the user.

    Settings of ``old`` (test file, format, scales, columns, subgroups) survive for the same
    training file; a new file starts afresh (see the module docstring)."""
    same = old is not None and (train is None or old.train == _relative(ws, train))
    fields = old.model_dump() if same and old is not None else {}
    if train is not None:
        fields["train"] = _relative(ws, train)
    if test is not None:
        fields["test"] = _relative(ws, test)
    if data_format is not None:
        fields["format"] = data_format
    if scale is not None:
        fields["scale"], fields["per_prompt_scales"] = scale_settings(scale)
    notes = []
    if subgroups is not None:
        fields["subgroups"] = [s.strip() for s in subgroups if s.strip()]
    if not same:
        train_path = ws.root / fields["train"]
        found = inspect_header(train_path, data_format=fields.get("format") or "auto")
        fields["format"] = found.format
        if subgroups is None and found.known_subgroups:
            fields["subgroups"] = list(found.known_subgroups)
            notes.append(
                f"subgroups {', '.join(found.known_subgroups)} ({found.format}'s demographic "
                "columns) recorded for the report's fairness rows; --subgroups '' leaves them out"
            )
        elif subgroups is None:
            guess = subgroup_candidates(train_path, data_format=found.format)
            if guess:
                notes.append(
                    f"subgroup-like columns {', '.join(guess)} not kept; add --subgroups "
                    f"{','.join(guess)} to report QWK per group"
                )
    flags = {"train": train, "test": test, "format": data_format, "subgroups": subgroups}
    given = {key: f"--{key}" for key, value in flags.items() if value is not None}
    if scale is not None:
        given |= {"scale": "--scale", "per_prompt_scales": "--scale"}
    config = validate(DataConfig, fields, path=ws.data_config_path, sources=given)
    return config, notes


def write_data_config(ws: Workspace, config: DataConfig) -> None:
    """``configs/data.yaml`` with only the settings that differ from the defaults."""
    data = config.model_dump(mode="json", exclude_defaults=True)
    try:
        write_text_atomic(ws.data_config_path, yaml.safe_dump(data, sort_keys=False))
    except OSError as exc:
        raise AesError(f"cannot write ({exc.strerror})", path=ws.data_config_path) from None
