"""One stack run: nested CV, the final fit, the leaderboard numbers and the store file."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass
from typing import Any

import numpy as np
import polars as pl

from aes_ensemble.config import hash_mapping
from aes_ensemble.library_errors import library_errors
from aes_ensemble.metrics import headline_qwk_by_group
from aes_ensemble.stacking.config import MetaClass, StackConfig
from aes_ensemble.stacking.inputs import StackData
from aes_ensemble.stacking.meta import make_meta
from aes_ensemble.stacking.nested import NestedResult, nested_stack
from aes_ensemble.stacking.qwk_numbers import (
    base_numbers,
    correlation,
    explain,
    leaderboard_frame,
    stack_numbers,
)
from aes_ensemble.store import PredictionMeta, PredictionSet, prediction_frame

STACK_LEARNER = "stack"


@dataclass(frozen=True)
class StackRun:
    """``summary`` is JSON-ready (the report module reads it); ``predictions`` the store file;
    ``notes`` what the user should know about the inputs (files too old to check)."""

    name: str
    data: StackData
    result: NestedResult
    summary: dict[str, Any]
    predictions: PredictionSet
    notes: tuple[str, ...] = ()

    @property
    def leaderboard(self) -> pl.DataFrame:
        """The QWKs ``stack`` prints, one row per learner and the stack, best first."""
        return leaderboard_frame(self.summary["leaderboard"])


def build_meta(config: StackConfig) -> Any:
    """The configured, unfitted meta-learner."""
    config.check()
    if isinstance(config.meta, MetaClass):
        return make_meta(
            "class", class_path=config.meta.class_path, params=config.meta.params, seed=config.seed
        )
    return make_meta(config.meta, params=config.options.get(config.meta), seed=config.seed)


@contextmanager
def meta_library_errors(config: StackConfig, where: str) -> Iterator[None]:
    """A setting the meta-learner's library refuses (``options.lgbm.num_leaves=1``) as one line
    naming the key, without LightGBM's own copy of the message on stderr."""
    quiet: AbstractContextManager[None] = nullcontext()
    if config.meta == "lgbm" or (
        isinstance(config.meta, MetaClass) and config.meta.class_path.startswith("lightgbm.")
    ):
        from aes_ensemble.native_stderr import lightgbm_stderr

        quiet = lightgbm_stderr()
    with library_errors(where, config), quiet:
        yield


def run_stack(
    data: StackData,
    config: StackConfig,
    *,
    sources: np.ndarray | None = None,
    progress: Callable[[str], None] | None = None,
) -> StackRun:
    """Stack ``data`` as ``config`` says and measure every learner and the stack alike."""
    estimator = build_meta(config)
    name = config.output_name
    with meta_library_errors(config, f"stack {name}: meta-learner {config.meta_name}"):
        result = nested_stack(
            data,
            estimator,
            method=config.thresholds,
            seed=config.seed,
            level_inputs=config.meta == "vote",
            unseen_prompts=config.unseen_prompts,
            min_prompt_batch=config.min_prompt_batch,
            progress=progress,
        )
    bases = base_numbers(
        data, method=config.thresholds, seed=config.seed, sources=sources, n_boot=config.n_boot
    )
    stack = stack_numbers(
        name, data, result, seed=config.seed, sources=sources, n_boot=config.n_boot
    )
    best = max(bases, key=lambda e: e["cross"])
    summary = {
        "name": name,
        "meta": config.meta_name,
        "config": config.model_dump(mode="json", by_alias=True),
        "models": list(data.names),
        "feature_names": list(data.feature_names),
        "folds_hash": data.folds_hash,
        "thresholds": config.thresholds,
        "seed": config.seed,
        "seconds": round(result.seconds, 3),
        "leaderboard": [*bases, stack],
        "best_single": best["name"],
        "gain_over_best_single": stack["cross"] - best["cross"],
        "correlation": correlation(data),
        "final_thresholds": result.thresholds.to_dict(),
        **explain(result.final, data.feature_names, data.names),
    }
    return StackRun(name, data, result, summary, _prediction_set(name, data, result, config))


def _prediction_set(
    name: str, data: StackData, result: NestedResult, config: StackConfig
) -> PredictionSet:
    """The stack in the common schema, so it can be read back, submitted or stacked again."""
    n = len(data.ids)
    ids, split = list(data.ids), ["oof"] * n
    fold: list[int | None] = [int(f) for f in data.folds]
    prompts = list(data.prompts)
    pred = list(result.oof)
    if result.test is not None and data.test_ids is not None and data.test_prompts is not None:
        ids += data.test_ids
        split += ["test"] * len(data.test_ids)
        fold += [None] * len(data.test_ids)
        prompts += list(data.test_prompts)
        pred += list(result.test)
    fold_qwk = headline_qwk_by_group(data.y, result.cross, data.prompts, data.scales, data.folds)
    resolved = config.model_dump(mode="json", by_alias=True)
    meta = PredictionMeta(
        name=name,
        learner=STACK_LEARNER,
        folds_hash=data.folds_hash,
        config=resolved,
        config_hash=hash_mapping(resolved),
        data_hash=data.data_hash,
        seed=config.seed,
        fold_qwk=fold_qwk,
        fit_seconds={"total": round(result.seconds, 3)},
        scales=data.scales.to_dict(),
        extra={
            "meta": config.meta_name,
            "models": list(data.names),
            "features": list(data.feature_names),
            "thresholds": config.thresholds,
            "final_thresholds": result.thresholds.to_dict(),
            "fold_thresholds": result.fold_thresholds(),
            "inputs": data.inputs,
        },
    )
    frame = prediction_frame(ids, split, np.asarray(pred), fold=fold, prompt=prompts)
    return PredictionSet(frame, meta)
