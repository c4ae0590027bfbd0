"""The one engine that fits learners: their folds as independent (learner, fold) tasks on a backend.

``fit_learner`` (one learner, in this process) is the simplest case of ``fit_learners`` (many
learners, one after another, several at once with ``LocalBackend(jobs)``, or on a Ray cluster).
A ``FitTask`` carries only names and paths, so it can run in another process or on another
machine that sees the same workspace. The driver:

1. ``plan_tasks``: repairs what killed runs left, then lists only the unfinished folds;
2. ``prepare_learner``: computes each learner's per-essay features (embeddings, handcrafted)
   once, one learner at a time, before any of its folds run, so no two tasks compute them at
   the same time and every fold reads the same cached values;
3. ``Backend.run``: runs the tasks (``LocalBackend`` here; ``RayBackend`` in
   ``aes_ensemble.ray_backend``), calling ``on_result`` as each ends;
4. ``finish_learner``: assembles ``oof/NAME.parquet`` once every fold of a learner is done.

The steps themselves (open a run, check a fold, fit it, assemble) are ``aes_ensemble.fold_fit``'s.

A fold writes its own files (``fold_files``), so tasks of one learner never touch the same file
and a fold is the same bit for bit whichever process fitted it. A learner error inside a task
comes back as ``TaskResult.error`` (one line naming learner and fold); the other tasks go on.

Threads: ``LocalBackend(jobs)`` gives each worker ``thread_budget(jobs, cores)`` threads, that is
``max(1, cores // jobs)``, applied in the worker to the BLAS/OpenMP pools (threadpoolctl, and
``OMP_NUM_THREADS`` for libraries loaded later) and to torch (``torch.set_num_threads``). A
LightGBM/XGBoost learner's own ``params.n_jobs`` is part of its config and of its results, so it
is used as written (default 1); keep ``n_jobs x jobs`` within the cores.

Overrides: ``key=value`` applies to every learner of the command, ``NAME:key=value`` to learner
``NAME`` only (``lgbm:params.num_leaves=15``).
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, replace
from pathlib import Path
from types import FrameType
from typing import Literal, Protocol

from aes_ensemble.errors import AesError
from aes_ensemble.fold_fit import (
    FoldResult,
    Run,
    RunSummary,
    fit_fold,
    fold_state,
    make_ready,
    open_run,
    prepare_features,
    select_folds,
    summarize,
)
from aes_ensemble.io import is_main_process
from aes_ensemble.progress import Display
from aes_ensemble.workspace import Workspace

_THREAD_ENV = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")

# The runs one ``fit_learners`` call has opened in the driver's process: planning, preparing,
# the tasks it runs itself and the assembly all use one per learner, so the essays are read and
# fingerprinted once. Workers (other processes, Ray) open their own.
_OPENED: ContextVar[dict[tuple[str, str, tuple[str, ...]], Run] | None] = ContextVar(
    "aes_opened_runs", default=None
)


@dataclass(frozen=True)
class FitTask:
    """One fold of one learner; ``overrides`` are this learner's own (prefixes resolved).
    ``prepare_seconds``: the learner's feature preparation, recorded with its first task."""

    learner: str
    fold: int
    overrides: tuple[str, ...]
    workdir: Path
    prepare_seconds: float = 0.0


@dataclass(frozen=True)
class TaskResult:
    """What a task did; ``error`` is the one-line message of a failed task, else None."""

    learner: str
    fold: int
    qwk: float | None
    seconds: float
    error: str | None = None


class Backend(Protocol):
    """Runs tasks and calls ``on_result`` in the driver as each one ends (any order); returns
    every result. A failed task is a result with ``error``, never an exception; Ctrl-C
    (``KeyboardInterrupt``) cancels the tasks not yet finished and propagates. Tasks run in
    the driver's process show their stages in ``display``; others run quietly."""

    def run(
        self,
        tasks: Sequence[FitTask],
        on_result: Callable[[TaskResult], None],
        display: Display | None = None,
    ) -> list[TaskResult]: ...


def _open(ws: Workspace, name: str, overrides: tuple[str, ...]) -> Run:
    """``fold_fit.open_run``, once per learner inside a ``fit_learners`` call."""
    opened = _OPENED.get()
    if opened is None:
        return open_run(ws, name, overrides)
    key = (str(ws.root), name, overrides)
    if key not in opened:
        opened[key] = open_run(ws, name, overrides)
    return opened[key]


