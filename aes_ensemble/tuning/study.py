"""The Optuna study behind ``aes-ensemble tune``: storage, sampler, pruner, the outer loop of
``--nested`` and ``configs/NAME_tuned.yaml``.

Storage is any Optuna RDB URL; the default is SQLite in the workspace (``tune/NAME.db``), opened
with a long busy timeout because several processes on one machine share it (Optuna's FAQ advises
a server database for parallel work: PostgreSQL or MySQL, which also let many machines run one
study). Each trial's sampler is TPE seeded with ``seed + trial number``: one process replays the
same trials for the same study, and concurrent workers, whose trials have distinct numbers, never
draw the same random start-up points. Waiting (enqueued) trials are not used: SQLite cannot lock
a row, so two workers could both pop one (optuna issue #4002).
"""

from __future__ import annotations

import os
import socket
import time
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import optuna
import yaml
from optuna.distributions import BaseDistribution
from optuna.samplers import BaseSampler, TPESampler
from optuna.trial import FrozenTrial, TrialState

from aes_ensemble.config import (
    apply_overrides,
    hash_mapping,
    override_sources,
    read_yaml,
    validate,
)
from aes_ensemble.data import Essays
from aes_ensemble.errors import AesError
from aes_ensemble.extra_train import with_extra
from aes_ensemble.fold_fit import Run, open_run
from aes_ensemble.io import ensure_writable, write_text_atomic
from aes_ensemble.learners.base import LearnerConfig
from aes_ensemble.learners.registry import learner_class
from aes_ensemble.learners.search_space import SearchParam, search_space
from aes_ensemble.metrics import headline_qwk
from aes_ensemble.tuning.trials import (
    candidate,
    cross_levels,
    fit_predict,
    headline,
    oof_in_memory,
    with_values,
)
from aes_ensemble.workspace import Workspace

TUNE_DIR = "tune"
SQLITE_TIMEOUT_S = 120  # seconds a writer waits for another process's lock before failing
PRUNE_AFTER_TRIALS = 5  # complete trials before any is pruned (Optuna's default; with 2
# the median of two is their mean, and a trial as good as the best was pruned on ridge_tfidf)
PRUNE_WARMUP_FOLDS = 1  # never pruned on its first fold alone
# What a study records of the runs it may hold, as an error names it.
FINGERPRINT_WORDS = {
    "learner": "learner kind",
    "folds_hash": "folds",
    "data_hash": "essays",
    "fixed_config": "fixed settings (the config less its searched keys)",
    "outer_fold": "outer fold",
}


@dataclass(frozen=True)
class TrialRecord:
    """One finished trial: its state, value (complete only), running QWK per fold, params."""

    study: str
    number: int
    state: str
    value: float | None
    running: tuple[float, ...]
    params: dict[str, Any]
    worker: str


@dataclass(frozen=True)
class OuterFold:
    """``--nested``: the inner study's best on the outer training folds, and the outer fold."""

    fold: int
    inner_best: float
    outer_qwk: float
    params: dict[str, Any]


@dataclass(frozen=True)
class TuneResult:
    name: str
    study_name: str
    storage: str  # the URL with any password hidden
    trials: tuple[TrialRecord, ...]  # this process's trials, in order
    n_complete: int  # in the whole study (every worker)
    n_pruned: int
    best_number: int
    best_value: float
    best_params: dict[str, Any]
    tuned_path: Path
    nested: tuple[OuterFold, ...] = ()
    nested_qwk: float | None = None
    notes: tuple[str, ...] = ()  # e.g. how many extra_train essays joined the training rows


class TrialSeededSampler(BaseSampler):
    """TPE with ``seed + trial.number`` as each trial's seed (see the module's docstring)."""

    def __init__(self, seed: int) -> None:
        self.seed = seed
        self._inner = self._tpe(0)

    def _tpe(self, number: int) -> TPESampler:
        return TPESampler(seed=self.seed + number, constant_liar=True)

    def before_trial(self, study: optuna.Study, trial: FrozenTrial) -> None:
        self._inner = self._tpe(trial.number)
        self._inner.before_trial(study, trial)

    def infer_relative_search_space(
        self, study: optuna.Study, trial: FrozenTrial
    ) -> dict[str, BaseDistribution]:
        return self._inner.infer_relative_search_space(study, trial)

    def sample_relative(
        self, study: optuna.Study, trial: FrozenTrial, search_space: dict[str, BaseDistribution]
    ) -> dict[str, Any]:
        return self._inner.sample_relative(study, trial, search_space)

    def sample_independent(
        self,
        study: optuna.Study,
        trial: FrozenTrial,
        param_name: str,
        param_distribution: BaseDistribution,
    ) -> Any:
        return self._inner.sample_independent(study, trial, param_name, param_distribution)

    def after_trial(
        self,
        study: optuna.Study,
        trial: FrozenTrial,
        state: TrialState,
        values: Sequence[float] | None,
    ) -> None:
        self._inner.after_trial(study, trial, state, values)


