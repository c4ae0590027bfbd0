"""Fit one learner over the workspace's folds: resume, per-fold parts, assembly into the store.

Each fold owns its own files, ``base_models/NAME/fold_K/`` (model, ``config.yaml``, and
``done.json`` written last) and ``oof/parts/NAME/fold_K.parquet``, so an interrupted run resumes
at the first unfinished fold and two processes fitting different folds never touch the same
file. Whoever finishes the last fold assembles ``oof/NAME.parquet`` from the parts on disk.
"""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Literal

import numpy as np
import polars as pl
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from aes_ensemble.config import apply_overrides, config_hash, dump_yaml, read_yaml, validate
from aes_ensemble.data import Essays, load_workspace_dataset
from aes_ensemble.errors import AesError
from aes_ensemble.folds import Folds, load_folds
from aes_ensemble.io import is_main_process, write_json_atomic, write_text_atomic
from aes_ensemble.learners.base import Learner, LearnerConfig, Prediction, learner_class
from aes_ensemble.metrics import headline_qwk
from aes_ensemble.store import (
    PredictionMeta,
    PredictionSet,
    PredictionStore,
    prediction_frame,
    read_predictions,
    write_predictions,
)
from aes_ensemble.workspace import Workspace

DONE = "done.json"


@dataclass(frozen=True)
class FoldResult:
    fold: int
    status: Literal["fitted", "skipped"]
    qwk: float
    seconds: float
    n_valid: int


@dataclass(frozen=True)
class RunSummary:
    """What a ``fit_learner`` call did; ``oof_path`` is set once every fold is complete."""

    name: str
    kind: str
    config_hash: str
    n_folds: int
    folds: tuple[FoldResult, ...]
    missing_folds: tuple[int, ...]
    overall_qwk: float | None = None
    oof_path: Path | None = None
    notes: tuple[str, ...] = field(default_factory=tuple)


def load_learner_config(path: Path, overrides: Sequence[str] = ()) -> LearnerConfig:
    """A learner config: ``kind`` picks the model; unknown keys name the closest valid one."""
    data = apply_overrides(read_yaml(path), overrides)
    kind = data.get("kind")
    if not isinstance(kind, str):
        raise AesError(
            "required key is missing (the learner kind, e.g. lgbm)", path=path, key="kind"
        )
    try:
        model = learner_class(kind).config_model
    except AesError as exc:
        raise AesError(exc.message, path=path, key="kind") from None
    return validate(model, data, path=path)


def parts_dir(ws: Workspace, name: str) -> Path:
    return ws.oof_dir / "parts" / name


def part_path(ws: Workspace, name: str, fold: int) -> Path:
    return parts_dir(ws, name) / f"fold_{fold}.parquet"


