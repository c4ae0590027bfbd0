"""The steps of fitting a learner's folds: open the run, check a fold, fit it, assemble the OOF.

Each fold owns its own files, ``base_models/NAME/fold_K/`` (model, ``config.yaml``, and
``done.json``) and ``oof/parts/NAME/fold_K.parquet``, replaced together only once a refit is
complete (``fold_files``), so a failed fit never harms the last good fold, an interrupted run
resumes at the first unfinished fold and two processes fitting different folds never touch the
same file. A fold is current while its config, folds and data fingerprint are the run's. Whoever
finishes the last fold assembles ``oof/NAME.parquet`` from the parts on disk. The engine
(``aes_ensemble.engine``) runs these steps as (learner, fold) tasks, in this process or others.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Literal

import numpy as np
import polars as pl

from aes_ensemble.assembly import already_assembled, combine_parts
from aes_ensemble.config import (
    blame_sources,
    config_hash,
    dump_yaml,
    hash_mapping,
    override_sources,
)
from aes_ensemble.data import Essays, data_fingerprint, load_workspace_dataset
from aes_ensemble.errors import AesError
from aes_ensemble.extra_train import ExtraEssays, read_extra, with_extra
from aes_ensemble.fold_files import (
    CONFIG_FILE,
    DamagedRecordError,
    FoldRecord,
    changed_definitions,
    fold_write,
    part_path,
    part_run_id,
    parts_dir,
    read_record,
    recover,
    write_scales,
)
from aes_ensemble.folds import Folds, load_folds
from aes_ensemble.io import ensure_writable, is_main_process, remove_dead_temps, write_text_atomic
from aes_ensemble.learners.base import Learner, LearnerConfig
from aes_ensemble.learners.registry import learner_class, load_learner_config
from aes_ensemble.library_errors import library_errors
from aes_ensemble.metrics import headline_qwk
from aes_ensemble.progress import Display as _Display
from aes_ensemble.store import (
    Prediction,
    PredictionMeta,
    PredictionSet,
    PredictionStore,
    prediction_frame,
    read_predictions,
    write_predictions,
)
from aes_ensemble.workspace import Workspace


@dataclass(frozen=True)
class FoldResult:
    """One fold of a run; its seconds are the fit and the predictions (validation and test)."""

    fold: int
    status: Literal["fitted", "skipped"]
    qwk: float
    fit_seconds: float
    predict_seconds: float
    n_valid: int

    @property
    def seconds(self) -> float:
        return round(self.fit_seconds + self.predict_seconds, 3)


@dataclass(frozen=True)
class RunSummary:
    """What a ``fit_learner`` call did; ``oof_path`` is set once every fold is complete and
    ``oof_written`` says whether this call (re)wrote it or found it up to date.
    ``prepare_seconds``: this call's per-essay feature preparation (embeddings)."""

    name: str
    kind: str
    config_hash: str
    n_folds: int
    folds: tuple[FoldResult, ...]
    missing_folds: tuple[int, ...]
    overall_qwk: float | None = None
    oof_path: Path | None = None
    oof_written: bool = False
    prepare_seconds: float = 0.0
    notes: tuple[str, ...] = field(default_factory=tuple)


def select_folds(folds: str | Sequence[int], n_folds: int) -> list[int]:
    if isinstance(folds, str):
        if folds != "all":
            raise AesError(f"--fold '{folds}' must be 'all' or fold numbers", key="fold")
        return list(range(n_folds))
    chosen = sorted(set(int(k) for k in folds))
    bad = [k for k in chosen if not 0 <= k < n_folds]
    if bad or not chosen:
        raise AesError(f"--fold {bad[0] if bad else '?'}: folds run 0..{n_folds - 1}", key="fold")
    return chosen


@dataclass(frozen=True)
class Run:
    """Everything a fold needs, loaded once per call."""

    ws: Workspace
    name: str
    config: LearnerConfig
    config_hash: str
    train: Essays
    test: Essays | None
    folds: Folds
    fold_of: np.ndarray
    train_hash: str
    test_hash: str
    data_hash: str
    feature_versions: dict[str, str]
    # The config's extra_train essays, added to every fold's training rows; their fingerprint
    # is part of ``train_hash``, so a changed extra file refits the folds.
    extra: ExtraEssays | None = None

    def model_dir(self, fold: int) -> Path:
        return self.ws.model_dir(self.name, fold)

    def learner(self, display: _Display) -> Learner:
        return learner_class(self.config.kind)(
            self.config, self.train.scales, self.ws.cache_dir, progress=display.enabled
        )