@contextmanager
def _each_run_opened_once() -> Iterator[None]:
    token = _OPENED.set({})
    try:
        yield
    finally:
        _OPENED.reset(token)


def learner_overrides(name: str, overrides: Sequence[str]) -> tuple[str, ...]:
    """The overrides that apply to learner ``name``: plain ones and ``NAME:``-prefixed ones
    (prefix removed). Idempotent, so a learner's own list passes through unchanged."""
    own: list[str] = []
    for item in overrides:
        key = item.partition("=")[0]
        target, sep, rest = item.partition(":")
        if not sep or ":" not in key:
            own.append(item)
        elif target == name:
            own.append(rest)
    return tuple(own)


def check_prefixes(names: Sequence[str], overrides: Sequence[str]) -> None:
    """Every ``NAME:`` prefix names a learner of the command."""
    for item in overrides:
        key = item.partition("=")[0]
        if ":" in key and key.partition(":")[0] not in names:
            raise AesError(
                f"override '{item}' names learner '{key.partition(':')[0]}', which is not "
                f"among {', '.join(names)}",
                key=key,
            )


def thread_budget(jobs: int, cores: int) -> int:
    """Threads per task when ``jobs`` tasks share ``cores`` cores: ``max(1, cores // jobs)``."""
    return max(1, cores // max(1, jobs))


def apply_thread_budget(threads: int) -> None:
    """Limit this process's BLAS/OpenMP pools and torch to ``threads`` (a worker's budget)."""
    from threadpoolctl import threadpool_limits

    for name in _THREAD_ENV:  # read by libraries (torch) loaded after this point
        os.environ[name] = str(threads)
    threadpool_limits(limits=threads)
    if "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(threads)


def plan_tasks(
    ws: Workspace,
    names: Sequence[str],
    folds: str | Sequence[int],
    overrides: Sequence[str],
    *,
    note: Callable[[str, str], None] = lambda learner, text: None,
) -> list[FitTask]:
    """The unfinished (learner, fold) tasks, learner by learner; first repairs what killed runs
    left (``fold_fit.make_ready``, by the main process only under ``torchrun``). ``note``
    receives (learner, text): what was repaired and why a fold is refitted."""
    check_prefixes(names, overrides)
    tasks: list[FitTask] = []
    for name in names:
        own = learner_overrides(name, overrides)
        run = _open(ws, name, own)
        chosen = select_folds(folds, run.folds.n_folds)  # a bad --fold before any folder is made
        if is_main_process():
            repairs = Display("", None, False)
            repairs.quiet = True
            make_ready(run, repairs)
            for text in repairs.notes:
                note(name, text)
        for fold in chosen:
            done, why = fold_state(run, fold)
            if done is None:
                tasks.append(FitTask(name, fold, own, ws.root))
            if why:
                note(name, why)
    return tasks


def prepare_learner(
    ws: Workspace, name: str, overrides: Sequence[str], display: Display | None = None
) -> float:
    """Cache learner ``name``'s per-essay features for train and test; seconds taken. Its long
    steps show in ``display`` (the driver's), or nowhere."""
    run = _open(ws, name, learner_overrides(name, overrides))
    if display is not None:
        return prepare_features(run, display)
    quiet = Display(name, None, False)
    quiet.quiet = True
    with quiet.running():
        return prepare_features(run, quiet)


def run_task(task: FitTask, display: Display | None = None) -> TaskResult:
    """Fit one fold (in whichever process runs it); its stages show in ``display`` (the
    driver's, in the driver's process), else nowhere. A learner or data error is returned as
    ``error``."""
    start = time.perf_counter()
    if display is None:
        display = Display(task.learner, None, False)
        display.quiet = True
    try:
        run = _open(Workspace.at(task.workdir), task.learner, task.overrides)
        with display.running(), _interruptible():
            result = fit_fold(run, task.fold, display, task.prepare_seconds)
    except AesError as exc:
        return TaskResult(task.learner, task.fold, None, _since(start), _one_line(task, exc))
    return TaskResult(task.learner, task.fold, result.qwk, _since(start))


def _since(start: float) -> float:
    return round(time.perf_counter() - start, 3)


def _one_line(task: FitTask, exc: BaseException | str) -> str:
    """The error as one line that names learner and fold."""
    text = " ".join(str(exc).split())
    where = f"{task.learner} fold {task.fold}"
    return text if where in text else f"{where}: {text}"


def finish_learner(
    ws: Workspace,
    name: str,
    overrides: Sequence[str],
    *,
    folds: str | Sequence[int] = "all",
    fitted: Sequence[int] = (),
    prepare_seconds: float = 0.0,
) -> RunSummary:
    """The summary of learner ``name`` over ``folds`` from the folds on disk (``fitted``: those
    this command fitted); assembles ``oof/NAME.parquet`` once every fold is done, as
    ``fit_learner`` does."""
    run = _open(ws, name, learner_overrides(name, overrides))
    results = []
    for fold in select_folds(folds, run.folds.n_folds):
        done, _ = fold_state(run, fold)
        if done is not None:
            status: Literal["fitted", "skipped"] = "fitted" if fold in fitted else "skipped"
            results.append(
                FoldResult(
                    fold, status, done.qwk, done.fit_seconds, done.predict_seconds, done.n_valid
                )
            )
    return summarize(run, results, prepare_seconds)


_task_running = False  # in a worker: whether Ctrl-C has a task to interrupt


@contextmanager
def _interruptible() -> Iterator[None]:
    global _task_running
    _task_running = True
    try:
        yield
    finally:
        _task_running = False


def _on_interrupt(signum: int, frame: FrameType | None) -> None:
    """A worker's Ctrl-C: ends its running task (whose uncommitted files are discarded); an
    idle worker waits for the driver to shut the pool down instead of dying with a traceback."""
    if _task_running:
        raise KeyboardInterrupt


def _worker_init(threads: int) -> None:
    apply_thread_budget(threads)
    signal.signal(signal.SIGINT, _on_interrupt)


class LocalBackend:
    """Tasks on this machine: in this process when ``jobs == 1`` (a learner's first failed fold
    skips its others), else up to ``jobs`` at once in 'spawn' worker processes (torch and fork
    do not mix), each with ``thread_budget`` threads."""

    def __init__(self, jobs: int = 1, cores: int | None = None) -> None:
        if jobs < 1:
            raise AesError(f"--jobs {jobs}: must be 1 or more", key="jobs")
        self.jobs = jobs
        self.cores = cores or os.cpu_count() or 1

    def run(
        self,
        tasks: Sequence[FitTask],
        on_result: Callable[[TaskResult], None],
        display: Display | None = None,
    ) -> list[TaskResult]:
        if self.jobs == 1 or len(tasks) <= 1:
            return self._in_process(tasks, on_result, display)
        return self._in_pool(tasks, on_result)

    def _in_process(
        self,
        tasks: Sequence[FitTask],
        on_result: Callable[[TaskResult], None],
        display: Display | None,
    ) -> list[TaskResult]:
        results: list[TaskResult] = []
        failed: set[str] = set()
        for task in tasks:
            # One after another, a learner's first failed fold ends it: a refused setting fails
            # every fold alike, and the user fixes it before waiting on the rest.
            if task.learner in failed:
                continue
            try:
                results.append(run_task(task, display))
            except Exception as exc:  # as in the pool: the other tasks go on
                results.append(_failed(task, exc))
            if results[-1].error is not None:
                failed.add(task.learner)
            on_result(results[-1])
        return results

    def _in_pool(
        self, tasks: Sequence[FitTask], on_result: Callable[[TaskResult], None]
    ) -> list[TaskResult]:
        threads = thread_budget(self.jobs, self.cores)
        pool = ProcessPoolExecutor(
            max_workers=min(self.jobs, len(tasks)),
            mp_context=multiprocessing.get_context("spawn"),
            initializer=_worker_init,
            initargs=(threads,),
        )
        results: list[TaskResult] = []
        queue = iter(tasks)
        running: dict[Future[TaskResult], FitTask] = {}
        try:
            # Only as many tasks as workers are handed to the pool: the others stay here, so
            # Ctrl-C starts nothing new (the pool would run tasks it had already queued).
            while True:
                for task in queue:
                    running[pool.submit(run_task, task)] = task
                    if len(running) == self.jobs:
                        break
                if not running:
                    break
                finished, _ = wait(running, return_when=FIRST_COMPLETED)
                for future in finished:
                    results.append(_outcome(running.pop(future), future))
                    on_result(results[-1])
        except KeyboardInterrupt:
            # Running tasks end too (Ctrl-C reaches the workers) and discard their uncommitted
            # files; finished folds stay.
            pool.shutdown(wait=True, cancel_futures=True)
            raise
        pool.shutdown(wait=True)
        return results


def _outcome(task: FitTask, future: Future[TaskResult]) -> TaskResult:
    """A task's result; an exception that escaped it (a bug, a killed worker) as its error."""
    try:
        return future.result()
    except Exception as exc:  # the other tasks go on; the failure is reported with its fold
        return _failed(task, exc)


def _failed(task: FitTask, exc: Exception) -> TaskResult:
    """An unexpected exception of a task as its one-line error, with the exception's type."""
    return TaskResult(
        task.learner, task.fold, None, 0.0, _one_line(task, f"{type(exc).__name__}: {exc}")
    )


@dataclass(frozen=True)
class FitResult:
    """What ``fit_learners`` did: a summary per learner, the failed tasks' one-line errors and
    the notes (repairs, why folds were refitted, extra essays)."""

    summaries: tuple[RunSummary, ...]
    errors: tuple[str, ...]
    notes: tuple[str, ...]


def fit_learners(
    ws: Workspace,
    names: Sequence[str],
    backend: Backend | None = None,
    *,
    folds: str | Sequence[int] = "all",
    overrides: Sequence[str] = (),
    progress: bool = True,
) -> FitResult:
    """Fit the unfinished folds of every learner in ``names`` on ``backend`` (default: one
    after another in this process) under one progress display, then assemble each learner
    whose folds are all done. A failed fold is an error line; the other folds go on."""
    if len(set(names)) != len(names):
        raise AesError(f"a learner is named twice in {','.join(names)}", key="learners")
    with _each_run_opened_once():
        single = len(names) == 1

        def where(learner: str) -> str | None:
            return None if single else learner

        notes: list[str] = []
        tasks = plan_tasks(
            ws,
            names,
            folds,
            overrides,
            note=lambda learner, text: notes.append(text if single else f"{learner}: {text}"),
        )
        # One learner's display is named after it ("lgbm: fold 0: fit"); several share one.
        display = Display(names[0] if single else "fit-base", len(tasks), progress)
        for text in notes:
            display.note(text)
        errors: list[str] = []
        prepared: dict[str, float] = {}

        def on_result(result: TaskResult) -> None:
            if result.error is not None:
                errors.append(result.error)
                display.stage(result.fold, "failed (error below)", learner=where(result.learner))
                return
            if display.progress is None and not single:
                display.line(f"{result.learner} fold {result.fold}: QWK {result.qwk:.4f}")
            display.advance()

        first_fold: dict[str, int] = {}
        for task in tasks:
            first_fold.setdefault(task.learner, task.fold)
        with display.running():
            for name, first in first_fold.items():
                display.stage(first, "per-essay features for all essays", learner=where(name))
                prepared[name] = prepare_learner(ws, name, overrides, display)
            tasks = [
                replace(t, prepare_seconds=prepared[t.learner])
                if t.fold == first_fold[t.learner]
                else t
                for t in tasks
            ]
            results = (backend or LocalBackend()).run(tasks, on_result, display)
        fitted = {(r.learner, r.fold) for r in results if r.error is None}
        summaries = tuple(
            finish_learner(
                ws,
                name,
                overrides,
                folds=folds,
                fitted=[fold for learner, fold in fitted if learner == name],
                prepare_seconds=prepared.get(name, 0.0),
            )
            for name in names
        )
        return FitResult(summaries, tuple(errors), tuple(display.notes))


def fit_learner(
    workspace: Workspace | str | Path,
    name: str,
    *,
    folds: str | Sequence[int] = "all",
    overrides: Sequence[str] = (),
    progress: bool = True,
) -> RunSummary:
    """Fit learner ``name`` (``configs/NAME.yaml`` + ``overrides``) on the chosen folds in this
    process, skipping folds already complete with the same config, folds and data, then
    assemble when all are done; ``fit_learners`` with one learner. A failed fold raises its
    one-line error after the other folds ran, and leaves its previous files as they were."""
    ws = workspace if isinstance(workspace, Workspace) else Workspace.at(workspace)
    result = fit_learners(ws, [name], folds=folds, overrides=overrides, progress=progress)
    if result.errors:
        raise AesError(result.errors[0])
    return replace(result.summaries[0], notes=result.notes)