def read_done(directory: Path) -> dict[str, Any] | None:
    """The fold's completion record, or None when it is absent or unreadable (unfinished)."""
    try:
        data = json.loads((directory / DONE).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return None
    return data if isinstance(data, dict) else None


def _is_current(done: dict[str, Any] | None, chash: str, fhash: str) -> bool:
    return done is not None and done.get("config_hash") == chash and done.get("folds_hash") == fhash


def _select(folds: str | Sequence[int], n_folds: int) -> list[int]:
    if isinstance(folds, str):
        if folds != "all":
            raise AesError(f"--fold '{folds}' must be 'all' or fold numbers", key="fold")
        return list(range(n_folds))
    chosen = sorted(set(int(k) for k in folds))
    bad = [k for k in chosen if not 0 <= k < n_folds]
    if bad or not chosen:
        raise AesError(f"--fold {bad[0] if bad else '?'}: folds run 0..{n_folds - 1}", key="fold")
    return chosen


class _Display:
    """Rich progress over folds and stages; silent when progress is off."""

    def __init__(self, name: str, total: int, enabled: bool) -> None:
        self.name = name
        self.enabled = enabled
        self.notes: list[str] = []
        self.progress: Progress | None = None
        self.task = None
        if enabled:
            self.progress = Progress(
                TextColumn("[bold]{task.fields[name]}[/]"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("{task.description}"),
                TimeElapsedColumn(),
                console=Console(stderr=True),
            )
            self.task = self.progress.add_task("", total=total, name=name)

    @contextmanager
    def running(self) -> Iterator[_Display]:
        if self.progress is None:
            yield self
            return
        with self.progress:
            yield self

    def stage(self, fold: int, text: str) -> None:
        if self.progress is not None and self.task is not None:
            self.progress.update(self.task, description=f"fold {fold}: {text}")

    def advance(self) -> None:
        if self.progress is not None and self.task is not None:
            self.progress.advance(self.task)

    def note(self, text: str) -> None:
        self.notes.append(text)
        if self.progress is not None:
            self.progress.console.print(f"[yellow]{self.name}[/]: {text}")


@dataclass(frozen=True)
class _Run:
    """Everything a fold needs, loaded once per call."""

    ws: Workspace
    name: str
    config: LearnerConfig
    config_hash: str
    train: Essays
    test: Essays | None
    folds: Folds
    fold_of: np.ndarray

    def model_dir(self, fold: int) -> Path:
        return self.ws.model_dir(self.name, fold)


def _scored_qwk(essays: Essays, pred: np.ndarray) -> float:
    """Headline QWK of plain-rounded predictions (thresholds are the stack's job)."""
    rounded = essays.scales.round(pred, essays.prompts)
    return headline_qwk(essays.scores, rounded, essays.prompts, essays.scales)


def _frame(essays: Essays, split: str, p: Prediction, fold: int | None) -> pl.DataFrame:
    return prediction_frame(
        essays.ids,
        [split] * len(essays),
        p.pred,
        fold=None if fold is None else [fold] * len(essays),
        prompt=essays.prompts,
        proba=p.proba,
        proba_labels=p.proba_labels,
    )


def _meta(run: _Run, fold_qwk: dict[str, float], seconds: dict[str, float]) -> PredictionMeta:
    return PredictionMeta(
        name=run.name,
        learner=run.config.kind,
        folds_hash=run.folds.hash,
        config=run.config.model_dump(mode="json"),
        config_hash=run.config_hash,
        seed=run.config.seed,
        fold_qwk=fold_qwk,
        fit_seconds=seconds,
        scales=run.train.scales.to_dict(),
    )


def _prepare_fold(run: _Run, fold: int, display: _Display) -> dict[str, Any] | None:
    """The completion record of a fold that can be skipped; else clear its leftovers."""
    directory = run.model_dir(fold)
    done = read_done(directory)
    part = part_path(run.ws, run.name, fold)
    if _finished(run, fold, done):
        return done
    if done is not None and done.get("config_hash") != run.config_hash:
        display.note(
            f"fold {fold} was fitted with another config "
            f"({done.get('config_hash')} -> {run.config_hash}); refitting"
        )
    elif done is not None and done.get("folds_hash") != run.folds.hash:
        display.note(f"fold {fold} was fitted on other folds; refitting")
    elif directory.exists() or part.exists():
        display.note(f"fold {fold} was left unfinished; refitting from scratch")
    if is_main_process():
        shutil.rmtree(directory, ignore_errors=True)
        part.unlink(missing_ok=True)
    return None


def _prepare_features(run: _Run, display: _Display) -> None:
    """Cache per-essay features of train and test in one pass before the folds, so every fold
    (and every later run) reads the same values whatever order the folds run in."""
    learner = learner_class(run.config.kind)(
        run.config, run.train.scales, run.ws.cache_dir, progress=display.enabled
    )
    learner.prepare(run.train)
    if run.test is not None:
        learner.prepare(run.test)


def _fit_fold(run: _Run, fold: int, display: _Display) -> FoldResult:
    start = time.perf_counter()
    train_rows = np.flatnonzero(run.fold_of != fold)
    valid_rows = np.flatnonzero(run.fold_of == fold)
    if len(valid_rows) == 0 or len(train_rows) == 0:
        raise AesError(
            f"fold {fold} has no validation or no training essays", path=run.ws.folds_path
        )
    train, valid = run.train.take(train_rows), run.train.take(valid_rows)
    learner: Learner = learner_class(run.config.kind)(
        run.config, run.train.scales, run.ws.cache_dir, progress=display.enabled
    )
    display.stage(fold, f"features + fit ({len(train)} essays)")
    learner.fit(train, valid)
    display.stage(fold, "predict")
    p_valid = learner.predict(valid)
    frames = [_frame(valid, "oof", p_valid, fold)]
    if run.test is not None:
        frames.append(_frame(run.test, "test", learner.predict(run.test), None))
    qwk = _scored_qwk(valid, p_valid.pred)
    seconds = round(time.perf_counter() - start, 3)
    if not is_main_process():
        return FoldResult(fold, "fitted", qwk, seconds, len(valid))
    display.stage(fold, "save")
    directory = run.model_dir(fold)
    learner.save(directory)
    write_text_atomic(directory / "config.yaml", dump_yaml(run.config))
    key = str(fold)
    part = PredictionSet(pl.concat(frames), _meta(run, {key: qwk}, {key: seconds}))
    write_predictions(part_path(run.ws, run.name, fold), part)
    write_json_atomic(
        directory / DONE,
        {
            "fold": fold,
            "config_hash": run.config_hash,
            "folds_hash": run.folds.hash,
            "qwk": qwk,
            "seconds": seconds,
            "n_train": len(train),
            "n_valid": len(valid),
            "finished": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        },
    )
    return FoldResult(fold, "fitted", qwk, seconds, len(valid))


def _in_order(frame: pl.DataFrame, ids: list[str]) -> pl.DataFrame:
    """``frame``'s rows in the order of ``ids`` (each id exactly once)."""
    order = pl.DataFrame({"essay_id": ids}).with_row_index("_order")
    return frame.join(order, on="essay_id", how="inner").sort("_order").drop("_order")


def _finished(run: _Run, fold: int, done: dict[str, Any] | None) -> bool:
    """Fitted with this config on these folds, and its predictions written."""
    current = _is_current(done, run.config_hash, run.folds.hash)
    return current and part_path(run.ws, run.name, fold).is_file()


def _missing(run: _Run) -> list[int]:
    return [
        k for k in range(run.folds.n_folds) if not _finished(run, k, read_done(run.model_dir(k)))
    ]


def assemble(run: _Run) -> tuple[Path, float]:
    """Write ``oof/NAME.parquet`` from every fold's part: OOF rows as fitted, test rows the mean
    of the fold models (predictions and probabilities)."""
    parts = [
        read_predictions(part_path(run.ws, run.name, k), folds_hash=run.folds.hash)
        for k in range(run.folds.n_folds)
    ]
    oof = _in_order(pl.concat([p.oof for p in parts]), run.train.ids)
    if oof.height != len(run.train):
        raise AesError(
            f"the fold parts hold {oof.height} OOF rows for {len(run.train)} training essays; "
            "refit the learner",
            path=parts_dir(run.ws, run.name),
        )
    frames = [oof]
    if run.test is not None:
        tests = [_in_order(p.test, run.test.ids) for p in parts]
        if any(t.height != len(run.test) for t in tests):
            raise AesError(
                "a fold part lacks predictions for some test essays; refit the learner",
                path=parts_dir(run.ws, run.name),
            )
        value_columns = ["pred", *parts[0].proba_columns]
        means = {
            c: np.mean(np.stack([t[c].to_numpy() for t in tests]), axis=0) for c in value_columns
        }
        frames.append(tests[0].with_columns(pl.Series(c, v) for c, v in means.items()))
    fold_qwk = {k: v for p in parts for k, v in p.meta.fold_qwk.items()}
    seconds = {k: v for p in parts for k, v in p.meta.fit_seconds.items()}
    pred = oof["pred"].to_numpy()
    overall = _scored_qwk(run.train, pred)
    path = write_predictions(
        PredictionStore(run.ws.oof_dir).path(run.name),
        PredictionSet(pl.concat(frames), _meta(run, fold_qwk, seconds)),
    )
    return path, overall


def fit_learner(
    workspace: Workspace | str | Path,
    name: str,
    *,
    folds: str | Sequence[int] = "all",
    overrides: Sequence[str] = (),
    progress: bool = True,
) -> RunSummary:
    """Fit learner ``name`` (``configs/NAME.yaml`` + ``overrides``) on the chosen folds, skipping
    folds already complete with the same config and folds, then assemble when all are done."""
    ws = workspace if isinstance(workspace, Workspace) else Workspace.at(workspace)
    PredictionStore(ws.oof_dir).path(name)  # a name the store accepts, checked before any work
    config = load_learner_config(ws.config_path(name), overrides)
    train, test = load_workspace_dataset(ws)
    fold_set = load_folds(ws)
    run = _Run(
        ws, name, config, config_hash(config), train, test, fold_set, fold_set.fold_array(train)
    )
    chosen = _select(folds, fold_set.n_folds)
    display = _Display(name, len(chosen), progress)
    results: list[FoldResult] = []
    with display.running():
        unfinished = set(_missing(run))
        todo = [k for k in chosen if k in unfinished]
        if todo:
            display.stage(todo[0], "per-essay features for all essays")
            _prepare_features(run, display)
        for fold in chosen:
            done = _prepare_fold(run, fold, display)
            if done is None:
                results.append(_fit_fold(run, fold, display))
            else:
                results.append(
                    FoldResult(
                        fold,
                        "skipped",
                        float(done["qwk"]),
                        float(done["seconds"]),
                        int(done["n_valid"]),
                    )
                )
            display.advance()
        missing = _missing(run)
        path, overall = (None, None) if missing or not is_main_process() else assemble(run)
    return RunSummary(
        name=name,
        kind=config.kind,
        config_hash=run.config_hash,
        n_folds=fold_set.n_folds,
        folds=tuple(results),
        missing_folds=tuple(missing),
        overall_qwk=overall,
        oof_path=path,
        notes=tuple(display.notes),
    )
