"""The fine-tuning loop, written to be read top to bottom like a Hugging Face example.

For each stage (rows of one ``source``; one stage over all rows by default): a fresh AdamW with
layer-wise learning rates and a warmup schedule, then epochs of length-grouped, dynamically
padded batches under autocast, with gradient accumulation up to the effective batch size. After
each epoch the validation fold is scored (QWK) and the best weights are kept.

Master weights stay fp32; autocast runs the matmuls in bf16/fp16, and a GradScaler is used only
for fp16 (bf16 has fp32's range and needs none).
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Callable, Sequence
from contextlib import nullcontext
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm
from transformers import get_scheduler

from aes_ensemble.errors import AesError
from aes_ensemble.learners.transformer.config import TrainSection
from aes_ensemble.learners.transformer.data import (
    Batcher,
    length_grouped_batches,
    move,
    shard_batches,
    to_device,
)
from aes_ensemble.learners.transformer.distributed import Distributed
from aes_ensemble.learners.transformer.inference import autocast, resolve_precision
from aes_ensemble.learners.transformer.model import EssayScorer, parameter_groups
from aes_ensemble.learners.transformer.tracking import make_tracker

LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
LOSS_DISPLAY_STEPS = 20  # the progress bar's running loss, read from the device this often
Evaluate = Callable[[EssayScorer, torch.dtype], float]


@dataclass(frozen=True)
class TrainData:
    """Token ids, targets (normalised scores or level indices) and each row's ``source``."""

    sequences: Sequence[Sequence[int]]
    targets: torch.Tensor
    sources: Sequence[str | None]


@dataclass(frozen=True)
class StagePlan:
    name: str
    rows: np.ndarray
    epochs: int
    learning_rate: float


@dataclass
class TrainResult:
    history: list[dict[str, Any]] = field(default_factory=list)
    best_epoch: int | None = None
    best_qwk: float | None = None
    selected_epoch: int = 0


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def plan_stages(train: TrainSection, sources: Sequence[str | None]) -> list[StagePlan]:
    """The rows, epochs and learning rate of each stage; a stage with no rows is an error."""
    all_rows = np.arange(len(sources))
    if not train.stages:
        return [StagePlan("all", all_rows, train.epochs, train.learning_rate)]
    known = sorted({s for s in sources if s is not None})
    plans = []
    for i, stage in enumerate(train.stages):
        if stage.source is None:
            rows = all_rows
        else:
            rows = np.flatnonzero(np.asarray([s == stage.source for s in sources]))
        if len(rows) == 0:
            raise AesError(
                f"no training essays have source '{stage.source}' (sources: {known or 'none'})",
                key=f"train.stages.{i}.source",
            )
        lr = stage.learning_rate or train.learning_rate
        plans.append(StagePlan(stage.source or "all", rows, stage.epochs, lr))
    return plans


def accumulation_steps(train: TrainSection, world_size: int) -> int:
    per_step = train.batch_size * world_size
    return max(1, math.ceil((train.effective_batch_size or per_step) / per_step))


