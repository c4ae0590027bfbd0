"""Scaling: the same learners' folds fitted one after another, with ``--jobs N`` and on a local
Ray cluster; wall time, speed-up over sequential and whether the OOF files are identical.

    python -m bench --asap ../shared/data/asap-aes --ellipse ... --scale   (a section of the run)
    python -m bench.bench_scale [--asap DIR] [--learners ridge_tfidf,lgbm,xgb] [--jobs 2]

Each mode fits in its own fresh workspace under ``bench/runs/scale/`` (nothing reused, the
feature cache included), so every mode does the whole work: per-essay features once per learner
in the driver, then every (learner, fold) task. Without ``--asap`` the embedded sample with 5
prompt-grouped folds stands in (a smoke run: too small to show a speed-up). The Ray cluster is
started before the clock starts (its start-up is reported on its own) with ``--jobs`` CPUs.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from aes_ensemble.data import load_workspace_dataset
from aes_ensemble.engine import Backend, LocalBackend, fit_learners
from aes_ensemble.folds import Folds, assign_folds, read_folds_file, save_folds
from aes_ensemble.io import write_text_atomic
from aes_ensemble.sample import TEST, TRAIN, sample_path
from aes_ensemble.store import read_predictions
from aes_ensemble.workspace import Workspace

ROOT = Path(__file__).resolve().parent / "runs" / "scale"
HEADING = "## Scaling: more cores"


def _data(asap: Path | None) -> dict[str, Any]:
    if asap is not None:
        return {"train": str((asap / "training_set_rel3.clean.csv").resolve()), "format": "asap"}
    return {"train": str(sample_path(TRAIN)), "test": str(sample_path(TEST)), "format": "ellipse"}


def fresh_workspace(mode: str, asap: Path | None) -> Workspace:
    """An empty workspace for ``mode`` on the benchmark's data and folds."""
    root = ROOT / mode
    shutil.rmtree(root, ignore_errors=True)
    ws = Workspace.at(root)
    ws.configs_dir.mkdir(parents=True)
    write_text_atomic(ws.data_config_path, yaml.safe_dump(_data(asap), sort_keys=False))
    train, _ = load_workspace_dataset(ws)
    folds: Folds = (
        read_folds_file(asap / "folds_taghipour_ng2016.csv", train)
        if asap is not None
        else assign_folds(train, n_folds=5, seed=42)
    )
    save_folds(ws, folds)
    return ws


def _timed(mode: str, asap: Path | None, learners: list[str], backend: Backend) -> float:
    ws = fresh_workspace(mode, asap)
    print(f"  scale {mode}: fitting {','.join(learners)}", flush=True)
    start = time.perf_counter()
    result = fit_learners(ws, learners, backend, progress=False)
    seconds = round(time.perf_counter() - start, 1)
    if result.errors:
        raise RuntimeError(f"scale {mode}: {result.errors[0]}")
    print(f"  scale {mode}: {seconds} s", flush=True)
    return seconds


def _same_oof(modes: list[str], learners: list[str]) -> bool:
    """Whether every mode's OOF predictions equal the sequential ones exactly."""
    frames = {
        (mode, name): read_predictions(Workspace.at(ROOT / mode).oof_path(name)).frame
        for mode in modes
        for name in learners
    }
    return all(frames[(m, n)].equals(frames[(modes[0], n)]) for m in modes for n in learners)


def _ray_backend(jobs: int) -> tuple[Backend, float, Callable[[], None]]:
    """A local Ray with ``jobs`` CPUs, started now; its start-up seconds and how to stop it."""
    import ray

    from aes_ensemble.ray_backend import RayBackend

    start = time.perf_counter()
    ray.init(num_cpus=jobs, include_dashboard=False, log_to_driver=False)
    return RayBackend(), round(time.perf_counter() - start, 1), ray.shutdown


def run(
    learners: list[str], *, asap: Path | None, jobs: int = 2, ray: bool = True
) -> dict[str, Any]:
    """Time each mode; the Ray mode is left out (and said so) where Ray is not installed."""
    modes: dict[str, float] = {}
    modes["sequential"] = _timed("sequential", asap, learners, LocalBackend(1))
    modes[f"--jobs {jobs}"] = _timed("jobs", asap, learners, LocalBackend(jobs))
    names = ["sequential", "jobs"]
    ray_start = None
    if ray:
        try:
            backend, ray_start, stop = _ray_backend(jobs)
        except ImportError:
            print("  scale ray: skipped (pip install 'aes-ensemble[ray]')", flush=True)
        else:
            try:
                modes[f"Ray, local, {jobs} CPUs"] = _timed("ray", asap, learners, backend)
                names.append("ray")
            finally:
                stop()
    base = modes["sequential"]
    return {
        "data": "ASAP (Taghipour & Ng folds)" if asap else "embedded sample (smoke run)",
        "learners": learners,
        "machine": f"{os.cpu_count()} cores, {platform.system()}, Python "
        f"{platform.python_version()}",
        "modes": {m: {"seconds": s, "speedup": round(base / s, 2)} for m, s in modes.items()},
        "ray_start_seconds": ray_start,
        "same_oof": _same_oof(names, learners),
    }


def markdown(section: dict[str, Any]) -> list[str]:
    lines = [
        HEADING,
        "",
        f"{', '.join(section['learners'])}, every fold, on {section['data']}; "
        f"machine: {section['machine']}.",
        "",
        "| mode | wall s | speed-up |",
        "| --- | --- | --- |",
    ]
    for mode, e in section["modes"].items():
        lines.append(f"| {mode} | {e['seconds']} | {e['speedup']:.2f}x |")
    if section.get("ray_start_seconds") is not None:
        lines += ["", f"Ray start-up (not in the table): {section['ray_start_seconds']} s."]
    same = "identical" if section["same_oof"] else "DIFFERENT (a bug: they must be identical)"
    return [*lines, f"OOF files across the modes: {same}.", ""]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.bench_scale", description=__doc__)
    parser.add_argument("--asap", type=Path)
    parser.add_argument("--learners", default="ridge_tfidf,lgbm,xgb")
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--no-ray", action="store_true")
    args = parser.parse_args(argv)
    learners = [n for n in args.learners.split(",") if n]
    section = run(learners, asap=args.asap, jobs=args.jobs, ray=not args.no_ray)
    print(json.dumps(section, indent=2))
    print("\n".join(markdown(section)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
