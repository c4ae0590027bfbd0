"""A fold's files and their replacement as one step: a failed or killed fit never harms the last
good fold.

A finished fold is ``base_models/NAME/fold_K/`` (model, ``config.yaml``, ``done.json``) plus
``oof/parts/NAME/fold_K.parquet``. A refit writes a complete new folder and a staged part beside
them (``FoldWrite``), then ``commit`` swaps them in by renames:

1. retire: ``fold_K`` -> ``.fold_K.HOST-PID.R.old``
2. promote: the new folder -> ``fold_K`` (the commit point)
3. publish: the staged part -> ``fold_K.parquet`` (one atomic replace)
4. delete the retired folder.

``done.json`` records a ``run_id`` that the part's metadata also carries; a fold is finished only
when they agree. A run killed between the steps is repaired by the next run (``recover``):
killed before 2, the retired folder goes back; killed between 2 and 3, the staged part whose
run id matches the promoted ``done.json`` is published. Anything else of a dead process is
deleted. Temporary names carry the owner's pid (see ``aes_ensemble.io``), so leftovers of a
live process fitting another fold at the same time are left alone.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

from aes_ensemble.errors import AesError
from aes_ensemble.io import (
    dead_leftovers,
    make_temp_dir,
    read_json_file,
    remove,
    remove_dead_temps,
    temp_sibling,
    write_json_atomic,
)
from aes_ensemble.scales import ScoreScales
from aes_ensemble.store import read_prediction_meta
from aes_ensemble.workspace import Workspace

DONE = "done.json"
# The resolved learner config the fold was fitted with; scoring validates it against ``DONE``.
CONFIG_FILE = "config.yaml"
# Written beside a fold's model: the score scales it maps its 0..1 outputs onto, so a fold folder
# (or a bundle's copy of it) scores new essays without the training data.
SCALES_FILE = "scales.json"


def parts_dir(ws: Workspace, name: str) -> Path:
    return ws.oof_dir / "parts" / name


def part_path(ws: Workspace, name: str, fold: int) -> Path:
    return parts_dir(ws, name) / f"fold_{fold}.parquet"


@dataclass(frozen=True)
class FoldRecord:
    """``done.json``: what a finished fold was fitted on, and what it took."""

    fold: int
    run_id: str
    config_hash: str
    folds_hash: str
    data_hash: str
    train_hash: str
    test_hash: str
    qwk: float
    fit_seconds: float
    predict_seconds: float
    n_train: int
    n_valid: int
    finished: str
    feature_versions: dict[str, str] = field(default_factory=dict)

    def write(self, directory: Path) -> None:
        write_json_atomic(directory / DONE, asdict(self))


class DamagedRecordError(AesError):
    """A ``done.json`` that cannot be trusted: the fold counts as unfinished."""


_TYPES: dict[str, tuple[type, ...]] = {"int": (int,), "float": (int, float), "str": (str,)}


def read_record(directory: Path) -> FoldRecord | None:
    """The fold's ``done.json``; None when absent; ``DamagedRecordError`` naming the file and the
    fault when it is not UTF-8, not JSON, or lacks a key of the right type."""
    path = directory / DONE
    data = read_json_file(path, error=DamagedRecordError)
    if data is None:
        return None
    if not isinstance(data, dict):
        raise DamagedRecordError("is not a JSON object", path=path)
    versions = data.get("feature_versions")
    if versions is None:
        raise DamagedRecordError(
            "missing (damaged, or written by an older version)", path=path, key="feature_versions"
        )
    if not isinstance(versions, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in versions.items()
    ):
        raise DamagedRecordError(
            "must map feature blocks to versions", path=path, key="feature_versions"
        )
    for f in fields(FoldRecord):
        if f.name == "feature_versions":
            continue
        value = data.get(f.name)
        if value is None:
            raise DamagedRecordError(
                "missing (damaged, or written by an older version)", path=path, key=f.name
            )
        if isinstance(value, bool) or not isinstance(value, _TYPES[str(f.type)]):
            raise DamagedRecordError(
                f"must be of type {f.type}, not {value!r:.40}", path=path, key=f.name
            )
    known = {f.name: data[f.name] for f in fields(FoldRecord) if f.name != "feature_versions"}
    return FoldRecord(**known, feature_versions=dict(versions))


def changed_definitions(recorded: Mapping[str, str], current: Mapping[str, str]) -> str:
    """The feature blocks whose definition changed since ``recorded``, in words
    (``"handcrafted hc-1 -> hc-2"``); empty when none did."""
    return ", ".join(
        f"{block} {recorded.get(block, 'none')} -> {version}"
        for block, version in current.items()
        if recorded.get(block) != version
    )


def write_scales(directory: Path, scales: ScoreScales) -> None:
    """Record ``scales`` in a fold folder (``SCALES_FILE``)."""
    write_json_atomic(directory / SCALES_FILE, scales.to_dict())


def read_scales(directory: Path) -> ScoreScales:
    """The scales a fold folder records; a missing or malformed file is an error: refit."""
    path = directory / SCALES_FILE
    data = read_json_file(path, fix=": refit the fold")
    if data is None:
        raise AesError("is missing: refit the fold", path=path)
    if not isinstance(data, dict):
        raise AesError("is not a JSON object of default and per_prompt: refit the fold", path=path)
    try:
        return ScoreScales.from_dict(data)
    except AesError as exc:
        raise AesError(exc.message, path=path) from None


def part_run_id(path: Path) -> str | None:
    """The run id in a part's metadata; None when the part is absent, unreadable or lacks it."""
    try:
        run_id = read_prediction_meta(path).extra.get("run_id")
    except AesError:
        return None
    return run_id if isinstance(run_id, str) else None