def fold_state(run: Run, fold: int) -> tuple[FoldRecord | None, str]:
    """The record of a fold that is finished and current, else None and why it must be (re)fitted
    ("" for a fold never started)."""
    directory = run.model_dir(fold)
    try:
        done = read_record(directory)
    except DamagedRecordError as exc:
        return None, f"fold {fold}: {exc}; refitting"
    if done is None:
        if directory.exists():
            return None, f"fold {fold} was left unfinished; refitting from scratch"
        return None, ""
    if done.config_hash != run.config_hash:
        return None, (
            f"fold {fold} was fitted with another config "
            f"({done.config_hash} -> {run.config_hash}); refitting"
        )
    changed = changed_definitions(done.feature_versions, run.feature_versions)
    if changed:
        return None, f"fold {fold} was fitted with other feature definitions ({changed}); refitting"
    if done.folds_hash != run.folds.hash or done.fold != fold:
        return None, f"fold {fold} was fitted on other folds; refitting"
    if done.train_hash != run.train_hash:
        what = "training or extra_train essays" if run.extra is not None else "training essays"
        return None, f"fold {fold} was fitted on other data ({what} changed); refitting"
    if done.test_hash != run.test_hash:
        return None, f"fold {fold} was fitted on other data (test essays changed); refitting"
    if part_run_id(part_path(run.ws, run.name, fold)) != done.run_id:
        return None, f"fold {fold}'s prediction part is missing or from another run; refitting"
    return done, ""


def missing_folds(run: Run) -> list[int]:
    return [k for k in range(run.folds.n_folds) if fold_state(run, k)[0] is None]


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


def _meta(
    run: Run, fold_qwk: dict[str, float], seconds: dict[str, float], extra: dict[str, Any]
) -> PredictionMeta:
    return PredictionMeta(
        name=run.name,
        learner=run.config.kind,
        folds_hash=run.folds.hash,
        config=run.config.model_dump(mode="json"),
        config_hash=run.config_hash,
        data_hash=run.data_hash,
        seed=run.config.seed,
        fold_qwk=fold_qwk,
        fit_seconds=seconds,
        scales=run.train.scales.to_dict(),
        extra=extra,
    )


@contextmanager
def _write_errors(what: str) -> Iterator[None]:
    """A failed write (disk full, permissions) as one line; the previous files are kept."""
    try:
        yield
    except OSError as exc:
        raise AesError(
            f"{what}: could not write ({exc.strerror or exc}); the previous files are kept "
            "unchanged. Free disk space or fix permissions, then rerun",
            path=exc.filename,
        ) from exc


def prepare_features(run: Run, display: _Display) -> float:
    """Cache per-essay features of train and test in one pass before the folds, so every fold
    (and every later run) reads the same values whatever order the folds run in; seconds."""
    start = time.perf_counter()
    learner = run.learner(display)
    with library_errors(f"{run.name} feature preparation", run.config):
        learner.prepare(run.train)
        if run.test is not None:
            learner.prepare(run.test)
        if run.extra is not None:
            display.note(run.extra.note())
            learner.prepare(run.extra.essays)
    return round(time.perf_counter() - start, 3)


def fit_fold(run: Run, fold: int, display: _Display, prepare_seconds: float) -> FoldResult:
    """Fit and predict one fold, then swap its files in as one step (``fold_files``);
    ``prepare_seconds`` is recorded with it (the run's feature preparation, on its first fold)."""
    train_rows = np.flatnonzero(run.fold_of != fold)
    valid_rows = np.flatnonzero(run.fold_of == fold)
    if len(valid_rows) == 0 or len(train_rows) == 0:
        raise AesError(
            f"fold {fold} has no validation or no training essays", path=run.ws.folds_path
        )
    train, valid = run.train.take(train_rows), run.train.take(valid_rows)
    size = f"{len(train)} essays"
    if run.extra is not None:
        size += f" + {len(run.extra.essays)} extra"
        train = with_extra(train, run.extra.essays)
    learner = run.learner(display)
    where = f"{run.name} fold {fold}"
    named = None if display.name == run.name else run.name  # a display shared by learners
    with library_errors(where, run.config):
        display.stage(fold, f"fit ({size})", named)
        start = time.perf_counter()
        learner.fit(train, valid)
        fit_seconds = round(time.perf_counter() - start, 3)
        display.stage(fold, "predict", named)
        start = time.perf_counter()
        p_valid = learner.predict(valid)
        frames = [_frame(valid, "oof", p_valid, fold)]
        if run.test is not None:
            frames.append(_frame(run.test, "test", learner.predict(run.test), None))
        predict_seconds = round(time.perf_counter() - start, 3)
    qwk = _scored_qwk(valid, p_valid.pred)
    result = FoldResult(fold, "fitted", qwk, fit_seconds, predict_seconds, len(valid))
    if not is_main_process():
        return result
    display.stage(fold, "save", named)
    record = FoldRecord(
        fold=fold,
        run_id=uuid.uuid4().hex,
        config_hash=run.config_hash,
        folds_hash=run.folds.hash,
        data_hash=run.data_hash,
        train_hash=run.train_hash,
        test_hash=run.test_hash,
        qwk=qwk,
        fit_seconds=fit_seconds,
        predict_seconds=predict_seconds,
        n_train=len(train),
        n_valid=len(valid),
        finished=datetime.now(timezone.utc).isoformat(timespec="seconds"),
        feature_versions=run.feature_versions,
    )
    key = str(fold)
    timing = {
        "prepare": prepare_seconds,
        "fit": {key: fit_seconds},
        "predict": {key: predict_seconds},
    }
    meta = _meta(
        run, {key: qwk}, {key: result.seconds}, {"run_id": record.run_id, "timing": timing}
    )
    with _write_errors(where), fold_write(run.ws, run.name, fold) as out:
        learner.save(out.model_dir)
        write_text_atomic(out.model_dir / CONFIG_FILE, dump_yaml(run.config))
        write_scales(out.model_dir, run.train.scales)
        write_predictions(out.part, PredictionSet(pl.concat(frames), meta))
        record.write(out.model_dir)
        out.commit()
    return result


