"""``aes-ensemble score`` as one library call: an essays file in, ``essay_id,score`` out.

The file may be in any format the readers take, with or without scores; where it has scores the
QWK against them is measured. The output appears complete or not at all (temporary file, then
rename), so a failed run never leaves half a scores file where a pipeline expects one.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import polars as pl

from aes_ensemble.data import detect_role, read_essays
from aes_ensemble.errors import AesError
from aes_ensemble.io import atomic_path, ensure_writable, require_file
from aes_ensemble.metrics import headline_qwk
from aes_ensemble.scoring.ensemble import Ensemble


@dataclass(frozen=True)
class ScoredFile:
    """What ``score_file`` wrote: the levels in file order, the prompts it standardised over
    the file's essays (``unseen_prompts: standardise``; None stands for essays without a
    prompt) and the QWK against the file's own scores, where it has them."""

    output: Path
    levels: np.ndarray
    standardised: tuple[str | None, ...]
    qwk: float | None


def score_file(
    ensemble: Ensemble,
    essays: Path,
    output: Path,
    *,
    data_format: str = "auto",
    explain: bool = False,
    progress: bool = True,
) -> ScoredFile:
    """Score every essay of ``essays`` and write ``essay_id,score`` (with ``explain``, the
    continuous score and one column per learner) to ``output``."""
    require_file(essays)
    if output.is_dir():
        raise AesError(
            f"is a folder; name the file to write (e.g. -o {output / 'scores.csv'})", path=output
        )
    role = detect_role(essays, data_format=data_format)
    items = read_essays(essays, role=role, data_format=data_format, scales=ensemble.scales)
    ensure_writable(output.parent)
    result = ensemble.score(items, explain=explain, progress=progress)
    levels = result["score"].to_numpy()
    table = result.with_columns(pl.Series("score", [f"{v:g}" for v in levels], dtype=pl.String))
    with atomic_path(output) as tmp:
        table.write_csv(tmp)
    qwk = None
    if role == "train":
        qwk = headline_qwk(items.scores, levels, items.prompts, ensemble.scales)
    return ScoredFile(output, levels, ensemble.unseen_prompts(items.prompts), qwk)
