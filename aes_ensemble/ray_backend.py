"""Run (learner, fold) tasks on a Ray cluster: the same ``run_task`` as ``--jobs N``, scheduled
by Ray on whichever node has the CPUs or GPUs a learner's config asks for.

Every worker reads and writes the workspace itself, so the workspace must be on storage every
node sees at the same path; the driver checks that on every node before submitting anything. A
task whose worker dies is retried by Ray: fold files are replaced in one step (``fold_files``),
so a retry writes the same files. A learner error comes back as one line in ``TaskResult.error``
while the other tasks finish; Ctrl-C cancels what has not finished and keeps finished folds.
"""

from __future__ import annotations

import logging
import socket
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path
from types import ModuleType
from typing import Any

from aes_ensemble.engine import FitTask, TaskResult, run_task
from aes_ensemble.errors import AesError
from aes_ensemble.io import write_text_atomic
from aes_ensemble.learners.registry import load_learner_config
from aes_ensemble.learners.resources import task_resources
from aes_ensemble.progress import Display
from aes_ensemble.workspace import Workspace

RAY_MISSING = "--backend ray needs Ray, which is not installed: pip install 'aes-ensemble[ray]'"
# How long the storage check waits for every node to answer (a node busy with other work
# still starts a zero-CPU task at once).
CHECK_TIMEOUT_S = 120.0


def import_ray() -> ModuleType:
    """Ray, or the one-line error that says how to install it."""
    try:
        import ray
    except ImportError:
        raise AesError(RAY_MISSING) from None
    return ray


def _read_probe(path: str) -> tuple[str, str]:
    """On a worker: its host name and what it found at ``path`` (the token, or why not)."""
    try:
        seen = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        seen = f"cannot read it ({exc.strerror or exc})"
    return socket.gethostname(), seen


def check_shared_storage(ray: ModuleType, workdir: Path) -> None:
    """Refuse to submit when a node cannot read a token the driver just wrote into the
    workspace: its workers would fit on another copy of the data, or fail late."""
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    token = uuid.uuid4().hex
    probe = Workspace.at(workdir).cache_dir / f"ray-storage-check-{token}.txt"
    write_text_atomic(probe, token)
    remote = ray.remote(_read_probe)
    try:
        nodes = [node["NodeID"] for node in ray.nodes() if node["Alive"]]
        refs = [
            remote.options(
                num_cpus=0,
                scheduling_strategy=NodeAffinitySchedulingStrategy(node, soft=False),
            ).remote(str(probe))
            for node in nodes
        ]
        answers = ray.get(refs, timeout=CHECK_TIMEOUT_S)
    finally:
        probe.unlink(missing_ok=True)
    for host, seen in answers:
        if seen != token:
            found = seen if seen.startswith("cannot") else "found other content"
            raise AesError(
                f"a Ray worker on node {host} cannot see the workspace ({found} at {probe}); "
                "the workspace must be on storage every node sees, mounted at the same path "
                "(a shared filesystem such as NFS)",
                path=workdir,
            )


def ray_options(task: FitTask) -> dict[str, Any]:
    """Ray resource options of a task: its learner config's ``resources`` (a transformer fold
    asks for one GPU unless its config says otherwise)."""
    path = Workspace.at(task.workdir).config_path(task.learner)
    config = load_learner_config(path, task.overrides)
    res = task_resources(config.resources, config.kind)
    options: dict[str, Any] = {"num_cpus": res.num_cpus, "num_gpus": res.num_gpus}
    if res.memory is not None:
        options["memory"] = res.memory
    return options


class RayBackend:
    """Runs tasks on the Ray cluster at ``address`` (``auto``: the one this machine belongs to;
    ``ray://HOST:PORT``: a remote one; None: a local Ray started for this run). ``function`` is
    what each task runs (``run_task``); ``max_retries``: how often a task whose worker died is
    started again."""

    def __init__(
        self,
        address: str | None = None,
        *,
        max_retries: int = 3,
        function: Callable[[FitTask], TaskResult] = run_task,
    ) -> None:
        self.address = address
        self.max_retries = max_retries
        self.function = function
        self.ray = import_ray()

    def _connect(self) -> bool:
        """Connect unless already connected; True when this call did (and must shut down)."""
        ray = self.ray
        if ray.is_initialized():
            return False
        try:
            if self.address is None:
                ray.init(
                    include_dashboard=False, log_to_driver=False, logging_level=logging.WARNING
                )
            else:
                ray.init(address=self.address, log_to_driver=False, logging_level=logging.WARNING)
        except ConnectionError as exc:
            raise AesError(
                f"--address {self.address}: could not connect to a Ray cluster there ({exc}); "
                "start one with `ray start --head` or give its address (a cluster with token "
                "authentication also needs RAY_AUTH_MODE=token and its token on this machine)",
                key="address",
            ) from None
        except ray.exceptions.AuthenticationError as exc:
            first = str(exc.message).strip().splitlines()[0]
            raise AesError(
                f"--address {self.address}: the Ray cluster refused this machine ({first}); "
                "give it the cluster's token (RAY_AUTH_TOKEN or RAY_AUTH_TOKEN_PATH, see "
                "`ray get-auth-token`)",
                key="address",
            ) from None
        return True

    def _outcome(self, ref: Any, task: FitTask) -> TaskResult:
        """The task's result; a task that raised or whose worker died for good as one line."""
        ray = self.ray
        try:
            result: TaskResult = ray.get(ref)
        except ray.exceptions.RayTaskError as exc:  # a bug that escaped run_task
            lines = str(exc).strip().splitlines()
            return _failed(task, lines[-1] if lines else type(exc).__name__)
        except (ray.exceptions.WorkerCrashedError, ray.exceptions.NodeDiedError) as exc:
            return _failed(
                task,
                f"its Ray worker died on each of {self.max_retries + 1} tries "
                f"({type(exc).__name__}); see the Ray logs of the node "
                "(/tmp/ray/session_latest/logs)",
            )
        return result

    def run(
        self,
        tasks: Sequence[FitTask],
        on_result: Callable[[TaskResult], None],
        display: Display | None = None,
    ) -> list[TaskResult]:
        """Submit every task, report each result as it arrives; results in the tasks' order.
        Tasks run on the cluster's workers, so ``display`` shows only their results."""
        if not tasks:
            return []
        ray = self.ray
        started = self._connect()
        try:
            for workdir in sorted({task.workdir for task in tasks}):
                check_shared_storage(ray, workdir)
            remote = ray.remote(_call)
            refs = {
                remote.options(max_retries=self.max_retries, **ray_options(task)).remote(
                    self.function, task
                ): i
                for i, task in enumerate(tasks)
            }
            results: dict[int, TaskResult] = {}
            pending = list(refs)
            try:
                while pending:
                    done, pending = ray.wait(pending, num_returns=1)
                    for ref in done:
                        i = refs[ref]
                        results[i] = self._outcome(ref, tasks[i])
                        on_result(results[i])
            except KeyboardInterrupt:
                for ref in pending:
                    ray.cancel(ref)
                raise
            return [results[i] for i in range(len(tasks))]
        finally:
            if started:
                ray.shutdown()


def _call(function: Callable[[FitTask], TaskResult], task: FitTask) -> TaskResult:
    """On a worker: run one task (``function`` travels with it, so any picklable one will do)."""
    return function(task)


def _failed(task: FitTask, why: str) -> TaskResult:
    return TaskResult(task.learner, task.fold, None, 0.0, f"{task.learner} fold {task.fold}: {why}")
