"""The stack over a workspace's files: what ``aes-ensemble stack`` and ``predict`` run.

Kept out of the CLI so a notebook (and the demo) can call the same two functions.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from aes_ensemble.config import blame_sources, read_yaml, validate
from aes_ensemble.data import Essays, data_fingerprint, load_workspace_dataset
from aes_ensemble.errors import AesError, did_you_mean
from aes_ensemble.folds import load_folds
from aes_ensemble.io import atomic_path, ensure_writable, write_json_atomic
from aes_ensemble.stacking.config import StackConfig
from aes_ensemble.stacking.inputs import build_stack_data, essay_features, training_prompts
from aes_ensemble.stacking.lineage import check_stack_current, remake_command
from aes_ensemble.stacking.model import build_stack_model, check_model_dir, stack_model_dir
from aes_ensemble.stacking.run import STACK_LEARNER, StackRun, run_stack
from aes_ensemble.store import (
    PredictionSet,
    PredictionStore,
    aligned_rows,
    check_folds_hash,
    write_predictions,
)
from aes_ensemble.thresholds import THRESHOLD_METHODS, Thresholds, fit_cuts
from aes_ensemble.workspace import Workspace


def stack_config(
    ws: Workspace, config: Path | None = None, overrides: dict[str, Any] | None = None
) -> StackConfig:
    """``configs/stack.yaml`` (or ``config``) with the non-None ``overrides`` on top."""
    path = config if config is not None else ws.config_path("stack")
    given = {k: v for k, v in (overrides or {}).items() if v is not None}
    flags = {key: f"--{key}" for key in given}  # a bad flag value is blamed on the flag
    with blame_sources(path, flags):
        cfg = validate(StackConfig, {**read_yaml(path), **given}, path=path, sources=flags)
        cfg.check()
    return cfg


def base_learner_names(store: PredictionStore, exclude: str = "") -> list[str]:
    """Every file in ``oof/`` except stacks (stack a stack by naming it)."""
    names = [
        name
        for name in store.names()
        if name != exclude and store.read_meta(name).learner != STACK_LEARNER
    ]
    if not names:
        raise AesError(
            "no base learner predictions to stack; fit learners or `aes-ensemble oof import`",
            path=store.oof_dir,
        )
    return names


def _sources(essays: Essays) -> np.ndarray | None:
    column = essays.frame["source"]
    return None if column.null_count() == len(column) else np.asarray(column.to_list(), object)


def stack_workspace(ws: Workspace, cfg: StackConfig) -> tuple[StackRun, Path, Path]:
    """Stack the workspace's learners; write the stack to ``oof/``, its summary to
    ``reports/<name>.json`` and the fitted stack (:class:`StackModel`, which scores new essays)
    to ``base_models/<name>/``. Returns the run and the first two paths.

    Predictions made on other essays than the workspace's (the training or test file changed
    since) are refused, naming the learner and the command that remakes it; a file without a
    data fingerprint (a notebook's) cannot be checked and passes with a note (``run.notes``).
    A stack given as input must itself be current.
    """
    train, test = load_workspace_dataset(ws)
    folds = load_folds(ws)
    store = PredictionStore(ws.oof_dir)
    target = store.path(cfg.output_name)
    names: Sequence[str] = cfg.models or base_learner_names(store, cfg.output_name)
    if cfg.output_name in names:
        raise AesError(
            f"the stack '{cfg.output_name}' cannot take its own predictions as input; "
            "leave it out of --models or give the new stack another --name",
            key="models",
        )
    ensure_writable(ws.oof_dir)
    ensure_writable(ws.reports_dir)
    data_hash = data_fingerprint(train, test)
    sets = store.read_many(list(names), folds.hash)
    notes = [note for ps in sets for note in check_stack_current(store, ps, data_hash)]
    model_dir = stack_model_dir(ws, cfg.output_name)
    check_model_dir(model_dir)
    ensure_writable(ws.base_models_dir)
    extra, extra_names = essay_features(train.texts, cfg.features.length)
    extra_test = None if test is None else essay_features(test.texts, cfg.features.length)[0]
    prompt_levels = training_prompts(train.prompts) if cfg.features.prompt_weights else ()
    data = build_stack_data(
        sets,
        train.ids,
        train.scores,
        train.prompts,
        train.scales,
        test_ids=None if test is None else test.ids,
        test_prompts=None if test is None else test.prompts,
        proba=cfg.features.proba,
        extra=extra,
        extra_test=extra_test,
        extra_names=extra_names,
        prompt_levels=prompt_levels,
        data_hash=data_hash,
    )
    run = replace(run_stack(data, cfg, sources=_sources(train)), notes=tuple(notes))
    model = build_stack_model(run, cfg)
    path = write_predictions(target, run.predictions)
    summary_path = ws.reports_dir / f"{run.name}.json"
    write_json_atomic(summary_path, run.summary)
    model.save(model_dir)
    return run, path, summary_path


def stack(
    workspace: Workspace | str | Path, config: Path | None = None, **settings: Any
) -> StackRun:
    """``aes-ensemble stack`` as one call: the stack config (``configs/stack.yaml``, or
    ``config``) with ``settings`` on top (``meta="nnls"``, ``models=["lgbm", "ridge_tfidf"]``);
    writes what the command writes (``stack_workspace``) and returns the run."""
    ws = workspace if isinstance(workspace, Workspace) else Workspace.at(workspace)
    run, _, _ = stack_workspace(ws, stack_config(ws, config, settings))
    return run


def single_stack(store: PredictionStore) -> str:
    """The one stack in ``oof/``; an error when there are none or several."""
    stacks = [n for n in store.names() if store.read_meta(n).learner == STACK_LEARNER]
    if len(stacks) == 1:
        return stacks[0]
    if not stacks:
        raise AesError(
            "no stack in oof/ yet; run `aes-ensemble stack` or pass --stack NAME",
            path=store.oof_dir,
        )
    raise AesError(
        f"several stacks ({', '.join(stacks)}); pick one with --stack", path=store.oof_dir
    )


def _levels(
    ps: PredictionSet, store: PredictionStore, train: Essays, test: Essays, method: str
) -> np.ndarray:
    """The test rows cut into levels by the stack's stored final cut points, else by cut points
    fitted on the file's OOF rows; stored cut points that do not apply are a damaged file."""
    pred = aligned_rows(ps, "test", test.ids)["pred"].to_numpy()
    stored = ps.meta.extra.get("final_thresholds")
    if stored is None:
        return _fitted_cuts(ps, train, method).apply(pred, test.prompts, train.scales)
    try:
        if not isinstance(stored, dict):
            raise AesError(f"stored thresholds are a {type(stored).__name__}, not a mapping")
        return Thresholds.from_dict(stored).apply(pred, test.prompts, train.scales)
    except AesError as exc:
        raise AesError(
            f"{exc.message}; delete it and run {remake_command(ps.meta)} again",
            path=store.path(ps.name),
            key="final_thresholds",
        ) from None


def _fitted_cuts(ps: PredictionSet, train: Essays, method: str) -> Thresholds:
    """Cut points fitted on the file's OOF rows (a learner's file stores none)."""
    oof = aligned_rows(ps, "oof", train.ids)["pred"].to_numpy()
    seed = ps.meta.seed if ps.meta.seed is not None else 0
    return fit_cuts(train.scores, oof, train.prompts, train.scales, method, seed, np.empty(0))


def write_submission(
    ws: Workspace,
    name: str | None = None,
    *,
    thresholds: str = "nelder-mead",
    output: Path | None = None,
) -> tuple[Path, str, np.ndarray]:
    """Write ``essay_id,score`` (levels) for the test essays from a stack's (or learner's) test
    rows. Returns the path, the predictions' name and the levels.

    A stale stack is refused (its essays changed, or a learner it was built on was refit or
    re-imported since), as are a learner's predictions made on other essays; files too old to
    record what they were made on cannot be checked and are used as they are.
    """
    if thresholds not in THRESHOLD_METHODS:
        raise AesError(
            f"unknown threshold method '{thresholds}'{did_you_mean(thresholds, THRESHOLD_METHODS)}",
            key="thresholds",
        )
    target = output or ws.submission_path
    if target.is_dir():
        raise AesError(
            "is a folder; name the file to write (e.g. --output "
            f"{target / ws.submission_path.name})",
            path=target,
        )
    ensure_writable(target.parent)
    train, test = load_workspace_dataset(ws)
    if test is None:
        raise AesError(
            "the data config names no test file; add `test:` to predict", path=ws.data_config_path
        )
    store = PredictionStore(ws.oof_dir)
    chosen = name or single_stack(store)
    ps = store.read(chosen)
    check_stack_current(store, ps, data_fingerprint(train, test))
    check_folds_hash(ps.meta, load_folds(ws).hash, store.path(chosen))
    levels = _levels(ps, store, train, test, thresholds)
    submission = pl.DataFrame(
        {"essay_id": test.ids, "score": [f"{v:g}" for v in levels]},
        schema={"essay_id": pl.String, "score": pl.String},
    )
    with atomic_path(target) as tmp:
        submission.write_csv(tmp)
    return target, chosen, levels