def default_storage(ws: Workspace, name: str) -> str:
    folder = ws.root / TUNE_DIR
    ensure_writable(folder)
    return f"sqlite:///{folder / name}.db"


def shown_url(url: str) -> str:
    """``url`` without its password, for messages and the tuned config's header."""
    from sqlalchemy.engine import make_url

    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:
        return url


def open_storage(url: str) -> optuna.storages.RDBStorage:
    """An RDB storage; SQLite with a long busy timeout. Processes starting at once race to
    create the tables and stamp the schema version (the loser gets an OperationalError or an
    IntegrityError on ``alembic_version``): short retries absorb it, as the winner's tables then
    exist."""
    from sqlalchemy.exc import ArgumentError, DBAPIError

    kwargs: dict[str, Any] = {}
    if url.startswith("sqlite"):
        kwargs["connect_args"] = {"timeout": SQLITE_TIMEOUT_S}
    attempts = 8
    for attempt in range(attempts):
        try:
            return optuna.storages.RDBStorage(url, engine_kwargs=kwargs)
        except DBAPIError as exc:
            if attempt == attempts - 1:
                raise AesError(
                    f"cannot open the study storage {shown_url(url)} ({exc.orig})", key="storage"
                ) from None
            time.sleep(0.25 * (attempt + 1))
        except (ArgumentError, ImportError, ValueError) as exc:
            raise AesError(
                f"'{shown_url(url)}' is not a usable Optuna storage URL ({exc}); e.g. "
                "sqlite:///tune.db or postgresql://user@host/db",
                key="storage",
            ) from None
    raise AssertionError("unreachable")


def open_study(
    storage: optuna.storages.RDBStorage, study_name: str, seed: int, fingerprint: dict[str, str]
) -> optuna.Study:
    """Create or join ``study_name``; a study run on other folds, data or learner is refused
    (its values would not be comparable)."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(
        storage=storage,
        study_name=study_name,
        direction="maximize",
        sampler=TrialSeededSampler(seed),
        pruner=optuna.pruners.MedianPruner(
            n_startup_trials=PRUNE_AFTER_TRIALS, n_warmup_steps=PRUNE_WARMUP_FOLDS
        ),
        load_if_exists=True,
    )
    recorded = study.user_attrs
    for key, value in fingerprint.items():
        if key in recorded and recorded[key] != value:
            raise AesError(
                f"study '{study_name}' was run with other {FINGERPRINT_WORDS.get(key, key)} "
                f"({recorded[key]}, now {value}): its trials are not comparable; "
                "pass --study-name NEW",
                key="study-name",
            )
        study.set_user_attr(key, value)
    return study


def checked_space(
    model: type[LearnerConfig], raw: Mapping[str, Any], path: Path, fixed: Mapping[str, str]
) -> dict[str, SearchParam]:
    """The search space less the keys ``fixed`` on the command line, each key and both ends of
    each range validated against the config before any trial (a misspelled key is one line
    naming the closest valid key)."""
    config = validate(model, raw, path=path)
    space = {
        key: param
        for key, param in search_space(config.kind, config.search).items()
        if key not in fixed
    }
    if not space:
        raise AesError(
            "every searched key is fixed on the command line: nothing left to tune", key="search"
        )
    for key, param in space.items():
        for value in param.samples():
            try:
                candidate(model, raw, {key: value}, path)
            except AesError as exc:
                raise AesError(
                    f"search space: {exc.message} (at {key}={value})",
                    path=path,
                    key=f"search.{key}",
                ) from None
    return space


def fixed_hash(raw: Mapping[str, Any], space: Mapping[str, SearchParam]) -> str:
    """Digest of what every trial shares: the config less ``search``, ``resources`` and the
    searched keys. A study is joined only with the same (its search ranges may change)."""
    shared = {key: value for key, value in raw.items() if key not in ("search", "resources")}
    return hash_mapping(with_values(shared, dict.fromkeys(space)))


def _record(study: str, trial: FrozenTrial) -> TrialRecord:
    return TrialRecord(
        study=study,
        number=trial.number,
        state=trial.state.name.lower(),
        value=trial.value if trial.state == TrialState.COMPLETE else None,
        running=tuple(trial.intermediate_values[k] for k in sorted(trial.intermediate_values)),
        params=dict(trial.params),
        worker=str(trial.user_attrs.get("worker", "")),
    )


@dataclass(frozen=True)
class _Search:
    """What every trial of one study shares; ``extra``: the config's ``extra_train`` essays,
    added to every fold's training rows."""

    model: type[LearnerConfig]
    raw: dict[str, Any]
    path: Path
    space: dict[str, SearchParam]
    essays: Essays
    fold_of: np.ndarray
    cache_dir: Path
    progress: bool
    extra: Essays | None = None


