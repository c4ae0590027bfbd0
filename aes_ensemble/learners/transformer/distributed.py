"""Data-parallel training under ``torchrun`` / ``accelerate launch``.

The launcher sets ``WORLD_SIZE``, ``RANK`` and ``LOCAL_RANK``; each process then trains on its
share of the length-grouped batches (``data.shard_batches``) and DDP averages the gradients.
Every process evaluates the whole validation fold (simple, and cheap next to training) and only
rank 0 writes files. To spread folds over GPUs instead, run ``--fold K`` once per GPU.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel


@dataclass(frozen=True)
class Distributed:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    enabled: bool = False
    owns_group: bool = False

    @classmethod
    def from_env(cls, device: torch.device) -> Distributed:
        """Join the process group a launcher describes; a plain run stays single-process."""
        if "WORLD_SIZE" not in os.environ or "RANK" not in os.environ:
            return cls()
        owns = not dist.is_initialized()
        if owns:
            dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
        local_rank = int(os.environ.get("LOCAL_RANK", "0"))
        return cls(dist.get_rank(), dist.get_world_size(), local_rank, True, owns)

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def device(self, device: torch.device) -> torch.device:
        """This process's GPU (``LOCAL_RANK``), or ``device`` unchanged off GPU."""
        if device.type != "cuda" or not self.enabled:
            return device
        torch.cuda.set_device(self.local_rank)
        return torch.device("cuda", self.local_rank)

    def wrap(self, model: nn.Module, device: torch.device) -> nn.Module:
        if not self.enabled:
            return model
        ids = [device.index] if device.type == "cuda" else None
        return DistributedDataParallel(model, device_ids=ids)

    def close(self) -> None:
        if self.owns_group and dist.is_initialized():
            dist.destroy_process_group()
