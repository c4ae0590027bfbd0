"""Score scales: the levels a score can take, globally or per prompt.

AES 2.0 has one scale (1..6); ASAP has one per prompt (2-12, 1-6, 0-3, ...); ELLIPSE scores
1..5 in half points, and each half point is a level. Learners normalise targets to 0..1 per
scale and map predictions back; thresholds and QWK work on level indices.
"""

from __future__ import annotations

import reprlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from aes_ensemble.errors import AesError


@dataclass(frozen=True)
class ScoreScale:
    """Scores ``low, low + step, ..., high``; every one of them is a level."""

    low: float
    high: float
    step: float = 1.0

    def __post_init__(self) -> None:
        if not self.high > self.low:
            raise AesError(f"score scale {self.low}..{self.high}: high must exceed low")
        if self.step <= 0:
            raise AesError(f"score scale step {self.step} must be positive")
        n = (self.high - self.low) / self.step
        if abs(n - round(n)) > 1e-9:
            raise AesError(f"score scale {self.low}..{self.high} is not a whole number of steps")

    @property
    def n_levels(self) -> int:
        return round((self.high - self.low) / self.step) + 1

    @property
    def levels(self) -> np.ndarray:
        return self.low + self.step * np.arange(self.n_levels)

    def to_index(self, scores: np.ndarray) -> np.ndarray:
        """Level index (0..n_levels-1) of each score, rounding continuous values to the nearest."""
        idx = np.rint((np.asarray(scores, dtype=float) - self.low) / self.step)
        return np.clip(idx, 0, self.n_levels - 1).astype(np.int64)

    def is_level(self, scores: np.ndarray) -> np.ndarray:
        s = np.asarray(scores, dtype=float)
        k = (s - self.low) / self.step
        return (np.abs(k - np.rint(k)) < 1e-6) & (s >= self.low - 1e-9) & (s <= self.high + 1e-9)

    def normalise(self, scores: np.ndarray) -> np.ndarray:
        return (np.asarray(scores, dtype=float) - self.low) / (self.high - self.low)

    def denormalise(self, values: np.ndarray) -> np.ndarray:
        return self.low + np.asarray(values, dtype=float) * (self.high - self.low)

    def round(self, scores: np.ndarray) -> np.ndarray:
        """Plain rounding to the nearest level, clipped to the scale."""
        return self.levels[self.to_index(scores)]

    def label(self, level: float) -> str:
        """Column-safe name of a level: 3 -> '3', 3.5 -> '3.5'."""
        return f"{level:g}"

    def to_dict(self) -> dict[str, float]:
        return {"low": self.low, "high": self.high, "step": self.step}

    @classmethod
    def parse(cls, text: str) -> ScoreScale:
        """``"1-6"``, ``"1..6"`` or ``"1-5:0.5"`` (low-high, optional step)."""
        body, _, step = text.partition(":")
        sep = ".." if ".." in body else "-"
        low, _, high = body.partition(sep)
        try:
            return cls(float(low), float(high), float(step) if step else 1.0)
        except ValueError:
            raise AesError(f"score scale '{text}' must look like 1-6 or 1-5:0.5") from None

    @classmethod
    def infer(cls, scores: np.ndarray) -> ScoreScale:
        """The smallest scale holding the observed scores (step from their spacing)."""
        s = np.unique(np.asarray(scores, dtype=float))
        if len(s) < 2:
            raise AesError("cannot infer a score scale from fewer than two distinct scores")
        diffs = np.diff(s)
        step = 1.0 if np.allclose(diffs, np.rint(diffs)) else 0.5
        if not np.allclose(diffs / step, np.rint(diffs / step)):
            step = float(min(diffs))
        return cls(float(s[0]), float(s[-1]), step)