def _optimize(
    search: _Search,
    study: optuna.Study,
    trials: int,
    timeout: float | None,
    on_trial: Callable[[TrialRecord], None] | None,
) -> list[TrialRecord]:
    """Run ``trials`` trials in this process (or until ``timeout``); this process's records."""
    worker = f"{socket.gethostname()}:{os.getpid()}"
    last_step = len(np.unique(search.fold_of)) - 1

    def objective(trial: optuna.Trial) -> float:
        trial.set_user_attr("worker", worker)
        values = {key: p.suggest(trial, key) for key, p in search.space.items()}
        config = candidate(search.model, search.raw, values, search.path)

        def after_fold(step: int, qwk: float) -> None:
            trial.report(qwk, step)
            if step < last_step and trial.should_prune():  # all folds fitted: score it
                raise optuna.TrialPruned(f"running QWK {qwk:.4f} after {step + 1} folds")

        pred = oof_in_memory(
            config,
            search.essays,
            search.fold_of,
            search.cache_dir,
            after_fold,
            extra=search.extra,
            progress=search.progress,
        )
        return headline(search.essays, pred, search.fold_of)

    records: list[TrialRecord] = []

    def done(_: optuna.Study, trial: FrozenTrial) -> None:
        records.append(_record(study.study_name, trial))
        if on_trial is not None:
            on_trial(records[-1])

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        study.optimize(objective, n_trials=trials, timeout=timeout, callbacks=[done])
    return records


def _best(study: optuna.Study, timeout: float | None) -> FrozenTrial:
    try:
        return study.best_trial
    except ValueError:
        raise AesError(
            f"study '{study.study_name}' has no complete trial yet"
            + ("" if timeout is None else f"; raise --timeout ({timeout:g} s)"),
            key="trials",
        ) from None


def _count(study: optuna.Study, state: TrialState) -> int:
    return len(study.get_trials(deepcopy=False, states=(state,)))


def write_tuned(
    ws: Workspace, name: str, raw: Mapping[str, Any], best: FrozenTrial, header: str
) -> Path:
    """``configs/NAME_tuned.yaml``: the config with the best trial's values, written atomically."""
    path = ws.configs_dir / f"{name}_tuned.yaml"
    body = yaml.safe_dump(with_values(raw, best.params), sort_keys=False)
    write_text_atomic(path, header + body)
    return path


