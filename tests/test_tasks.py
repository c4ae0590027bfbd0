"""``fit-base`` over several learners and ``--jobs N`` worker processes, as a user runs it: the
same OOF as one learner at a time, a failing task reported in one line while the others finish,
Ctrl-C cancelling the rest and a rerun resuming. Real subprocesses and learners on a slice of
the embedded sample (3 folds, few trees)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import polars as pl
import pytest
from test_reliability import build_workspace, snapshot, temporaries

from aes_ensemble.engine import fit_learner, learner_overrides, thread_budget

CLI = [sys.executable, "-m", "aes_ensemble.cli.main", "fit-base"]
NAMES = ("ridge", "lgbm", "xgb")
# Slow xgb folds (about 10 s each), so that Ctrl-C finds them running.
SLOW_XGB = (
    "xgb:params.n_estimators=20000",
    "xgb:params.early_stopping_rounds=20000",
    "xgb:params.learning_rate=0.0001",
)


def fit_base(*args: str | Path, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*CLI, *map(str, args), "--no-progress"],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def oof(root: Path, name: str) -> pl.DataFrame:
    return pl.read_parquet(root / "oof" / f"{name}.parquet")


def done_folds(root: Path, name: str) -> list[int]:
    return sorted(int(p.parent.name[5:]) for p in (root / "base_models" / name).glob("*/done.json"))


def test_jobs_2_over_three_learners_equals_one_learner_at_a_time(tmp_path: Path) -> None:
    one_by_one = build_workspace(tmp_path / "sequential")
    for name in NAMES:
        assert fit_learner(one_by_one, name, progress=False).oof_path is not None
    parallel = build_workspace(tmp_path / "parallel")
    result = fit_base(",".join(NAMES), "--jobs", "2", "-w", parallel)
    assert result.returncode == 0, result.stderr
    for name in NAMES:
        assert f"{name} ({name}, config" in result.stdout
        assert oof(parallel, name).equals(oof(one_by_one, name)), name
    assert result.stdout.count("fitted") == 9 and result.stdout.count("wrote") == 3
    assert "9/9 folds done" in result.stderr
    assert snapshot(parallel, "cache") == snapshot(one_by_one, "cache")  # features once, alike

    again = fit_base(",".join(NAMES), "--jobs", "2", "-w", parallel)
    assert again.returncode == 0, again.stderr
    assert again.stdout.count("skipped") == 9 and again.stdout.count("up to date") == 3


def test_several_learners_one_after_another_equal_jobs_2(tmp_path: Path) -> None:
    roots = {jobs: build_workspace(tmp_path / f"jobs{jobs}") for jobs in ("1", "2")}
    for jobs, root in roots.items():
        result = fit_base("ridge,xgb", "--jobs", jobs, "-w", root)
        assert result.returncode == 0, result.stderr
    for name in ("ridge", "xgb"):
        assert oof(roots["1"], name).equals(oof(roots["2"], name)), name


def test_a_failing_task_is_one_line_and_the_others_keep_their_results(tmp_path: Path) -> None:
    root = build_workspace(tmp_path / "ws")
    result = fit_base("ridge,lgbm", "lgbm:params.num_leaves=0", "--jobs", "2", "-w", root)
    assert result.returncode == 2, result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 3, result.stderr
    for fold, line in enumerate(sorted(errors)):
        assert f"lgbm fold {fold}" in line and "num_leaves" in line, line
    assert "Traceback" not in result.stderr
    assert "wrote" in result.stdout and oof(root, "ridge").height > 0
    assert result.stdout.index("ridge (ridge") < result.stdout.index("lgbm (lgbm")
    assert done_folds(root, "ridge") == [0, 1, 2] and done_folds(root, "lgbm") == []
    assert not temporaries(root)


def test_an_override_for_a_learner_not_in_the_command_is_an_error(tmp_path: Path) -> None:
    root = build_workspace(tmp_path / "ws")
    for names in ("ridge,xgb", "ridge"):
        result = fit_base(names, "lgbm:params.num_leaves=3", "-w", root)
        assert result.returncode == 2
        assert result.stderr.startswith("error: ") and result.stderr.count("\n") == 1
        assert f"names learner 'lgbm', which is not among {names.replace(',', ', ')}" in (
            result.stderr
        )
    assert not (root / "base_models").exists()


def test_ctrl_c_cancels_the_rest_keeps_finished_folds_and_a_rerun_resumes(tmp_path: Path) -> None:
    root = build_workspace(tmp_path / "ws")
    driver = subprocess.Popen(
        [*CLI, "ridge,xgb", *SLOW_XGB, "--jobs", "2", "-w", str(root), "--no-progress"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,  # its own process group, as a terminal's foreground job
    )
    try:
        deadline = time.monotonic() + 120
        while done_folds(root, "ridge") != [0, 1, 2] and time.monotonic() < deadline:
            assert driver.poll() is None, driver.communicate()
            time.sleep(0.2)
        time.sleep(1.0)  # the slow xgb folds are running now
        os.killpg(driver.pid, signal.SIGINT)
        _, stderr = driver.communicate(timeout=60)
    finally:
        if driver.poll() is None:
            os.killpg(driver.pid, signal.SIGKILL)
    assert driver.returncode == 130, stderr
    assert "interrupted; finished folds are kept" in stderr
    assert "Traceback" not in stderr, stderr
    assert done_folds(root, "ridge") == [0, 1, 2] and done_folds(root, "xgb") == []
    assert not temporaries(root)

    rerun = fit_base("ridge,xgb", "--jobs", "2", "-w", root)
    assert rerun.returncode == 0, rerun.stderr
    ridge_table = rerun.stdout[: rerun.stdout.index("xgb (xgb")]
    assert ridge_table.count("skipped") == 3 and "fitted" not in ridge_table
    assert done_folds(root, "xgb") == [0, 1, 2] and (root / "oof" / "xgb.parquet").exists()


def test_workers_use_their_thread_budget() -> None:
    assert [thread_budget(j, 8) for j in (1, 2, 3, 8, 16)] == [8, 4, 2, 1, 1]
    probe = (
        "from aes_ensemble.engine import apply_thread_budget\n"
        "from threadpoolctl import threadpool_info\n"
        "apply_thread_budget(1)\n"
        "print(max(pool['num_threads'] for pool in threadpool_info()))\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.endswith("_NUM_THREADS")}
    out = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, env=env, timeout=60
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "1"


@pytest.mark.parametrize(
    ("name", "expected"),
    [("lgbm", ("seed=1", "params.num_leaves=3")), ("xgb", ("seed=1", "params.max_depth=2"))],
)
def test_prefixed_overrides_go_to_their_learner_only(name: str, expected: tuple[str, ...]) -> None:
    given = ["seed=1", "lgbm:params.num_leaves=3", "xgb:params.max_depth=2"]
    assert learner_overrides(name, given) == expected
    assert learner_overrides(name, expected) == expected
