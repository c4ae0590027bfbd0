"""What one fold of a learner asks a cluster scheduler for (``resources:`` in a learner config).

Scheduling never changes a fit, so these settings are left out of a config's dump and hash.
"""

from __future__ import annotations

from pydantic import Field

from aes_ensemble.config import StrictModel

# GPUs a task of each kind asks a scheduler for when its config says nothing (one per fold).
DEFAULT_GPUS: dict[str, float] = {"transformer": 1.0}


class Resources(StrictModel):
    """What one fold of a learner asks a cluster scheduler (Ray) for: CPUs, GPUs (None: the
    kind's default, ``DEFAULT_GPUS``) and memory in bytes (None: no reservation)."""

    num_cpus: float = Field(default=1.0, gt=0)
    num_gpus: float | None = Field(default=None, ge=0)
    memory: int | None = Field(default=None, gt=0)


def task_resources(res: Resources, kind: str) -> Resources:
    """A config's resources with its kind's default GPUs filled in."""
    if res.num_gpus is not None:
        return res
    return res.model_copy(update={"num_gpus": DEFAULT_GPUS.get(kind, 0.0)})
