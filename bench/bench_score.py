"""Scoring new essays with a fitted ensemble: how fast a bundle loads and scores, and where the
time goes.

    python -m bench --score --skip-speed       (this section alone; the others are kept)
    python -m bench.bench_score [--learners ridge_tfidf,lgbm,xgb] [--meta nnls] [--essays FILE]

The demo stack (the embedded sample, 5 folds) is fitted in ``bench/runs/score/`` (finished
folds are reused) and exported as a bundle; the bundle is what is timed, so no feature cache of
the workspace helps: every feature of every essay is computed, as on a user's machine. Essays:
the 2,571 of ELLIPSE (``../shared/data/ellipse``), or the sample resampled to ``--min-essays``
where that file is absent. Reported: the bundle's size, its load time in a fresh process
(imports, then ``Ensemble.load`` and every fold model, as ``serve`` starts) and in this one,
essays/s of each base learner (mean over its folds) and of the whole stack, and a profile of one
stack pass grouped into features, TF-IDF, models, embeddings and the meta-learner.
"""

from __future__ import annotations

import argparse
import cProfile
import json
import os
import pstats
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

import polars as pl

from aes_ensemble.data import Essays, load_workspace_dataset, read_essays
from aes_ensemble.demo import DEMO_META, prepare_workspace
from aes_ensemble.engine import fit_learner
from aes_ensemble.folds import assign_folds, save_folds
from aes_ensemble.sample import TEST, TRAIN, sample_path
from aes_ensemble.scoring.bundle import MODELS_DIR
from aes_ensemble.scoring.ensemble import Ensemble, as_essays, export_bundle
from aes_ensemble.stacking.stack_workspace import stack_config, stack_workspace
from aes_ensemble.workspace import Workspace

ROOT = Path(__file__).resolve().parent
WORKSPACE = ROOT / "runs" / "score"
ELLIPSE = ROOT.parents[1] / "shared" / "data" / "ellipse" / "ELLIPSE_Final_github_test.csv"
LEARNERS = ("ridge_tfidf", "lgbm", "xgb")
MIN_ESSAYS = 1000
WARMUP_ESSAYS = 20
GOAL = "the stack of ridge_tfidf + lgbm + xgb loads in under 5 s and scores 200 essays/s on 2 cores"
HEADING = "## Scoring new essays (a bundle of the demo stack)"  # the last section of the page
# (a fragment of the file's path, the function): profile group. Calls of these never nest in
# one another, so their cumulative times add up.
GROUPS = {
    ("aes_ensemble/features/handcrafted.py", "handcrafted_matrix"): "handcrafted features",
    ("aes_ensemble/features/tfidf.py", "transform"): "TF-IDF",
    ("aes_ensemble/features/embeddings.py", "embed_texts"): "embeddings",
    ("aes_ensemble/learners/", "_predict_matrix"): "models (tabular)",
    ("aes_ensemble/learners/transformer/inference.py", "predict_outputs"): "models (transformer)",
    ("aes_ensemble/stacking/model.py", "predict"): "meta-learner and cut points",
    ("aes_ensemble/stacking/model.py", "levels"): "meta-learner and cut points",
}
T = TypeVar("T")


def timed(call: Callable[[], T]) -> tuple[T, float]:
    start = time.perf_counter()
    out = call()
    return out, time.perf_counter() - start


def fitted_bundle(learners: Sequence[str], meta: str) -> tuple[Path, str]:
    """The demo workspace fitted with ``learners`` and stacked by ``meta``, exported afresh."""
    ws = Workspace.at(WORKSPACE)
    ws.configs_dir.mkdir(parents=True, exist_ok=True)
    prepare_workspace(ws)
    train, _ = load_workspace_dataset(ws)
    save_folds(ws, assign_folds(train, n_folds=5, seed=42))
    for name in learners:
        print(f"  {name}: fitting (finished folds are reused)", flush=True)
        fit_learner(ws, name, progress=True)
    config = stack_config(ws, overrides={"meta": meta, "models": list(learners)})
    run, _, _ = stack_workspace(ws, config)
    out = WORKSPACE / "bundle"
    if out.exists():
        shutil.rmtree(out)
    export_bundle(ws, out, stack=run.name)
    return out, run.name