def _nested(
    search: _Search,
    storage: optuna.storages.RDBStorage,
    study_name: str,
    seed: int,
    fingerprint: dict[str, str],
    trials: int,
    timeout: float | None,
    on_trial: Callable[[TrialRecord], None] | None,
) -> tuple[tuple[OuterFold, ...], float]:
    """Tune inside each outer training set (the other workspace folds as the inner folds), fit
    the inner best on it, score the outer fold: the honest estimate of tuning + fitting."""
    essays, fold_of = search.essays, search.fold_of
    outer_pred = np.full(len(essays), np.nan)
    chosen: list[tuple[int, float, dict[str, Any]]] = []
    for fold in np.unique(fold_of):
        held = fold_of == fold
        inner = replace(search, essays=essays.take(np.flatnonzero(~held)), fold_of=fold_of[~held])
        study = open_study(
            storage, f"{study_name}.outer{fold}", seed, {**fingerprint, "outer_fold": str(fold)}
        )
        _optimize(inner, study, trials, timeout, on_trial)
        best = _best(study, timeout)
        config = candidate(search.model, search.raw, best.params, search.path)
        train = inner.essays if search.extra is None else with_extra(inner.essays, search.extra)
        outer_pred[held] = fit_predict(
            config,
            train,
            essays.take(np.flatnonzero(held)),
            search.cache_dir,
            f"outer fold {fold}",
        )
        chosen.append((int(fold), float(best.value or 0.0), dict(best.params)))
    levels = cross_levels(essays, outer_pred, fold_of)
    outer = tuple(
        OuterFold(
            fold,
            inner_best,
            headline_qwk(
                essays.scores[fold_of == fold],
                levels[fold_of == fold],
                essays.prompts[fold_of == fold],
                essays.scales,
            ),
            params,
        )
        for fold, inner_best, params in chosen
    )
    return outer, headline_qwk(essays.scores, levels, essays.prompts, essays.scales)


def tune_learner(
    workspace: Workspace | str | Path,
    name: str,
    *,
    trials: int,
    storage: str | None = None,
    timeout: float | None = None,
    study_name: str | None = None,
    nested: bool = False,
    overrides: Sequence[str] = (),
    on_trial: Callable[[TrialRecord], None] | None = None,
    progress: bool = False,
) -> TuneResult:
    """Search learner ``name``'s parameters on the workspace folds and write the best as
    ``configs/NAME_tuned.yaml``; with ``nested``, also the honest outer estimate. ``on_trial``
    gets each finished trial; ``progress`` shows per-essay feature preparation."""
    if trials < 1:
        raise AesError(f"--trials {trials} must be at least 1", key="trials")
    if timeout is not None and timeout <= 0:
        raise AesError(f"--timeout {timeout:g} must be a positive number of seconds")
    ws = workspace if isinstance(workspace, Workspace) else Workspace.at(workspace)
    run: Run = open_run(ws, name, overrides)
    path = ws.config_path(name)
    raw = apply_overrides(read_yaml(path), overrides)
    model = learner_class(run.config.kind).config_model
    space = checked_space(model, raw, path, fixed=override_sources(overrides))
    for folder in (ws.cache_dir, ws.configs_dir):  # before the long work, not after it
        ensure_writable(folder)
    extra = None if run.extra is None else run.extra.essays
    search = _Search(model, raw, path, space, run.train, run.fold_of, ws.cache_dir, progress, extra)
    url = storage or default_storage(ws, name)
    study_name = study_name or name
    rdb = open_storage(url)
    fingerprint = {
        "learner": run.config.kind,
        "folds_hash": run.folds.hash,
        "data_hash": run.train_hash,
        "fixed_config": fixed_hash(raw, space),
    }
    seed = run.config.seed
    study = open_study(rdb, study_name, seed, fingerprint)
    records = _optimize(search, study, trials, timeout, on_trial)
    best = _best(study, timeout)
    header = (
        f"# aes-ensemble tune {name}: best of study '{study_name}' ({shown_url(url)}), "
        f"trial {best.number}, headline OOF QWK {best.value:.4f} with cross-fitted cut points.\n"
        "# Optimistic: the parameters were chosen on the folds that measure them "
        "(`tune --nested` gives the honest estimate).\n"
    )
    tuned = write_tuned(ws, name, raw, best, header)
    outer: tuple[OuterFold, ...] = ()
    nested_qwk = None
    if nested:
        outer, nested_qwk = _nested(
            search, rdb, study_name, seed, fingerprint, trials, timeout, on_trial
        )
    return TuneResult(
        name=name,
        study_name=study_name,
        storage=shown_url(url),
        trials=tuple(records),
        n_complete=_count(study, TrialState.COMPLETE),
        n_pruned=_count(study, TrialState.PRUNED),
        best_number=best.number,
        best_value=float(best.value or 0.0),
        best_params=dict(best.params),
        tuned_path=tuned,
        nested=outer,
        nested_qwk=nested_qwk,
        notes=() if run.extra is None else (run.extra.note(),),
    )