def _retire(target: Path) -> Path | None:
    if not target.exists():
        return None
    retired = temp_sibling(target, "old")
    target.rename(retired)
    return retired


def _promote(staged: Path, target: Path) -> None:
    staged.rename(target)


def _publish_part(staged: Path, target: Path) -> None:
    staged.replace(target)


class FoldWrite:
    """A fold's new files, written beside the current ones: ``model_dir`` (a fresh folder) and
    ``part`` (the staged prediction part); ``commit`` swaps them in."""

    def __init__(self, ws: Workspace, name: str, fold: int) -> None:
        self.target = ws.model_dir(name, fold)
        self.part_target = part_path(ws, name, fold)
        self.part_target.parent.mkdir(parents=True, exist_ok=True)
        self.model_dir = make_temp_dir(self.target)
        self.part = temp_sibling(self.part_target, "staged")

    def commit(self) -> None:
        retired = _retire(self.target)
        _promote(self.model_dir, self.target)
        _publish_part(self.part, self.part_target)
        if retired is not None:
            remove(retired)

    def discard(self) -> None:
        """Delete what was not committed (nothing once ``commit`` has run)."""
        remove(self.model_dir)
        self.part.unlink(missing_ok=True)


@contextmanager
def fold_write(ws: Workspace, name: str, fold: int) -> Iterator[FoldWrite]:
    """A ``FoldWrite`` whose uncommitted files are deleted however the block ends."""
    write = FoldWrite(ws, name, fold)
    try:
        yield write
    finally:
        write.discard()


def _promoted_run(folder: Path) -> str | None:
    try:
        record = read_record(folder)
    except DamagedRecordError:
        return None
    return None if record is None else record.run_id


def recover(ws: Workspace, name: str) -> list[str]:
    """Repair what runs killed mid-way left of learner ``name`` (see the module docstring) and
    delete their temporaries; returns a note per repaired fold."""
    notes: list[str] = []
    models = ws.base_models_dir / name
    for left in dead_leftovers(models):
        target = models / left.target
        if left.kind == "old" and not target.exists():
            left.path.rename(target)
            notes.append(f"{left.target}: put back the fold a killed run had moved aside")
        else:
            remove(left.path)
    parts = parts_dir(ws, name)
    for left in dead_leftovers(parts):
        fold_dir = models / left.target.removesuffix(".parquet")
        run_id = _promoted_run(fold_dir)
        if left.kind == "staged" and run_id is not None and part_run_id(left.path) == run_id:
            _publish_part(left.path, parts / left.target)
            notes.append(f"{fold_dir.name}: completed the replacement a killed run had begun")
        else:
            remove(left.path)
    remove_dead_temps(ws.oof_dir)
    return notes
