"""The quickstart: the whole job on the embedded ELLIPSE sample, in a few minutes on a CPU.

folds -> CPU base learners -> stack with cross-fitted thresholds -> submission.csv -> report.
The same library calls a user makes on their own data; nothing here is demo-only logic.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import yaml

from aes_ensemble.config import DataConfig, load_config
from aes_ensemble.data import load_workspace_dataset
from aes_ensemble.engine import fit_learner
from aes_ensemble.errors import AesError
from aes_ensemble.fold_fit import RunSummary
from aes_ensemble.folds import assign_folds, save_folds
from aes_ensemble.io import write_text_atomic
from aes_ensemble.sample import TEST, TRAIN, sample_path
from aes_ensemble.stacking.run import StackRun
from aes_ensemble.stacking.stack_workspace import stack_config, stack_workspace, write_submission
from aes_ensemble.workspace import Workspace

CPU_LEARNERS = ("ridge_tfidf", "lgbm")
# Non-negative weights: on a few hundred essays a constrained blend overfits least.
DEMO_META = "nnls"
GPU_LEARNERS = ("minilm",)


@dataclass(frozen=True)
class DemoResult:
    learners: tuple[RunSummary, ...]
    stack: StackRun
    submission: Path
    report: Path


def _uses_sample(ws: Workspace, config: DataConfig) -> bool:
    def resolve(p: Path | None) -> Path | None:
        return None if p is None else (ws.root / p).resolve()

    return (
        resolve(config.train) == sample_path(TRAIN).resolve()
        and resolve(config.test) == sample_path(TEST).resolve()
    )


def prepare_workspace(ws: Workspace) -> None:
    """Point the workspace at the sample; refuse one whose data config names other essays."""
    if ws.data_config_path.is_file():
        config = load_config(DataConfig, ws.data_config_path)
        if not _uses_sample(ws, config):
            raise AesError(
                "this workspace's data is not the demo sample; run the demo with "
                "--workdir on an empty folder",
                path=ws.data_config_path,
            )
        return
    data = {
        "train": str(sample_path(TRAIN)),
        "test": str(sample_path(TEST)),
        "format": "ellipse",
        "subgroups": ["gender", "grade", "race_ethnicity", "SES"],
    }
    header = "# The embedded ELLIPSE sample (CC BY-NC-SA 4.0), written by `aes-ensemble demo`.\n"
    write_text_atomic(ws.data_config_path, header + yaml.safe_dump(data, sort_keys=False))


def gpu_available() -> bool:
    try:
        import torch
    except ImportError:
        return False
    return bool(torch.cuda.is_available())


def run_demo(
    ws: Workspace,
    *,
    learners: Sequence[str] | None = None,
    meta: str = DEMO_META,
    step: Callable[[str], None] = lambda _: None,
) -> DemoResult:
    """Run every stage on the sample; finished learner folds are reused on a second run."""
    from aes_ensemble.report import write_report

    prepare_workspace(ws)
    chosen = (
        tuple(learners) if learners else CPU_LEARNERS + (GPU_LEARNERS if gpu_available() else ())
    )
    train, _ = load_workspace_dataset(ws)
    step(f"folds: {len(train)} essays, grouped by prompt")
    save_folds(ws, assign_folds(train, n_folds=5, seed=42))
    summaries = []
    for name in chosen:
        step(f"fit-base {name}")
        summaries.append(fit_learner(ws, name, progress=True))  # a bar, or lines in a log
    step(f"stack --meta {meta}")
    run, _, _ = stack_workspace(
        ws, stack_config(ws, overrides={"meta": meta, "models": list(chosen)})
    )
    step("predict")
    submission, _, _ = write_submission(ws, run.name)
    step("report")
    report = write_report(ws)
    return DemoResult(tuple(summaries), run, submission, report)
