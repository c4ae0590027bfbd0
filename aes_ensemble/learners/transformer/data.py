"""Essays to token batches: head+tail truncation, length-grouped batches, dynamic padding.

Padding every essay to ``max_length`` spends most of the compute on pad tokens (a median AES
essay is about half of 1024 tokens). Batches here hold essays of similar length and are padded
only to their longest member; with the fused DeBERTa kernels a batch can also be packed, its
essays end to end in one row with their boundaries beside it, so no pad token is computed.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from itertools import accumulate, chain
from typing import Any

import numpy as np
import torch
from transformers import PreTrainedTokenizerBase


@dataclass(frozen=True)
class SpecialTokens:
    """What the tokenizer puts before and after a single sequence (``[CLS]`` ... ``[SEP]``)."""

    prefix: tuple[int, ...]
    suffix: tuple[int, ...]

    @classmethod
    def of(cls, tokenizer: PreTrainedTokenizerBase) -> SpecialTokens:
        """Found by encoding a probe with and without specials (fast tokenizers have no
        ``build_inputs_with_special_tokens``)."""
        plain = tokenizer("essay", add_special_tokens=False)["input_ids"]
        full = tokenizer("essay", add_special_tokens=True)["input_ids"]
        for start in range(len(full) - len(plain) + 1):
            if full[start : start + len(plain)] == plain:
                return cls(tuple(full[:start]), tuple(full[start + len(plain) :]))
        raise ValueError(f"cannot place the text among the special tokens of {tokenizer}")


def head_tail(ids: Sequence[int], budget: int, head_fraction: float) -> list[int]:
    """Keep the first ``head`` and last ``budget - head`` tokens of a sequence over budget."""
    if len(ids) <= budget:
        return list(ids)
    head = round(budget * head_fraction)
    tail = budget - head
    return list(ids[:head]) + (list(ids[-tail:]) if tail else [])


def encode(
    tokenizer: PreTrainedTokenizerBase,
    texts: Sequence[str],
    max_length: int,
    head_fraction: float,
) -> list[list[int]]:
    """Token ids of each text, with special tokens, at most ``max_length`` long."""
    specials = SpecialTokens.of(tokenizer)
    budget = max_length - len(specials.prefix) - len(specials.suffix)
    raw = tokenizer(list(texts), add_special_tokens=False, verbose=False)["input_ids"]
    return [
        [*specials.prefix, *head_tail(ids, budget, head_fraction), *specials.suffix] for ids in raw
    ]


def length_grouped_batches(
    lengths: Sequence[int],
    batch_size: int,
    seed: int,
    *,
    group_batches: int = 50,
    grouped: bool = True,
) -> list[np.ndarray]:
    """Shuffled batches whose members have similar lengths.

    Rows are shuffled, cut into groups of ``group_batches`` batches, sorted by length within a
    group and split into batches; the batch order is shuffled again. Same seed, same batches.
    """
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(lengths))
    size = np.asarray(lengths)
    if grouped:
        group = batch_size * group_batches
        chunks = [order[i : i + group] for i in range(0, len(order), group)]
        order = np.concatenate([c[np.argsort(-size[c], kind="stable")] for c in chunks])
    batches = [order[i : i + batch_size] for i in range(0, len(order), batch_size)]
    return [batches[i] for i in rng.permutation(len(batches))]


def shard_batches(batches: list[np.ndarray], rank: int, world_size: int) -> list[np.ndarray]:
    """Every ``world_size``-th batch for ``rank``; the list is first cycled to a multiple of
    ``world_size`` so every process runs the same number of steps (DDP would hang otherwise)."""
    if world_size == 1:
        return batches
    total = -(-len(batches) // world_size) * world_size
    cycled = [batches[i % len(batches)] for i in range(total)]
    return cycled[rank::world_size]


def sorted_batches(lengths: Sequence[int], batch_size: int) -> list[np.ndarray]:
    """Inference batches, longest first (a memory problem shows up on the first batch)."""
    order = np.argsort(-np.asarray(lengths), kind="stable")
    return [order[i : i + batch_size] for i in range(0, len(order), batch_size)]


def collate(
    sequences: Sequence[Sequence[int]], pad_id: int, pad_to_multiple_of: int = 1
) -> dict[str, torch.Tensor]:
    """Pad to the longest sequence of the batch (rounded up to a multiple, for tensor cores)."""
    longest = max(len(s) for s in sequences)
    width = -(-longest // pad_to_multiple_of) * pad_to_multiple_of
    input_ids = torch.full((len(sequences), width), pad_id, dtype=torch.long)
    attention_mask = torch.zeros((len(sequences), width), dtype=torch.long)
    for row, ids in enumerate(sequences):
        input_ids[row, : len(ids)] = torch.as_tensor(ids, dtype=torch.long)
        attention_mask[row, : len(ids)] = 1
    return {"input_ids": input_ids, "attention_mask": attention_mask}


@dataclass(frozen=True)
class PackedLayout:
    """Where each essay of a packed batch lies: FlashAttention-style ``cu_seqlens`` boundaries,
    and each token's slot in the (essays, longest) grid that pooling reads.

    ``lengths`` stay on the host, so the kernels never wait on a device-to-host copy of them.
    """

    lengths: tuple[int, ...]
    cu_seqlens: torch.Tensor  # int32 (essays + 1,): 0, then the running sum of lengths
    token_slots: torch.Tensor  # long (tokens,): row * longest + position

    @property
    def offsets(self) -> tuple[int, ...]:
        return (0, *accumulate(self.lengths))

    def to(self, device: torch.device) -> PackedLayout:
        return PackedLayout(
            self.lengths, move(self.cu_seqlens, device), move(self.token_slots, device)
        )


def move(tensor: torch.Tensor, device: torch.device) -> torch.Tensor:
    """To ``device``; to a GPU from pinned memory without waiting, so the CPU is not held up
    until the GPU has finished the previous step (a plain copy from pageable memory waits)."""
    if device.type != "cuda":
        return tensor.to(device)
    return tensor.pin_memory().to(device, non_blocking=True)


def pack(sequences: Sequence[Sequence[int]]) -> dict[str, Any]:
    """One row of every token of the batch, no padding: ``input_ids`` and ``position_ids``
    (1, tokens), the ``packing`` layout, and the padded ``attention_mask`` that pooling uses."""
    lengths = tuple(len(s) for s in sequences)
    attention_mask = (torch.arange(max(lengths)) < torch.tensor(lengths)[:, None]).long()
    layout = PackedLayout(
        lengths,
        torch.tensor([0, *accumulate(lengths)], dtype=torch.int32),
        attention_mask.flatten().nonzero().squeeze(1),
    )
    return {
        "input_ids": torch.tensor(list(chain.from_iterable(sequences)), dtype=torch.long)[None],
        "position_ids": torch.cat([torch.arange(n) for n in lengths])[None],
        "attention_mask": attention_mask,
        "packing": layout,
    }


Batcher = Callable[[Sequence[Sequence[int]]], dict[str, Any]]


def make_batcher(pad_id: int, pad_to_multiple_of: int, packed: bool) -> Batcher:
    """How token sequences become model inputs: packed, or padded to the batch's longest."""
    if packed:
        return pack
    return partial(collate, pad_id=pad_id, pad_to_multiple_of=pad_to_multiple_of)


def to_device(batch: dict[str, Any], device: torch.device) -> dict[str, Any]:
    return {
        key: value.to(device) if isinstance(value, PackedLayout) else move(value, device)
        for key, value in batch.items()
    }
