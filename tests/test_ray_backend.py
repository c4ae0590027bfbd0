"""The Ray backend on a real local Ray cluster (``ray start --head``, 2 CPUs, one per module).

The cluster runs in its own mount namespace where possible, with an empty file system over one
folder: a workspace there is what a node without the shared storage sees.
"""

from __future__ import annotations

import functools
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import polars as pl
import pytest

# `ray start` clusters use token authentication. This module's cluster and driver share a token
# made here and handed over through Ray's own settings (the mode is read when Ray loads): nothing
# is read from or written to ~/.ray, so a machine where Ray never ran passes as well.
os.environ["RAY_AUTH_MODE"] = "token"
os.environ["RAY_AUTH_TOKEN"] = secrets.token_hex(32)
os.environ.pop("RAY_AUTH_TOKEN_PATH", None)
pytest.importorskip("ray", reason="needs Ray: pip install 'aes-ensemble[ray]'")

from aes_ensemble.data import load_workspace_dataset
from aes_ensemble.engine import (
    FitTask,
    LocalBackend,
    TaskResult,
    fit_learners,
    plan_tasks,
    prepare_learner,
    run_task,
)
from aes_ensemble.errors import AesError
from aes_ensemble.fold_files import read_record
from aes_ensemble.folds import assign_folds, save_folds
from aes_ensemble.ray_backend import RayBackend, ray_options
from aes_ensemble.sample import TEST, TRAIN, sample_path
from aes_ensemble.store import read_predictions
from aes_ensemble.workspace import Workspace

TFIDF = "  tfidf: {word_ngram_range: [1, 1], char_ngram_range: [3, 3], max_features: 2000}\n"
RIDGE = "kind: ridge\nfeatures:\n  handcrafted: true\n" + TFIDF + "params: {alpha: 3.0}\n"
LGBM = (
    "kind: lgbm\nfeatures:\n  handcrafted: true\n"
    + TFIDF
    + "  svd_components: 8\nparams: {n_estimators: 20, learning_rate: 0.2, num_leaves: 7}\n"
)
NAMES = ("ridge_tfidf", "lgbm")
START_TIMEOUT_S = 120


@dataclass(frozen=True)
class Cluster:
    address: str
    hidden: Path | None  # a folder the cluster's workers see empty; None: no mount namespace


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _namespaces_work(hidden: Path) -> bool:
    """Whether this machine lets us mount over ``hidden`` in a private mount namespace."""
    if shutil.which("unshare") is None:
        return False
    probe = ["unshare", "-rm", "sh", "-c", f"mount -t tmpfs none '{hidden}'"]
    return subprocess.run(probe, capture_output=True, timeout=30).returncode == 0


@pytest.fixture(scope="module")
def cluster() -> Iterator[Cluster]:
    """A 2-CPU Ray head started for this module and stopped at its end (only the process
    this fixture started, which stops its raylet and workers)."""
    import ray

    root = Path(tempfile.mkdtemp(prefix="aes-ray-"))  # short: Ray's socket paths must fit
    hidden = root / "hidden"
    hidden.mkdir()
    port = _free_port()
    start = [
        sys.executable,
        "-m",
        "ray.scripts.scripts",
        "start",
        "--head",
        f"--port={port}",
        "--num-cpus=2",
        "--num-gpus=0",
        "--object-store-memory=100000000",
        "--include-dashboard=false",
        "--disable-usage-stats",
        f"--temp-dir={root / 'ray'}",
        "--block",
    ]
    isolated = _namespaces_work(hidden)
    if isolated:
        mount = f"mount -t tmpfs none '{hidden}' && exec \"$@\""
        start = ["unshare", "-rm", "sh", "-c", mount, "sh", *start]
    env = dict(os.environ, RAY_USAGE_STATS_ENABLED="0")
    # Workers import this module for the test's own task wrapper.
    env["PYTHONPATH"] = os.pathsep.join([str(Path(__file__).parent), env.get("PYTHONPATH", "")])
    head = subprocess.Popen(start, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    address = f"127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            try:
                ray.init(address=address, log_to_driver=False)
                ray.shutdown()
                break
            except ConnectionError:
                if head.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"the Ray head did not start (exit {head.poll()})")
                time.sleep(1)
        yield Cluster(address, hidden if isolated else None)
    finally:
        if ray.is_initialized():
            ray.shutdown()
        head.send_signal(signal.SIGINT)  # SIGTERM would drain for 30 s first
        try:
            head.wait(timeout=60)
        except subprocess.TimeoutExpired:
            head.kill()
            head.wait(timeout=30)
        shutil.rmtree(root, ignore_errors=True)