def train_scorer(
    model: EssayScorer,
    data: TrainData,
    train: TrainSection,
    *,
    seed: int,
    device: torch.device,
    batcher: Batcher,
    loss_fn: LossFn,
    evaluate: Evaluate | None,
    run_config: dict[str, Any],
) -> TrainResult:
    """Fine-tune ``model`` in place; on return it holds the selected (best or last) weights."""
    dist = Distributed.from_env(device)
    device = dist.device(device)
    amp_dtype = resolve_precision(train.precision, device)
    model.to(device)
    ddp_model = dist.wrap(model, device)
    scaler = torch.amp.GradScaler(device.type, enabled=amp_dtype == torch.float16)
    tracker = make_tracker(train, run_config, main=dist.is_main)
    accumulate = accumulation_steps(train, dist.world_size)
    lengths = np.asarray([len(s) for s in data.sequences])
    result = TrainResult()
    best_state: dict[str, torch.Tensor] | None = None
    optimizer_steps = 0
    epoch_number = 0
    try:
        for stage in plan_stages(train, data.sources):
            # 1. The batches of every epoch are known upfront, so the schedule knows its length.
            epoch_batches = [
                shard_batches(
                    [
                        stage.rows[b]
                        for b in length_grouped_batches(
                            lengths[stage.rows],
                            train.batch_size,
                            seed + epoch_number + e,
                            grouped=train.length_grouping,
                        )
                    ],
                    dist.rank,
                    dist.world_size,
                )
                for e in range(stage.epochs)
            ]
            steps = sum(math.ceil(len(b) / accumulate) for b in epoch_batches)
            if train.max_steps is not None:
                steps = min(steps, train.max_steps - optimizer_steps)

            # 2. A fresh optimiser and schedule per stage (stage 2 usually has a lower rate).
            optimizer = torch.optim.AdamW(
                parameter_groups(model, train, stage.learning_rate), fused=device.type == "cuda"
            )
            scheduler = get_scheduler(
                train.scheduler,
                optimizer,
                num_warmup_steps=round(train.warmup_ratio * steps),
                num_training_steps=max(steps, 1),
            )

            for batches in epoch_batches:
                epoch_number += 1
                ddp_model.train()
                started = time.perf_counter()
                # The loss stays on the device: reading it every step would make the CPU wait
                # for the GPU, and a model this size needs the CPU to run ahead.
                loss_sum, tokens, seen = torch.zeros((), device=device), 0, 0
                bar = tqdm(
                    batches,
                    desc=f"{stage.name} epoch {epoch_number}",
                    disable=not (train.progress_bar and dist.is_main),
                    leave=False,
                )
                for i, rows in enumerate(bar):
                    # 3. Forward under autocast; the loss is averaged over the accumulation window.
                    window_start = i - i % accumulate
                    window = min(accumulate, len(batches) - window_start)
                    last_of_window = i == window_start + window - 1
                    batch = batcher([data.sequences[r] for r in rows])
                    tokens += int(batch["attention_mask"].sum())
                    batch = to_device(batch, device)
                    targets = move(data.targets[rows], device)
                    # Under DDP, gradients are all-reduced only on the window's last micro-batch.
                    skip_sync = dist.enabled and not last_of_window
                    with ddp_model.no_sync() if skip_sync else nullcontext():  # type: ignore[operator]
                        with autocast(device, amp_dtype):
                            outputs = ddp_model(**batch)
                        loss = loss_fn(outputs.float(), targets)
                        scaler.scale(loss / window).backward()

                    loss_sum += loss.detach() * len(rows)
                    seen += len(rows)
                    if not last_of_window:
                        continue

                    # 4. Optimiser step: unscale, clip, step, schedule.
                    scaler.unscale_(optimizer)
                    torch.nn.utils.clip_grad_norm_(model.parameters(), train.max_grad_norm)
                    scaler.step(optimizer)
                    scaler.update()
                    scheduler.step()
                    optimizer.zero_grad(set_to_none=True)
                    optimizer_steps += 1
                    if optimizer_steps % LOSS_DISPLAY_STEPS == 0 and not bar.disable:
                        bar.set_postfix(loss=f"{loss_sum.item() / seen:.4f}")
                    if train.max_steps is not None and optimizer_steps >= train.max_steps:
                        break
                bar.close()
                seconds = time.perf_counter() - started

                # 5. Score the validation fold; keep the best weights.
                qwk = None if evaluate is None else evaluate(model, amp_dtype)
                record = {
                    "stage": stage.name,
                    "epoch": epoch_number,
                    "train_loss": loss_sum.item() / max(seen, 1),
                    "valid_qwk": qwk,
                    "optimizer_steps": optimizer_steps,
                    "seconds": seconds,
                    "essays_per_second": seen / seconds,
                    "tokens_per_second": tokens / seconds,
                }
                result.history.append(record)
                tracker.log({k: v for k, v in record.items() if isinstance(v, float)}, epoch_number)
                if train.progress_bar and dist.is_main:
                    shown = "" if qwk is None else f", valid QWK {qwk:.4f}"
                    tqdm.write(
                        f"{stage.name} epoch {epoch_number}: loss {record['train_loss']:.4f}"
                        f"{shown}, {record['essays_per_second']:.1f} essays/s"
                    )
                if qwk is not None and (result.best_qwk is None or qwk > result.best_qwk):
                    result.best_qwk, result.best_epoch = qwk, epoch_number
                    if train.select_best == "qwk":
                        best_state = {
                            k: v.detach().cpu().clone() for k, v in model.state_dict().items()
                        }
                if train.max_steps is not None and optimizer_steps >= train.max_steps:
                    break
            if train.max_steps is not None and optimizer_steps >= train.max_steps:
                break
    finally:
        tracker.close()
        dist.close()

    # 6. Hand back the selected weights.
    result.selected_epoch = epoch_number
    if best_state is not None and result.best_epoch is not None:
        model.load_state_dict(best_state)
        result.selected_epoch = result.best_epoch
    return result