def essays_to_score(path: Path | None, minimum: int) -> tuple[Essays, str]:
    """The essays of ``path`` (ELLIPSE where it is here), else the sample's train and test
    essays repeated under new ids until there are ``minimum``."""
    if path is not None and path.is_file():
        return read_essays(path), os.path.relpath(path, ROOT.parent)
    texts = [
        pl.read_csv(sample_path(name), infer_schema=False).select("full_text", "prompt")
        for name in (TRAIN, TEST)
    ]
    sample = pl.concat(texts)
    copies = -(-minimum // sample.height)
    frame = pl.concat([sample] * copies).head(max(minimum, sample.height))
    frame = frame.with_row_index("essay_id").with_columns(pl.col("essay_id").cast(pl.String))
    return as_essays(frame), f"the embedded sample resampled to {frame.height} essays"


def load(bundle: Path) -> Ensemble:
    """The bundle verified and every learner's fold models loaded, as ``serve`` starts."""
    ensemble = Ensemble.load(bundle)
    for name in ensemble.learners:
        ensemble.fitted(name)
    return ensemble


def cold_load(bundle: Path) -> dict[str, float]:
    """Seconds to import the package and to load the bundle (:func:`load`) in a fresh Python
    process."""
    script = (
        "import json, sys, time\n"
        "start = time.perf_counter()\n"
        "from bench.bench_score import load\n"
        "imported = time.perf_counter()\n"
        "load(sys.argv[1])\n"
        "done = time.perf_counter()\n"
        "print(json.dumps({'import_s': imported - start, 'load_s': done - imported}))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", script, str(bundle)],
        cwd=ROOT.parent,
        check=True,
        capture_output=True,
        text=True,
        timeout=600,
    )
    return {k: round(v, 3) for k, v in json.loads(out.stdout.splitlines()[-1]).items()}


def folder_bytes(folder: Path) -> int:
    return sum(f.stat().st_size for f in folder.rglob("*") if f.is_file())


def bundle_size(bundle: Path) -> dict[str, Any]:
    parts = {
        str(p.relative_to(bundle)): folder_bytes(p)
        for top in sorted(bundle.iterdir())
        for p in ([*sorted(top.iterdir())] if top.name == MODELS_DIR else [top])
        if p.is_dir()
    }
    files = [f for f in bundle.rglob("*") if f.is_file()]
    return {"bytes": sum(f.stat().st_size for f in files), "files": len(files), "parts": parts}


def profile_groups(call: Callable[[], object]) -> dict[str, float]:
    """Seconds of one profiled ``call`` per group of :data:`GROUPS`, the rest as ``other``."""
    profiler = cProfile.Profile()
    _, total = timed(lambda: profiler.runcall(call))
    seconds: dict[str, float] = {}
    for (filename, _, function), row in pstats.Stats(profiler).stats.items():  # type: ignore[attr-defined]
        cumulative = row[3]
        path = filename.replace("\\", "/")
        for (fragment, name), group in GROUPS.items():
            if function == name and fragment in path:
                seconds[group] = seconds.get(group, 0.0) + cumulative
                break
    seconds["other"] = max(total - sum(seconds.values()), 0.0)
    return {k: round(v, 3) for k, v in sorted(seconds.items(), key=lambda kv: -kv[1])}