def build_workspace(root: Path, configs: dict[str, str], n: int = 120) -> Workspace:
    """A workspace on the first ``n`` essays of the embedded sample, 3 prompt-grouped folds."""
    (root / "configs").mkdir(parents=True)
    pl.read_csv(sample_path(TRAIN), infer_schema=False).head(n).write_csv(root / "essays.csv")
    pl.read_csv(sample_path(TEST), infer_schema=False).head(20).write_csv(root / "test.csv")
    (root / "configs" / "data.yaml").write_text(
        "train: essays.csv\ntest: test.csv\nformat: ellipse\n", encoding="utf-8"
    )
    for name, text in configs.items():
        (root / "configs" / f"{name}.yaml").write_text(text, encoding="utf-8")
    ws = Workspace.at(root)
    train, _ = load_workspace_dataset(ws)
    save_folds(ws, assign_folds(train, 3, seed=0))
    return ws


@pytest.fixture(scope="module")
def sequential(tmp_path_factory: pytest.TempPathFactory) -> Workspace:
    """Both learners fitted one fold after another in this process: the reference."""
    ws = build_workspace(tmp_path_factory.mktemp("seq"), {"ridge_tfidf": RIDGE, "lgbm": LGBM})
    result = fit_learners(ws, NAMES, LocalBackend(1), progress=False)
    assert result.errors == ()
    return ws


def oof_frame(ws: Workspace, name: str) -> pl.DataFrame:
    return read_predictions(ws.oof_path(name)).frame


def die_once(marker_dir: Path, task: FitTask) -> TaskResult:
    """Test-only task: the first attempt at fold 1 kills its own worker process, as an OOM
    killer or a lost node would; a retry runs the real task."""
    marker = marker_dir / f"{task.learner}-{task.fold}.died"
    if task.fold == 1 and not marker.exists():
        marker.write_text("", encoding="utf-8")
        os.kill(os.getpid(), signal.SIGKILL)
    return run_task(task)


def slow_after_fold_0(task: FitTask) -> TaskResult:
    """Test-only task: every fold but 0 takes a minute first, so Ctrl-C finds it running."""
    if task.fold != 0:
        time.sleep(60)
    return run_task(task)


@pytest.mark.slow  # a Ray cluster on 2 shared cores
def test_ray_fits_equal_sequential_bit_for_bit(
    cluster: Cluster, sequential: Workspace, tmp_path: Path, run_cli: Callable[..., Any]
) -> None:
    """``fit-base ridge_tfidf,lgbm --backend ray --address HOST:PORT``, as a user runs it."""
    ws = build_workspace(tmp_path / "ws", {"ridge_tfidf": RIDGE, "lgbm": LGBM})
    args = ["fit-base", ",".join(NAMES), "-w", ws.root, "--no-progress", "--backend", "ray"]
    result = run_cli(*args, "--address", cluster.address)
    assert result.exit_code == 0, result.stderr
    for name in NAMES:
        assert f"wrote {ws.oof_path(name)}" in result.stdout
        assert oof_frame(ws, name).equals(oof_frame(sequential, name)), name


@pytest.mark.slow  # a Ray cluster on 2 shared cores
def test_a_killed_worker_is_retried_with_the_same_result(
    cluster: Cluster, sequential: Workspace, tmp_path: Path
) -> None:
    ws = build_workspace(tmp_path / "ws", {"ridge_tfidf": RIDGE})
    markers = tmp_path / "markers"
    markers.mkdir()
    backend = RayBackend(cluster.address, function=functools.partial(die_once, markers))
    result = fit_learners(ws, ["ridge_tfidf"], backend, progress=False)
    assert (markers / "ridge_tfidf-1.died").exists()  # the worker did die once
    assert result.errors == ()
    assert oof_frame(ws, "ridge_tfidf").equals(oof_frame(sequential, "ridge_tfidf"))


@pytest.mark.slow  # a Ray cluster on 2 shared cores
def test_a_failing_task_does_not_lose_the_others(
    cluster: Cluster, sequential: Workspace, tmp_path: Path
) -> None:
    bad = LGBM.replace("num_leaves: 7", "num_leaves: 0")
    ws = build_workspace(tmp_path / "ws", {"ridge_tfidf": RIDGE, "lgbm": bad})
    result = fit_learners(ws, NAMES, RayBackend(cluster.address), progress=False)
    assert sorted(result.errors) == [
        f"lgbm fold {k}: LightGBM refused params.num_leaves=0: Check failed: (num_leaves) > (1)"
        for k in range(3)
    ]
    assert oof_frame(ws, "ridge_tfidf").equals(oof_frame(sequential, "ridge_tfidf"))
    assert not ws.oof_path("lgbm").exists()


