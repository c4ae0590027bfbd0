"""The essays table: read AES 2.0, ASAP, ELLIPSE or generic files into one validated schema."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import polars as pl

from aes_ensemble.scales import ScoreScales

CORE_COLUMNS = ("essay_id", "full_text", "score", "prompt", "source")
CORE_SCHEMA = {
    "essay_id": pl.String,
    "full_text": pl.String,
    "score": pl.Float64,
    "prompt": pl.String,
    "source": pl.String,
}


@dataclass(frozen=True)
class Essays:
    """Validated essays: ``frame`` has CORE_COLUMNS (in order) then the subgroup columns."""

    frame: pl.DataFrame
    scales: ScoreScales
    path: Path | None = None
    subgroups: tuple[str, ...] = ()

    def __len__(self) -> int:
        return self.frame.height

    @property
    def ids(self) -> list[str]:
        return self.frame["essay_id"].to_list()

    @property
    def texts(self) -> list[str]:
        return self.frame["full_text"].to_list()

    @property
    def scores(self) -> np.ndarray:
        return self.frame["score"].to_numpy().astype(np.float64)

    @property
    def prompts(self) -> np.ndarray:
        return np.asarray(self.frame["prompt"].to_list(), dtype=object)

    @property
    def has_prompts(self) -> bool:
        return self.frame["prompt"].null_count() < self.frame.height

    @property
    def has_scores(self) -> bool:
        return self.frame["score"].null_count() == 0 and self.frame.height > 0

    def take(self, indices: np.ndarray | list[int]) -> Essays:
        """A subset of rows (in the given order), same scales and subgroups."""
        frame = self.frame[np.asarray(indices, dtype=np.int64)]
        return Essays(frame, self.scales, self.path, self.subgroups)
