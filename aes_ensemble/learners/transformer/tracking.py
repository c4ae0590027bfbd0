"""Experiment tracking (``train.report_to``): nothing by default, TensorBoard or W&B on request.

The tracking libraries are optional; they are imported only when asked for.
"""

from __future__ import annotations

import importlib
import importlib.util
from typing import Any, Protocol

from aes_ensemble.errors import AesError
from aes_ensemble.learners.transformer.config import TrainSection

PACKAGES = {"tensorboard": "tensorboard", "wandb": "wandb"}


class Tracker(Protocol):
    def log(self, metrics: dict[str, float], step: int) -> None: ...

    def close(self) -> None: ...


class NoTracker:
    def log(self, metrics: dict[str, float], step: int) -> None:
        return None

    def close(self) -> None:
        return None


class TensorBoardTracker:
    def __init__(self, logging_dir: str) -> None:
        from torch.utils.tensorboard import SummaryWriter

        self.writer = SummaryWriter(log_dir=logging_dir)

    def log(self, metrics: dict[str, float], step: int) -> None:
        for name, value in metrics.items():
            self.writer.add_scalar(name, value, step)

    def close(self) -> None:
        self.writer.close()


class WandbTracker:
    def __init__(self, project: str, run_config: dict[str, Any]) -> None:
        self.wandb = importlib.import_module("wandb")
        self.run = self.wandb.init(project=project, config=run_config)

    def log(self, metrics: dict[str, float], step: int) -> None:
        self.run.log(metrics, step=step)

    def close(self) -> None:
        self.run.finish()


def check_available(report_to: str) -> None:
    """Fail before training, not after an hour of it, when the tracker is not installed."""
    package = PACKAGES.get(report_to)
    if package is not None and importlib.util.find_spec(package) is None:
        raise AesError(
            f"report_to '{report_to}' needs the '{package}' package: pip install {package}",
            key="train.report_to",
        )


def make_tracker(train: TrainSection, run_config: dict[str, Any], *, main: bool) -> Tracker:
    check_available(train.report_to)
    if not main or train.report_to == "none":
        return NoTracker()
    if train.report_to == "tensorboard":
        return TensorBoardTracker(train.logging_dir)
    return WandbTracker(train.wandb_project, run_config)
