"""Extra scored essays for every fold's training rows (``extra_train:`` in a learner config).

Essays of the same population scored on another rubric (ELLIPSE's Feedback Prize ELL file: six
analytic scores, no holistic one) widen what a learner sees. They join the training rows of each
fold only, never a validation fold, an OOF or a test prediction. Their target is the mean of the
named score columns snapped to the nearest level of the workspace's scale, so classifiers and
ordinal learners get levels too. An extra essay whose text is a workspace essay's (whitespace and
case aside) is dropped: it would put a validation fold's own essay into its training rows.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import polars as pl
from pydantic import Field, model_validator

from aes_ensemble.config import StrictModel
from aes_ensemble.data import (
    CORE_SCHEMA,
    Essays,
    check_columns,
    check_ids_and_texts,
    clean_column,
    first_row,
    read_table,
    scale_text,
)
from aes_ensemble.errors import AesError


class ExtraTrainConfig(StrictModel):
    """Where the extra essays are (CSV or Parquet; ``path`` relative to the workspace root) and
    which columns hold their id, text, scores (the target is their mean) and prompt (a fixed
    ``prompt`` for all, or ``prompt_column``; per-prompt learners need one)."""

    path: Path
    id_column: str = "essay_id"
    text_column: str = "full_text"
    score_columns: list[str] = Field(min_length=1)
    prompt: str | None = None
    prompt_column: str | None = None

    @model_validator(mode="after")
    def _one_prompt_source(self) -> ExtraTrainConfig:
        if self.prompt is not None and self.prompt_column is not None:
            raise ValueError("set prompt (one value for all) or prompt_column, not both")
        return self


@dataclass(frozen=True)
class ExtraEssays:
    """The extra essays on the workspace's scales, and how many were dropped as copies of
    workspace essays."""

    essays: Essays
    dropped: int

    def note(self) -> str:
        path = self.essays.path
        return (
            f"extra_train: {len(self.essays)} essays from {path} join every fold's training rows; "
            f"{self.dropped} dropped as copies of workspace essays"
        )


def normalised_text(text: str) -> str:
    """The text with whitespace runs collapsed and case folded: what counts as the same essay."""
    return " ".join(text.split()).casefold()


def _read_extra_table(path: Path) -> pl.DataFrame:
    """Every column as strings plus ``_row`` (1-based data row), from CSV/TSV (read as an
    essays file is) or Parquet."""
    if path.suffix.lower() not in {".parquet", ".pq"}:
        return read_table(path)
    if not path.is_file():
        raise AesError("file not found", path=path)
    try:
        raw = pl.read_parquet(path)
    except (pl.exceptions.PolarsError, OSError) as exc:
        first = str(exc).strip().splitlines()[0]
        raise AesError(f"cannot read as Parquet ({first})", path=path) from None
    if raw.height == 0:
        raise AesError("file has a header but no essays", path=path)
    table = raw.select(pl.all().cast(pl.String)).with_row_index("_row", offset=1)
    return table.with_columns(pl.col("_row").cast(pl.Int64))


def _some(names: Iterable[str]) -> str:
    ordered = sorted(names)
    return ", ".join(ordered[:5]) + (f", ... ({len(ordered)} in all)" if len(ordered) > 5 else "")


def _check_prompts(
    frame: pl.DataFrame,
    config: ExtraTrainConfig,
    path: Path,
    train: Essays,
    per_prompt: bool,
) -> None:
    """Per-prompt learners fit one model per training prompt, so each extra essay needs one of
    them; any learner needs each essay's prompt to have a score scale."""
    key = "extra_train.prompt_column" if config.prompt_column else "extra_train.prompt"
    known = {str(p) for p in train.prompts if p is not None}
    in_file = config.prompt_column is not None  # else the config's one value is at fault
    for prompt, row in zip(frame["prompt"].to_list(), frame["_row"].to_list(), strict=True):
        where, line = (path, row) if in_file else (None, None)
        if per_prompt and prompt not in known:
            what = "an essay without a prompt" if prompt is None else f"prompt '{prompt}'"
            raise AesError(
                f"{what}: a per-prompt learner needs each extra essay to have a prompt of the "
                f"training essays (set extra_train.prompt or prompt_column; training prompts: "
                f"{_some(known)})",
                path=where,
                row=line,
                key=key,
            )
        try:
            train.scales.for_prompt(prompt)
        except AesError as exc:
            raise AesError(
                f"{exc.message}; set extra_train.prompt or prompt_column",
                path=where,
                row=line,
                key=key,
            ) from None


