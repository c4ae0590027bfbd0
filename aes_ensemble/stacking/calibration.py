"""Prompt-batch calibration for prompts unseen in training (``unseen_prompts: standardise``).

A model fitted on other prompts ranks a new prompt's essays well but misplaces their *level*:
on ASAP leave-one-prompt-out the stack put prompt 2 at 0.67 of its scale against a true 0.48.
For every prompt of a batch that none of the training rows had, the stack's continuous
prediction (0..1 of the prompt's scale) is z-standardised over that prompt's essays in the
batch and moved to the typical level and spread of the training prompts: the mean over training
prompts of each one's mean and standard deviation of the normalised human scores (equal weight
per prompt; a pooled SD would add the spread *between* prompts, which one prompt's batch does
not have). It reads the new prompt's predictions only, never its scores; prompts seen in
training are left exactly as they were. Essays without a prompt are one group, like a prompt.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from aes_ensemble.errors import AesError

UNSEEN_PROMPTS = ("keep", "standardise")
DEFAULT_MIN_BATCH = 30

Key = str | None


def prompt_keys(prompts: Iterable[Any]) -> np.ndarray:
    """Each row's prompt as text (``None`` where it has none), the group it is calibrated in."""
    return np.asarray([None if p is None else str(p) for p in prompts], dtype=object)


def _in_order(keys: Iterable[Key]) -> list[Key]:
    """Distinct keys, ``None`` first, then by name: a stable order for errors and JSON."""
    return sorted(set(keys), key=lambda k: (k is not None, k or ""))


@dataclass(frozen=True)
class PromptCalibration:
    """Fitted on the training rows: ``seen`` their prompts, ``mean``/``sd`` the target level and
    spread (0..1 of each scale); ``min_batch`` the fewest essays of an unseen prompt that a
    batch must hold for its mean and SD to mean anything."""

    seen: frozenset[Key]
    mean: float
    sd: float
    min_batch: int = DEFAULT_MIN_BATCH

    @classmethod
    def fit(
        cls, y_norm: np.ndarray, prompts: Iterable[Any], min_batch: int = DEFAULT_MIN_BATCH
    ) -> PromptCalibration:
        """The training rows' prompts and the mean over them of each one's mean and SD."""
        y_norm = np.asarray(y_norm, dtype=float)
        keys = prompt_keys(prompts)
        if len(y_norm) == 0 or len(keys) != len(y_norm):
            raise AesError("prompt calibration needs one prompt per training score")
        groups = [y_norm[keys == k] for k in _in_order(keys)]
        return cls(
            seen=frozenset(keys),
            mean=float(np.mean([g.mean() for g in groups])),
            sd=float(np.mean([g.std() for g in groups])),
            min_batch=min_batch,
        )

    def unseen(self, prompts: Iterable[Any]) -> list[Key]:
        """The batch's prompts that no training row had."""
        return [k for k in _in_order(prompt_keys(prompts)) if k not in self.seen]

    def transform(self, pred_norm: np.ndarray, prompts: Iterable[Any]) -> np.ndarray:
        """``pred_norm`` (0..1 of each prompt's scale) with each unseen prompt's rows moved to
        ``mean`` and ``sd`` (clipped to 0..1); rows of seen prompts are returned unchanged. An
        unseen prompt with fewer than ``min_batch`` rows is an error naming it."""
        pred_norm = np.asarray(pred_norm, dtype=float)
        keys = prompt_keys(prompts)
        out = pred_norm.copy()
        for key in self.unseen(keys):
            rows = keys == key
            self._check_batch(key, int(rows.sum()))
            values = pred_norm[rows]
            spread = values.std()
            z = (values - values.mean()) / (spread if spread > 0 else 1.0)
            out[rows] = np.clip(z * self.sd + self.mean, 0.0, 1.0)
        return out

    def _check_batch(self, key: Key, n: int) -> None:
        if n >= self.min_batch:
            return
        who = "essays without a prompt" if key is None else f"prompt '{key}'"
        raise AesError(
            f"{who}: not among the stack's training prompts and only {n} of its essays in "
            f"this batch; unseen_prompts: standardise needs at least {self.min_batch} of a new "
            "prompt's essays scored together: score more of its essays at once, or stack with "
            "unseen_prompts: keep"
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "seen": _in_order(self.seen),
            "mean": self.mean,
            "sd": self.sd,
            "min_batch": self.min_batch,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> PromptCalibration:
        """The inverse of :meth:`to_dict`; a damaged mapping is an ``AesError``."""
        try:
            seen = data["seen"]
            numbers = [data["mean"], data["sd"]]
            min_batch = data["min_batch"]
            ok = (
                isinstance(seen, list)
                and all(k is None or isinstance(k, str) for k in seen)
                and all(
                    isinstance(v, int | float) and not isinstance(v, bool) and np.isfinite(v)
                    for v in numbers
                )
                and isinstance(min_batch, int)
                and not isinstance(min_batch, bool)
                and min_batch >= 1
                and set(data) == {"seen", "mean", "sd", "min_batch"}
            )
        except (KeyError, TypeError):
            ok = False
        if not ok:
            raise AesError(
                "is not a prompt calibration (seen: list of prompts, mean and sd: numbers, "
                "min_batch: a positive integer)",
                key="calibration",
            )
        return cls(frozenset(seen), float(numbers[0]), float(numbers[1]), min_batch)
