"""What a stack was built on, and whether it still holds.

A prediction is only as current as the essays and learners it came from. ``stack`` refuses
learners made on other essays than the workspace's (:func:`check_made_on`) and records what each
learner's file was (``extra["inputs"]``); ``predict`` and ``report`` refuse a stack whose essays
changed or whose learners were refit or re-imported since (:func:`check_stacks_current`).
A file a notebook wrote without a fingerprint cannot be checked: it passes with a note.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from aes_ensemble.data import data_fingerprint, load_workspace_dataset
from aes_ensemble.errors import AesError
from aes_ensemble.stacking.config import StackConfig
from aes_ensemble.stacking.inputs import input_record
from aes_ensemble.stacking.oof_import import IMPORTED_LEARNER
from aes_ensemble.stacking.run import STACK_LEARNER
from aes_ensemble.store import PredictionMeta, PredictionSet, PredictionStore
from aes_ensemble.workspace import Workspace

INPUTS_KEY = "inputs"
# The parts of an input record that change when its predictions do; ``created`` alone does not
# (a rerun that reassembles the same predictions leaves the stack current).
COMPARED = ("config_hash", "folds_hash", "data_hash", "digest")
_CHANGED_DATA = "other essays (the training or test file changed since)"


def remake_command(meta: PredictionMeta) -> str:
    """The command that makes this file again on the current essays and learners."""
    if meta.learner == STACK_LEARNER:
        command = "aes-ensemble stack"
        meta_name = meta.config.get("meta")
        if isinstance(meta_name, str):
            command += f" --meta {meta_name}"
        models = meta.config.get("models")
        if isinstance(models, list) and models:
            command += f" --models {','.join(str(m) for m in models)}"
        thresholds = meta.config.get("thresholds")
        if isinstance(thresholds, str) and thresholds != StackConfig().thresholds:
            command += f" --thresholds {thresholds}"
        return f"{command} --name {meta.name}"
    if meta.learner == IMPORTED_LEARNER:
        source = meta.config.get("imported_from") or "FILE"
        return f"aes-ensemble oof import {source} --name {meta.name} --force"
    return f"aes-ensemble fit-base {meta.name}"


def _redo(meta: PredictionMeta) -> tuple[str, str]:
    """What remaking this file is called: ("refit it", "refit") and the like."""
    if meta.learner == STACK_LEARNER:
        return "restack it", "restacked"
    if meta.learner == IMPORTED_LEARNER:
        return "re-import it", "re-imported"
    return "refit it", "refit"


def check_made_on(
    store: PredictionStore, sets: Sequence[PredictionSet], data_hash: str
) -> list[str]:
    """Refuse predictions made on other essays than ``data_hash`` names; a file that records no
    fingerprint (a notebook wrote it without one) passes with a note, since it cannot be
    checked. Returns the notes."""
    notes: list[str] = []
    for ps in sets:
        if not ps.meta.data_hash:
            notes.append(
                f"'{ps.name}' does not record which essays it was made on (no data fingerprint); "
                f"if the data changed since, {_redo(ps.meta)[0]}: {remake_command(ps.meta)}"
            )
        elif ps.meta.data_hash != data_hash:
            raise AesError(
                f"was made on {_CHANGED_DATA}; {_redo(ps.meta)[0]}: {remake_command(ps.meta)}",
                path=store.path(ps.name),
            )
    return notes


def _inputs(ps: PredictionSet, store: PredictionStore) -> dict[str, Mapping[str, Any]] | None:
    raw = ps.meta.extra.get(INPUTS_KEY)
    if raw is None:
        return None
    if not isinstance(raw, dict) or not all(
        isinstance(name, str)
        and isinstance(record, dict)
        and all(isinstance(record.get(key), str) for key in COMPARED)
        for name, record in raw.items()
    ):
        raise AesError(
            f"the stack's record of its learners is malformed; delete it and run "
            f"{remake_command(ps.meta)} again",
            path=store.path(ps.name),
            key=INPUTS_KEY,
        )
    return raw


def check_stack_current(
    store: PredictionStore, ps: PredictionSet, data_hash: str, _seen: frozenset[str] = frozenset()
) -> list[str]:
    """Refuse ``ps`` when it is stale: made on other essays, or (a stack) built on learners
    whose files changed since or are gone; stacks of stacks are checked all the way down.
    Returns notes for files that record too little to check."""
    if ps.meta.learner != STACK_LEARNER:
        return check_made_on(store, [ps], data_hash)
    again = remake_command(ps.meta)
    inputs = _inputs(ps, store)
    if inputs is None:
        return [
            f"stack '{ps.name}' does not record the learners it was built on (made outside "
            "`stack`); "
            f"if any were refit since, run {again} again"
        ]
    if ps.meta.data_hash and ps.meta.data_hash != data_hash:
        raise AesError(
            f"stack '{ps.name}' was built on {_CHANGED_DATA}; refit its learners "
            f"({', '.join(inputs)}), then run {again} again"
        )
    notes: list[str] = []
    for name, record in inputs.items():
        if not store.path(name).is_file():
            raise AesError(
                f"stack '{ps.name}' was built on predictions of '{name}', which are gone "
                f"({store.path(name)}); run {again} again"
            )
        current = store.read(name)
        if any(
            record.get(key) != value
            for key, value in input_record(current).items()
            if key in COMPARED
        ):
            raise AesError(
                f"stack '{ps.name}' was built on predictions of '{name}' that were "
                f"{_redo(current.meta)[1]} since; run {again} again"
            )
        if current.meta.learner == STACK_LEARNER and name not in _seen:
            notes += check_stack_current(store, current, data_hash, _seen | {ps.name})
        elif not current.meta.data_hash:
            notes += check_made_on(store, [current], data_hash)
    return notes


def check_stacks_current(
    ws: Workspace, sets: Sequence[PredictionSet], data_hash: str | None = None
) -> list[str]:
    """:func:`check_stack_current` for every stack among ``sets``, against the workspace's
    essays (read here unless ``data_hash`` is given). Returns the notes."""
    stacks = [ps for ps in sets if ps.meta.learner == STACK_LEARNER]
    if not stacks:
        return []
    if data_hash is None:
        data_hash = data_fingerprint(*load_workspace_dataset(ws))
    store = PredictionStore(ws.oof_dir)
    return [note for ps in stacks for note in check_stack_current(store, ps, data_hash)]
