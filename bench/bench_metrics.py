"""QWK speed against scikit-learn, and threshold search gains on real ELLIPSE predictions.

Run: ``.venv/bin/python -m bench.bench_metrics [path/to/ELLIPSE_Final_github_test.csv]``.
The predictions come from TF-IDF (word 1-2 grams + char 2-5 grams) and Ridge, out of fold over
5 prompt-grouped folds. The vectorisers see all texts (no labels), as is usual on Kaggle.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import scipy.sparse as sp
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import Ridge
from sklearn.metrics import cohen_kappa_score
from sklearn.model_selection import GroupKFold, cross_val_predict

from aes_ensemble.metrics import bootstrap_interval, qwk
from aes_ensemble.scales import ELLIPSE_SCALE, ScoreScale
from aes_ensemble.thresholds import cross_fit, fit_cutpoints, fit_thresholds

ELLIPSE = Path("/work/shared/data/ellipse/ELLIPSE_Final_github_test.csv")


def _best_seconds(fn: Callable[[], object], repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def bench_qwk_speed(n: int = 17_000) -> dict[str, float]:
    rng = np.random.default_rng(0)
    y = rng.integers(1, 7, n)
    pred = np.clip(y + rng.integers(-1, 2, n), 1, 6)
    ours = _best_seconds(lambda: qwk(y, pred), 50)
    ref = _best_seconds(lambda: cohen_kappa_score(y, pred, weights="quadratic"), 10)
    boot = _best_seconds(lambda: bootstrap_interval(y, pred, n_boot=1000), 3)
    return {
        "qwk_ms": ours * 1e3,
        "sklearn_ms": ref * 1e3,
        "speed_ratio": ref / ours,
        "bootstrap_1000x17k_s": boot,
    }


def bench_cutpoints_17k(n: int = 17_000) -> dict[str, float]:
    """Seconds to fit cuts on an AES 2.0-sized set (1..6) of shrunk, noisy predictions."""
    rng = np.random.default_rng(0)
    y = rng.choice(np.arange(1, 7), n, p=[0.07, 0.27, 0.36, 0.23, 0.06, 0.01]).astype(float)
    pred = 3.1 + 0.7 * (y - 3.1) + rng.normal(0, 0.6, n)
    scale = ScoreScale(1, 6)
    out: dict[str, float] = {"rounded": qwk(y, scale.round(pred), scale=scale)}
    for method in ("nelder-mead", "optuna"):
        start = time.perf_counter()
        cuts = fit_cutpoints(y, pred, scale, method=method)
        out[f"{method}_s"] = time.perf_counter() - start
        out[f"{method}_in_sample"] = qwk(y, cuts.apply(pred), scale=scale)
    return out


def ellipse_oof(path: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(y, OOF Ridge predictions, prompts, folds) on ELLIPSE, 5 prompt-grouped folds."""
    frame = pl.read_csv(path, columns=["full_text", "prompt", "Overall"])
    texts = frame["full_text"].to_list()
    y = frame["Overall"].to_numpy().astype(float)
    prompts = frame["prompt"].to_numpy().astype(object)
    words = TfidfVectorizer(ngram_range=(1, 2), min_df=2, sublinear_tf=True)
    chars = TfidfVectorizer(
        analyzer="char_wb", ngram_range=(2, 5), min_df=3, sublinear_tf=True, max_features=200_000
    )
    features = sp.hstack([words.fit_transform(texts), chars.fit_transform(texts)]).tocsr()
    folds = np.empty(len(y), dtype=np.int64)
    for k, (_, test) in enumerate(GroupKFold(n_splits=5).split(features, y, prompts)):
        folds[test] = k
    pred = cross_val_predict(Ridge(alpha=1.0), features, y, groups=folds, cv=GroupKFold(n_splits=5))
    return y, pred, prompts, folds


def bench_ellipse(path: Path) -> dict[str, Any]:
    start = time.perf_counter()
    y, pred, prompts, folds = ellipse_oof(path)
    out: dict[str, Any] = {"n_essays": len(y), "model_s": time.perf_counter() - start}
    scales = ELLIPSE_SCALE
    scale = scales.for_prompt(None)
    out["rounded"] = qwk(y, scale.round(pred), scale=scale)
    for method in ("nelder-mead", "optuna"):
        start = time.perf_counter()
        fitted = fit_thresholds(y, pred, prompts, scales, method=method)
        fit_s = time.perf_counter() - start
        start = time.perf_counter()
        crossed = cross_fit(y, pred, prompts, folds, scales, method=method)
        out[method] = {
            "in_sample": qwk(y, fitted.apply(pred, prompts, scales), scale=scale),
            "cross_fitted": qwk(y, crossed.pred, scale=scale),
            "fit_s": fit_s,
            "cross_fit_s": time.perf_counter() - start,
        }
    return out


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = sys.argv[1:] if argv is None else argv
    path = Path(args[0]) if args else ELLIPSE
    results: dict[str, Any] = {
        "qwk_speed": bench_qwk_speed(),
        "cutpoints_17k": bench_cutpoints_17k(),
    }
    if path.exists():
        results["ellipse"] = bench_ellipse(path)
    else:
        results["ellipse"] = f"skipped: {path} not found"
    print(json.dumps(results, indent=2))
    return results


if __name__ == "__main__":
    main()