def _target(
    table: pl.DataFrame, frame: pl.DataFrame, config: ExtraTrainConfig, path: Path, train: Essays
) -> np.ndarray:
    """The mean of the score columns, each checked against the essay's scale, snapped to the
    nearest level."""
    prompts = np.asarray(frame["prompt"].to_list(), dtype=object)
    scales = train.scales.for_rows(prompts)
    low = np.asarray([s.low for s in scales])
    high = np.asarray([s.high for s in scales])
    columns = []
    for name in config.score_columns:
        text = pl.col(name).str.strip_chars()
        number = text.cast(pl.Float64, strict=False)
        values = table.select(number).to_series()
        bad = first_row(table, number.is_null() | number.is_infinite())
        if bad is not None:
            cell = str(bad[name] or "").strip()
            what = "is missing" if not cell else f"'{cell}' is not a number"
            raise AesError(f"{name} {what}", path=path, row=int(str(bad["_row"])))
        value = values.to_numpy().astype(np.float64)
        outside = np.flatnonzero((value < low - 1e-9) | (value > high + 1e-9))
        if outside.size:
            i = int(outside[0])
            raise AesError(
                f"{name} {value[i]:g} is outside the workspace's scale "
                f"{scale_text(scales[i])}; extra scores must be on the scale the essays are "
                "scored on",
                path=path,
                row=int(table["_row"][i]),
            )
        columns.append(value)
    mean = np.mean(np.column_stack(columns), axis=1)
    return train.scales.round(mean, prompts)


def read_extra(
    config: ExtraTrainConfig,
    root: Path,
    train: Essays,
    test: Essays | None,
    *,
    per_prompt: bool,
) -> ExtraEssays:
    """The extra essays of ``config`` on ``train``'s scales, without copies of ``train`` or
    ``test`` essays; ``per_prompt``: whether the learner fits one model per prompt."""
    path = Path(root) / config.path
    table = _read_extra_table(path)
    header = [c for c in table.columns if c != "_row"]
    prompt_column = [config.prompt_column] if config.prompt_column else []
    wanted = [config.id_column, config.text_column, *config.score_columns, *prompt_column]
    check_columns(header, wanted, path, "named in extra_train")
    prompt = clean_column(config.prompt_column) if config.prompt_column else pl.lit(config.prompt)
    frame = table.select(
        "_row",
        clean_column(config.id_column).alias("essay_id"),
        pl.col(config.text_column).alias("full_text"),
        prompt.cast(pl.String).alias("prompt"),
    )
    check_ids_and_texts(frame, path, config.id_column, config.text_column)
    _check_prompts(frame, config, path, train, per_prompt)
    frame = frame.with_columns(pl.Series("score", _target(table, frame, config, path, train)))

    workspace = [*train.texts, *(test.texts if test is not None else [])]
    seen = {normalised_text(t) for t in workspace}
    copy = np.asarray([normalised_text(t) in seen for t in frame["full_text"].to_list()])
    kept = frame.filter(pl.Series(~copy)) if copy.size else frame
    ids = {*train.ids, *(test.ids if test is not None else [])}
    clash = first_row(kept, pl.col("essay_id").is_in(list(ids)))
    if clash is not None:
        raise AesError(
            f"{config.id_column} '{clash['essay_id']}' is also a workspace essay's id, with "
            "another text; give the extra essays ids of their own",
            path=path,
            row=int(str(clash["_row"])),
        )
    core = kept.with_columns(pl.lit(None, pl.String).alias("source")).select(
        *[pl.col(c).cast(t) for c, t in CORE_SCHEMA.items()]
    )
    return ExtraEssays(Essays(core, train.scales, path), int(copy.sum()))


def with_extra(train: Essays, extra: Essays) -> Essays:
    """A fold's training rows followed by the extra essays (columns they lack left null)."""
    absent = [
        pl.lit(None, dtype).alias(name)
        for name, dtype in train.frame.schema.items()
        if name not in extra.frame.columns
    ]
    rows = extra.frame.with_columns(absent).select(train.frame.columns)
    return Essays(pl.concat([train.frame, rows]), train.scales, train.path, train.subgroups)