def run(
    learners: Sequence[str] = LEARNERS,
    meta: str = DEMO_META,
    essays_path: Path | None = ELLIPSE,
    min_essays: int = MIN_ESSAYS,
) -> dict[str, Any]:
    """Fit (or reuse) the demo stack, export it and time the bundle; the results as JSON."""
    print(f"scoring: the demo stack of {', '.join(learners)} ({meta})", flush=True)
    bundle, stack = fitted_bundle(learners, meta)
    essays, source = essays_to_score(essays_path, min_essays)
    cold = cold_load(bundle)
    ensemble, load_s = timed(lambda: load(bundle))
    ensemble.score(essays.take(list(range(WARMUP_ESSAYS))))  # lazy imports, first calls
    per_learner = {}
    for name in ensemble.learners:
        _, seconds = timed(lambda n=name: ensemble.fitted(n).predict(essays))
        per_learner[name] = _pace(len(essays), seconds)
        print(f"  {name}: {per_learner[name]['essays_per_second']} essays/s", flush=True)
    _, seconds = timed(lambda: ensemble.score(essays))
    stack_pace = _pace(len(essays), seconds)
    print(f"  stack {stack}: {stack_pace['essays_per_second']} essays/s", flush=True)
    return {
        "stack": stack,
        "learners": list(ensemble.learners),
        "essays": len(essays),
        "essays_source": source,
        "cpus": os.cpu_count(),
        "bundle": bundle_size(bundle),
        "load": {"cold_process": cold, "warm_s": round(load_s, 3)},
        "learner_pace": per_learner,
        "stack_pace": stack_pace,
        "profile_s": profile_groups(lambda: ensemble.score(essays)),
    }


def _pace(n: int, seconds: float) -> dict[str, float]:
    return {"seconds": round(seconds, 3), "essays_per_second": round(n / seconds, 1)}


def markdown(res: dict[str, Any]) -> list[str]:
    """The scoring section of docs/benchmarks.md."""
    size = res["bundle"]
    cold = res["load"]["cold_process"]
    parts = ", ".join(f"`{k}` {v / 2**20:.1f} MiB" for k, v in size["parts"].items())
    lines = [
        HEADING,
        "",
        f"- command: `{res['command']}`; machine: {res['machine']}, {res['cpus']} CPUs",
        f"- stack `{res['stack']}` of {', '.join(res['learners'])}, fitted on the embedded "
        f"sample (480 essays, 5 folds); scored: {res['essays']:,} essays "
        f"({res['essays_source']})",
        f"- bundle: {size['bytes'] / 2**20:.1f} MiB in {size['files']} files ({parts})",
        f"- load: {cold['import_s'] + cold['load_s']:.2f} s in a fresh process "
        f"({cold['import_s']:.2f} s imports, {cold['load_s']:.2f} s `Ensemble.load` and the "
        "fold models); "
        f"{res['load']['warm_s']:.2f} s once imported",
        f"- goal: {GOAL}",
        "",
        "| scoring | essays/s | seconds |",
        "| --- | --- | --- |",
    ]
    for name in res["learners"]:  # the saved JSON sorts its keys: the stack's order here
        pace = res["learner_pace"][name]
        lines.append(
            f"| {name} (mean of its folds) | {pace['essays_per_second']:.0f} | "
            f"{pace['seconds']:.2f} |"
        )
    pace = res["stack_pace"]
    lines += [
        f"| **stack `{res['stack']}`** | **{pace['essays_per_second']:.0f}** | "
        f"{pace['seconds']:.2f} |",
        "",
        "Where one stack pass spends its time (cProfile, which slows Python code, so shares "
        "rather than seconds): "
        + ", ".join(
            f"{group} {seconds / sum(res['profile_s'].values()):.0%}"
            for group, seconds in sorted(res["profile_s"].items(), key=lambda kv: -kv[1])
        ),
        "",
    ]
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.bench_score", description=__doc__)
    parser.add_argument("--learners", default=",".join(LEARNERS))
    parser.add_argument("--meta", default=DEMO_META)
    parser.add_argument("--essays", type=Path, default=ELLIPSE)
    parser.add_argument("--min-essays", type=int, default=MIN_ESSAYS)
    args = parser.parse_args(argv)
    learners = [n for n in args.learners.split(",") if n]
    print(json.dumps(run(learners, args.meta, args.essays, args.min_essays), indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