@dataclass(frozen=True)
class ScoreScales:
    """One global scale, or one per prompt (every prompt of the data must have one)."""

    default: ScoreScale | None = None
    per_prompt: Mapping[str, ScoreScale] = field(default_factory=dict)

    def for_prompt(self, prompt: str | None) -> ScoreScale:
        if prompt is not None and prompt in self.per_prompt:
            return self.per_prompt[prompt]
        if self.default is not None:
            return self.default
        raise AesError(f"no score scale is declared for prompt '{prompt}'")

    @property
    def is_per_prompt(self) -> bool:
        return bool(self.per_prompt)

    def fits_per_prompt(self, setting: bool | str) -> bool:
        """Whether a learner's ``per_prompt: setting`` fits one model per prompt on these scales
        (``auto``: exactly when prompts have scales of their own, as in ASAP)."""
        return self.is_per_prompt if setting == "auto" else bool(setting)

    def for_rows(self, prompts: list[str | None] | np.ndarray) -> list[ScoreScale]:
        return [self.for_prompt(p) for p in prompts]

    def groups(self, prompts: np.ndarray) -> dict[ScoreScale, np.ndarray]:
        """Row indices that share a scale, so per-scale work (thresholds) loops over few groups."""
        out: dict[ScoreScale, list[int]] = {}
        for i, p in enumerate(prompts):
            out.setdefault(self.for_prompt(p), []).append(i)
        return {scale: np.asarray(rows, dtype=np.int64) for scale, rows in out.items()}

    def _per_scale(
        self,
        values: np.ndarray,
        prompts: np.ndarray,
        apply: Callable[[ScoreScale, np.ndarray], np.ndarray],
    ) -> np.ndarray:
        """``apply`` each row's own scale to ``values``, one call per scale."""
        out = np.empty(len(values), dtype=float)
        for scale, rows in self.groups(prompts).items():
            out[rows] = apply(scale, np.asarray(values)[rows])
        return out

    def normalise(self, scores: np.ndarray, prompts: np.ndarray) -> np.ndarray:
        return self._per_scale(scores, prompts, ScoreScale.normalise)

    def denormalise(self, values: np.ndarray, prompts: np.ndarray) -> np.ndarray:
        return self._per_scale(values, prompts, ScoreScale.denormalise)

    def round(self, scores: np.ndarray, prompts: np.ndarray) -> np.ndarray:
        return self._per_scale(scores, prompts, ScoreScale.round)

    def to_dict(self) -> dict[str, Any]:
        return {
            "default": None if self.default is None else self.default.to_dict(),
            "per_prompt": {p: s.to_dict() for p, s in sorted(self.per_prompt.items())},
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ScoreScales:
        """The inverse of :meth:`to_dict`, for scales stored in a file; a damaged mapping is an
        ``AesError`` (the caller names the file) rather than a ``TypeError`` from deep inside."""
        try:
            default = data.get("default")
            per_prompt = data.get("per_prompt") or {}
            return cls(
                default=None if default is None else _scale_from_dict(default),
                per_prompt={str(p): _scale_from_dict(s) for p, s in per_prompt.items()},
            )
        except (AttributeError, KeyError, TypeError, ValueError):
            raise AesError(
                f"malformed score scales {reprlib.repr(data)} (expected default and per_prompt "
                "mappings of low, high, step)"
            ) from None


def scale_settings(values: Sequence[str]) -> tuple[str | None, dict[str, str]]:
    """``--scale`` values (``1-6``, ``PROMPT=0-3``) as data.yaml's ``scale`` and
    ``per_prompt_scales``, each checked; an error names ``--scale``."""
    default: str | None = None
    per_prompt: dict[str, str] = {}
    for value in values:
        prompt, sep, text = value.rpartition("=")
        try:
            ScoreScale.parse(text.strip())
        except AesError as exc:
            raise AesError(exc.message, path="--scale") from None
        if not sep:
            default = text.strip()
        elif not prompt.strip():
            raise AesError(f"'{value}' names no prompt; use PROMPT=SCALE", path="--scale")
        else:
            per_prompt[prompt.strip()] = text.strip()
    return default, per_prompt


def scales_of_settings(values: Sequence[str]) -> ScoreScales | None:
    """The scales ``--scale`` values declare; None when there are none (the format's, or
    inferred from the scores)."""
    default, per_prompt = scale_settings(values)
    if default is None and not per_prompt:
        return None
    return ScoreScales(
        default=None if default is None else ScoreScale.parse(default),
        per_prompt={p: ScoreScale.parse(t) for p, t in per_prompt.items()},
    )


def _scale_from_dict(data: Mapping[str, Any]) -> ScoreScale:
    """``{"low", "high", "step"}`` numbers, as :meth:`ScoreScale.to_dict` writes them."""
    numbers = isinstance(data, Mapping) and all(
        isinstance(v, int | float) and not isinstance(v, bool) for v in data.values()
    )
    if not numbers or set(data) - {"low", "high", "step"}:
        raise TypeError("not a mapping of low, high, step numbers")
    return ScoreScale(float(data["low"]), float(data["high"]), float(data.get("step", 1.0)))


ASAP_SCALES = ScoreScales(
    per_prompt={
        "1": ScoreScale(2, 12),
        "2": ScoreScale(1, 6),
        "3": ScoreScale(0, 3),
        "4": ScoreScale(0, 3),
        "5": ScoreScale(0, 4),
        "6": ScoreScale(0, 4),
        "7": ScoreScale(0, 30),
        "8": ScoreScale(0, 60),
    }
)
AES2_SCALE = ScoreScales(default=ScoreScale(1, 6))
ELLIPSE_SCALE = ScoreScales(default=ScoreScale(1, 5, 0.5))
