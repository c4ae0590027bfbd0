"""Seconds to stack 10 learners x 17,000 essays (AES 2.0's size) with each meta-learner.

Synthetic OOF and test predictions: the truth (levels 1..6) plus Gaussian noise of growing
strength per learner, 5 folds. Timed: the whole ``run_stack`` (nested CV with cross-fitted
thresholds, final fit, leaderboard numbers with bootstrap intervals).

    .venv/bin/python bench/bench_stack.py [--n 17000] [--learners 10] [--metas ridge,nnls,...]
"""

from __future__ import annotations

import argparse
import time
from typing import Literal

import numpy as np

from aes_ensemble.scales import AES2_SCALE
from aes_ensemble.stacking import StackConfig, build_stack_data, run_stack
from aes_ensemble.store import PredictionMeta, PredictionSet, prediction_frame


def synthetic_sets(n: int, n_test: int, learners: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    y = rng.choice(np.arange(1, 7), size=n, p=[0.07, 0.27, 0.36, 0.23, 0.06, 0.01]).astype(float)
    ids = [f"e{i}" for i in range(n)]
    test_ids = [f"t{i}" for i in range(n_test)]
    y_test = rng.integers(1, 7, n_test).astype(float)
    folds = rng.permutation(np.arange(n) % 5)
    sets = []
    for j in range(learners):
        noise = 0.4 + 0.15 * j
        pred = np.concatenate([y + rng.normal(0, noise, n), y_test + rng.normal(0, noise, n_test)])
        frame = prediction_frame(
            ids + test_ids,
            ["oof"] * n + ["test"] * n_test,
            pred,
            fold=[*folds.tolist(), *([None] * n_test)],
        )
        sets.append(PredictionSet(frame, PredictionMeta(f"m{j}", "synthetic", "bench")))
    prompts = np.full(n, None, dtype=object)
    test_prompts = np.full(n_test, None, dtype=object)
    return build_stack_data(
        sets, ids, y, prompts, AES2_SCALE, test_ids=test_ids, test_prompts=test_prompts
    )


def time_stacks(
    metas: list[str],
    n: int = 17_000,
    learners: int = 10,
    thresholds: Literal["nelder-mead", "optuna", "none"] = "nelder-mead",
) -> dict[str, dict[str, float]]:
    """Seconds of ``run_stack`` (total and nested CV) per meta-learner on synthetic OOF."""
    data = synthetic_sets(n, 3, learners)
    out = {}
    for meta in metas:
        start = time.perf_counter()
        run = run_stack(data, StackConfig(meta=meta, thresholds=thresholds))
        out[meta] = {
            "seconds": round(time.perf_counter() - start, 2),
            "nested_cv_seconds": round(run.result.seconds, 2),
        }
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=17_000)
    parser.add_argument("--n-test", type=int, default=3)
    parser.add_argument("--learners", type=int, default=10)
    parser.add_argument("--metas", default="ridge,nnls,lgbm,hill,mean,vote")
    parser.add_argument("--thresholds", default="nelder-mead")
    args = parser.parse_args()
    start = time.perf_counter()
    data = synthetic_sets(args.n, args.n_test, args.learners)
    print(
        f"built {args.learners} learners x {args.n} essays in {time.perf_counter() - start:.1f} s"
    )
    print(f"{'meta':<6} {'seconds':>8} {'nested':>8} {'best single':>12} {'stack cross':>12}")
    for meta in args.metas.split(","):
        config = StackConfig(meta=meta, thresholds=args.thresholds)
        start = time.perf_counter()
        run = run_stack(data, config)
        seconds = time.perf_counter() - start
        board = {e["name"]: e for e in run.summary["leaderboard"]}
        best = board[run.summary["best_single"]]["cross"]
        stack = board[run.name]["cross"]
        nested = run.result.seconds
        print(f"{meta:<6} {seconds:>8.1f} {nested:>8.1f} {best:>12.4f} {stack:>12.4f}")


if __name__ == "__main__":
    main()