@pytest.mark.slow  # a Ray cluster on 2 shared cores
def test_ctrl_c_cancels_the_rest_keeps_finished_folds_and_resumes(
    cluster: Cluster, sequential: Workspace, tmp_path: Path
) -> None:
    ws = build_workspace(tmp_path / "ws", {"ridge_tfidf": RIDGE})
    tasks = plan_tasks(ws, ["ridge_tfidf"], "all", ())
    prepare_learner(ws, "ridge_tfidf", ())

    def ctrl_c(result: TaskResult) -> None:  # Ctrl-C reaches the driver after fold 0 ends
        raise KeyboardInterrupt

    start = time.monotonic()
    with pytest.raises(KeyboardInterrupt):
        RayBackend(cluster.address, function=slow_after_fold_0).run(tasks, ctrl_c)
    assert time.monotonic() - start < 50  # the minute-long folds were not waited for
    done = [k for k in range(3) if read_record(ws.model_dir("ridge_tfidf", k)) is not None]
    assert done == [0]
    result = fit_learners(ws, ["ridge_tfidf"], RayBackend(cluster.address), progress=False)
    assert [f.status for f in result.summaries[0].folds] == ["skipped", "fitted", "fitted"]
    assert oof_frame(ws, "ridge_tfidf").equals(oof_frame(sequential, "ridge_tfidf"))


@pytest.mark.slow  # a Ray cluster on 2 shared cores
def test_a_workspace_the_workers_cannot_see_is_refused(cluster: Cluster) -> None:
    if cluster.hidden is None:
        pytest.skip("needs unprivileged mount namespaces (unshare -rm) to hide a folder")
    ws = build_workspace(cluster.hidden / "ws", {"ridge_tfidf": RIDGE})
    with pytest.raises(AesError) as caught:
        fit_learners(ws, ["ridge_tfidf"], RayBackend(cluster.address), progress=False)
    message = str(caught.value)
    assert "cannot see the workspace" in message
    assert "storage every node sees" in message
    assert str(ws.root) in message
    assert "\n" not in message
    assert not any(ws.base_models_dir.rglob("done.json"))  # nothing was submitted


def test_without_ray_the_backend_says_how_to_install_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "ray", None)  # what `import ray` meets without the extra
    with pytest.raises(AesError, match=r"pip install 'aes-ensemble\[ray\]'"):
        RayBackend("auto")


def test_tasks_ask_ray_for_their_configs_resources(tmp_path: Path) -> None:
    """A transformer fold asks for one GPU unless its config says otherwise; CPU learners ask
    for what ``resources`` states (memory in bytes), else one CPU."""
    (tmp_path / "configs").mkdir()
    (tmp_path / "configs" / "big.yaml").write_text(
        LGBM + "resources: {num_cpus: 2, memory: 3000000000}\n", encoding="utf-8"
    )
    assert ray_options(FitTask("deberta", 0, (), tmp_path)) == {"num_cpus": 1.0, "num_gpus": 1.0}
    assert ray_options(FitTask("deberta", 0, ("resources.num_gpus=0.5",), tmp_path)) == {
        "num_cpus": 1.0,
        "num_gpus": 0.5,
    }
    assert ray_options(FitTask("ridge_tfidf", 0, (), tmp_path)) == {
        "num_cpus": 1.0,
        "num_gpus": 0.0,
    }
    assert ray_options(FitTask("big", 0, (), tmp_path)) == {
        "num_cpus": 2.0,
        "num_gpus": 0.0,
        "memory": 3000000000,
    }


@pytest.mark.slow  # a Ray cluster on 2 shared cores
@pytest.mark.parametrize(
    ("another_token", "says"),
    [
        (False, "the Ray cluster refused this machine"),
        (True, "could not connect to a Ray cluster there"),
    ],
    ids=["no token", "another token"],
)
def test_a_driver_without_the_clusters_token_is_one_error_line(
    another_token: bool, says: str, cluster: Cluster, tmp_path: Path
) -> None:
    """A machine with no token (an empty home) or another one is refused by the cluster: one
    line that names the token settings, not Ray's traceback."""
    ws = build_workspace(tmp_path / "ws", {"ridge_tfidf": RIDGE})
    env = {k: v for k, v in os.environ.items() if k != "RAY_AUTH_TOKEN"}
    env["HOME"] = str(tmp_path / "home")  # no ~/.ray/auth_token either
    if another_token:
        env["RAY_AUTH_TOKEN"] = secrets.token_hex(32)
    args = ["fit-base", "ridge_tfidf", "-w", str(ws.root), "--no-progress", "--backend", "ray"]
    result = subprocess.run(
        [sys.executable, "-m", "aes_ensemble.cli.main", *args, "--address", cluster.address],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, result.stderr
    assert f"--address {cluster.address}: {says}" in errors[0]
    assert "RAY_AUTH_" in errors[0]
    assert not any(ws.base_models_dir.rglob("done.json"))