def assemble(run: Run) -> tuple[Path, float, bool]:
    """Write ``oof/NAME.parquet`` from every fold's part unless it already holds them; returns
    the path, the overall OOF QWK and whether the file was (re)written."""
    parts = [
        read_predictions(part_path(run.ws, run.name, k), folds_hash=run.folds.hash)
        for k in range(run.folds.n_folds)
    ]
    c = combine_parts(parts, run.train, run.test, parts_dir(run.ws, run.name))
    combined = PredictionSet(c.frame, _meta(run, c.fold_qwk, c.fit_seconds, c.extra))
    path = PredictionStore(run.ws.oof_dir).path(run.name)
    overall = _scored_qwk(run.train, combined.oof["pred"].to_numpy())
    if already_assembled(path, combined.meta):
        return path, overall, False
    with _write_errors(f"{run.name} assembly"):
        write_predictions(path, combined)
    return path, overall, True


def open_run(ws: Workspace, name: str, overrides: Sequence[str]) -> Run:
    PredictionStore(ws.oof_dir).path(name)  # a name the store accepts, checked before any work
    config = load_learner_config(ws.config_path(name), overrides)
    train, test = load_workspace_dataset(ws)
    fold_set = load_folds(ws)
    extra = None
    train_hash = train.fingerprint()
    if config.extra_train is not None:
        with blame_sources(ws.config_path(name), override_sources(overrides)):
            per_prompt = config.fits_per_prompt(train.scales)
            extra = read_extra(config.extra_train, ws.root, train, test, per_prompt=per_prompt)
        train_hash = hash_mapping({"train": train_hash, "extra": extra.essays.fingerprint()})
    return Run(
        ws,
        name,
        config,
        config_hash(config),
        train,
        test,
        fold_set,
        fold_set.fold_array(train),
        train_hash=train_hash,
        test_hash="" if test is None else test.fingerprint(),
        data_hash=data_fingerprint(train, test),
        feature_versions=config.feature_versions(),
        extra=extra,
    )


def make_ready(run: Run, display: _Display) -> None:
    """Before any long work: the folders this run writes are writable, and what killed runs
    left half-done is repaired or deleted (never another live process's files)."""
    ws, name = run.ws, run.name
    for folder in (ws.base_models_dir / name, ws.oof_dir, parts_dir(ws, name), ws.cache_dir):
        ensure_writable(folder)
    for note in recover(ws, name):
        display.note(note)
    remove_dead_temps(ws.cache_dir, recursive=True)


def summarize(
    run: Run,
    results: Sequence[FoldResult],
    prepare_seconds: float,
    notes: tuple[str, ...] = (),
) -> RunSummary:
    """What a call did with ``run``'s folds; assembles ``oof/NAME.parquet`` once every fold is
    done (rank 0 only under ``torchrun``)."""
    missing = missing_folds(run)
    path, overall, written = None, None, False
    if not missing and is_main_process():
        path, overall, written = assemble(run)
    return RunSummary(
        name=run.name,
        kind=run.config.kind,
        config_hash=run.config_hash,
        n_folds=run.folds.n_folds,
        folds=tuple(results),
        missing_folds=tuple(missing),
        overall_qwk=overall,
        oof_path=path,
        oof_written=written,
        prepare_seconds=prepare_seconds,
        notes=notes,
    )
