"""The essays table: read AES 2.0, ASAP, ELLIPSE or generic files into one validated schema.

Every file is read with all columns as strings first and converted afterwards, so a bad cell
becomes an ``AesError`` that names the file, the 1-based data row and the problem instead of a
parser exception or a silently coerced value.
"""

from __future__ import annotations

import codecs
import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import polars as pl

from aes_ensemble.config import DataConfig, load_config
from aes_ensemble.errors import AesError, did_you_mean
from aes_ensemble.formats import FORMATS
from aes_ensemble.io import read_bytes
from aes_ensemble.scales import (
    AES2_SCALE,
    ASAP_SCALES,
    ELLIPSE_SCALE,
    ScoreScale,
    ScoreScales,
)
from aes_ensemble.workspace import Workspace

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

    def human_ratings(self) -> tuple[np.ndarray, np.ndarray] | None:
        """The first and second human ratings on the score's scale, NaN where an essay has no
        such rating (partial double scoring), or None where the data carries no second rating.

        Values are those of the ``rater1``/``rater2`` columns, which reading already put on the
        score's scale (ASAP's summed prompts doubled: ``ASAP_SUMMED_PROMPTS``). A rating off its
        scale is returned as it is: ``data check`` rejects it naming the row, and the validity
        report sets it aside with a note, so one bad cell never stops a report."""
        if "rater2" not in self.frame.columns:
            return None
        first = "rater1" if "rater1" in self.frame.columns else "score"
        return tuple(  # type: ignore[return-value]
            self.frame[c].cast(pl.Float64).fill_null(np.nan).to_numpy().astype(np.float64)
            for c in (first, "rater2")
        )

    def fingerprint(self) -> str:
        """sha256 (16 hex) of ids, texts, scores and prompts in row order: a model fitted on
        other essays or other scores must never pass as current, whatever the file is called."""
        digest = hashlib.sha256()
        for row in self.frame.select("essay_id", "full_text", "score", "prompt").iter_rows():
            digest.update(json.dumps(row, ensure_ascii=False).encode())
            digest.update(b"\n")
        return digest.hexdigest()[:16]


def data_fingerprint(train: Essays, test: Essays | None) -> str:
    """The identity of a workspace's data: the training essays and, where there is one, the
    test file (test predictions go stale with it too)."""
    parts = [train.fingerprint(), "" if test is None else test.fingerprint()]
    return hashlib.sha256(":".join(parts).encode()).hexdigest()[:16]


Role = Literal["train", "test"]
_OPTIONAL = ("prompt", "source")


@dataclass(frozen=True)
class Layout:
    """Which file column feeds each schema column in one format, and the format's own scales."""

    name: str
    columns: Mapping[str, str]
    required_prompt: bool = False
    extras: Mapping[str, str] | None = None
    scales: ScoreScales | None = None
    subgroups: tuple[str, ...] = ()  # the format's documented demographic columns


# ASAP prompts whose resolved ``domain1_score`` is the sum of the two raters' scores (always on
# 1 and 7; on 8 except the essays a third rater resolved): each rating is on half the resolved
# scale, so reading doubles it; human-human agreement is then on the scale the machine is judged
# on, and the mean of the two ratings is the resolved score, as the true-score model assumes.
ASAP_SUMMED_PROMPTS = frozenset({"1", "7", "8"})
SECOND_RATING = "rater2"

_PLAIN = {
    "essay_id": "essay_id",
    "full_text": "full_text",
    "score": "score",
    "prompt": "prompt",
    "source": "source",
}
LAYOUTS = {
    "aes2": Layout("aes2", _PLAIN, scales=AES2_SCALE),
    "asap": Layout(
        "asap",
        {**_PLAIN, "full_text": "essay", "score": "domain1_score", "prompt": "essay_set"},
        required_prompt=True,
        # Two independent human ratings: the report's human-human agreement baseline.
        extras={"rater1_domain1": "rater1", "rater2_domain1": "rater2"},
        scales=ASAP_SCALES,
    ),
    "ellipse": Layout(
        "ellipse",
        {**_PLAIN, "essay_id": "text_id_kaggle", "score": "Overall"},
        scales=ELLIPSE_SCALE,
        subgroups=("gender", "grade", "race_ethnicity", "SES"),
    ),
    "generic": Layout("generic", _PLAIN),
}


def scale_text(scale: ScoreScale) -> str:
    """``1-6`` or ``1-5 in steps of 0.5``: how a user writes the scale back in data.yaml."""
    text = f"{scale.low:g}-{scale.high:g}"
    return text if scale.step == 1 else f"{text} in steps of {scale.step:g}"


def detect_format(header: Sequence[str]) -> str | None:
    """The known format whose columns the header has, else None."""
    names = set(header)
    if {"essay_set", "essay"} <= names:
        return "asap"
    if "text_id_kaggle" in names:
        return "ellipse"
    if {"essay_id", "full_text"} <= names:
        return "aes2"
    return None


def _layout(
    header: Sequence[str], data_format: str, columns: Mapping[str, str] | None, path: Path
) -> Layout:
    if data_format not in FORMATS:
        raise AesError(f"unknown format '{data_format}'{did_you_mean(data_format, FORMATS)}")
    name = detect_format(header) if data_format == "auto" else data_format
    if name is None:
        if not columns:
            raise AesError(
                f"cannot tell the format from the header (columns: {', '.join(header)}); "
                "use format generic and name the id, text and score columns",
                path=path,
            )
        name = "generic"
    layout = LAYOUTS[name]
    if columns:
        unknown = set(columns) - set(_PLAIN)
        if unknown:
            bad = sorted(unknown)[0]
            raise AesError(f"unknown schema column '{bad}'{did_you_mean(bad, _PLAIN)}")
        return Layout(
            layout.name,
            {**layout.columns, **columns},
            layout.required_prompt or "prompt" in columns,
            layout.extras,
            layout.scales,
            layout.subgroups,
        )
    return layout


def decode_text(raw: bytes, path: Path, *, allow_cp1252: bool = False) -> str:
    """UTF-8; the original ASAP download is Windows-1252, so ASAP files may fall back to it."""
    bom = len(codecs.BOM_UTF8) if raw.startswith(codecs.BOM_UTF8) else 0
    try:
        return raw[bom:].decode("utf-8")
    except UnicodeDecodeError as exc:
        if allow_cp1252:
            try:
                return raw[bom:].decode("cp1252")
            except UnicodeDecodeError:
                pass
        offset = bom + exc.start
        line = raw.count(b"\n", 0, offset) + 1
        raise AesError(
            f"invalid UTF-8 at byte offset {offset} (line {line}); save the file as UTF-8",
            path=path,
        ) from None


def _unquote(field: str) -> str:
    """ASAP's TSV quotes essays and doubles inner quotes; essay 10534 never closes its quote."""
    if field.startswith('"'):
        end = -1 if len(field) > 1 and field.endswith('"') else None
        return field[1:end].replace('""', '"')
    return field


def _parse_tsv(text: str, path: Path) -> pl.DataFrame:
    """One record per line, split on tabs (a CSV parser's quoting merges ASAP rows)."""
    lines = text.split("\n")
    header = [_unquote(h.strip()) for h in lines[0].rstrip("\r").split("\t")]
    rows: list[list[str]] = []
    numbers: list[int] = []
    for number, line in enumerate(lines[1:], start=1):
        record = line.removesuffix("\r")
        if not record.strip():
            continue
        fields = record.split("\t")
        if len(fields) != len(header):
            raise AesError(
                f"has {len(fields)} tab-separated fields, the header has {len(header)}",
                path=path,
                row=number,
            )
        rows.append([_unquote(f) for f in fields])
        numbers.append(number)
    data = {name: [r[i] for r in rows] for i, name in enumerate(header)}
    frame = pl.DataFrame(data, schema=dict.fromkeys(header, pl.String))
    return frame.with_columns(pl.Series("_row", numbers, dtype=pl.Int64))


def parse_csv(data: bytes, path: Path) -> pl.DataFrame:
    """Every column as strings, plus ``_row``: the 1-based data row that errors name."""
    try:
        frame = pl.read_csv(data, infer_schema=False, raise_if_empty=False)
    except pl.exceptions.PolarsError as exc:
        first = str(exc).strip().splitlines()[0]
        raise AesError(f"cannot parse as CSV ({first})", path=path) from None
    return frame.with_row_index("_row", offset=1).with_columns(pl.col("_row").cast(pl.Int64))


def _header_line(raw: bytes, path: Path) -> tuple[list[str], str]:
    first = raw.split(b"\n", 1)[0]
    line = decode_text(first, path).rstrip("\r")
    sep = "\t" if "\t" in line and "," not in line else ","
    return [_unquote(h.strip()) for h in line.split(sep)], sep


def read_table(path: Path, data_format: str = "auto") -> pl.DataFrame:
    """All columns of an essays CSV or TSV as strings plus ``_row`` (1-based data row)."""
    raw = read_bytes(path)
    header, sep = _header_line(raw, path)
    is_asap = data_format == "asap" or (data_format == "auto" and detect_format(header) == "asap")
    text = decode_text(raw, path, allow_cp1252=is_asap)
    frame = _parse_tsv(text, path) if sep == "\t" else parse_csv(text.encode("utf-8"), path)
    if frame.height == 0:
        raise AesError("file has a header but no essays", path=path)
    return frame


def detect_role(
    path: str | Path, *, data_format: str = "auto", columns: Mapping[str, str] | None = None
) -> Role:
    """``train`` when the file has the score column of its format, else ``test``."""
    file = Path(path)
    header, _ = _header_line(read_bytes(file), file)
    layout = _layout(header, data_format, columns, file)
    return "train" if layout.columns["score"] in header else "test"


@dataclass(frozen=True)
class FileColumns:
    """What the header of an essays file says: its format (``detected`` unless declared) and
    which of the format's documented subgroup columns it has."""

    format: str
    detected: bool
    known_subgroups: tuple[str, ...]


def inspect_header(
    path: str | Path, *, data_format: str = "auto", columns: Mapping[str, str] | None = None
) -> FileColumns:
    """The format and columns of an essays file, from its header alone (cheap on any size)."""
    file = Path(path)
    header, _ = _header_line(read_bytes(file), file)
    layout = _layout(header, data_format, columns, file)
    known = tuple(c for c in layout.subgroups if c in header)
    return FileColumns(layout.name, data_format == "auto", known)


_MAX_GROUPS = 20  # more distinct values than this is a measurement or a name, not a subgroup


def subgroup_candidates(
    path: str | Path, *, data_format: str = "auto", columns: Mapping[str, str] | None = None
) -> list[str]:
    """Columns that look like subgroups, in file order: the format's documented ones, and any
    other text column (not the id, text, score, prompt or source) with 2 to 20 distinct values,
    at most one per two essays. Numeric columns (trait scores, counts) are left out."""
    file = Path(path)
    table = read_table(file, data_format)
    header = [c for c in table.columns if c != "_row"]
    layout = _layout(header, data_format, columns, file)
    used = {*layout.columns.values(), *(layout.extras or {})}
    found = []
    for name in header:
        if name in layout.subgroups:
            found.append(name)
            continue
        if name in used:
            continue
        values = table.select(clean_column(name)).to_series().drop_nulls()
        distinct = values.n_unique()
        numeric = values.cast(pl.Float64, strict=False).null_count() == 0
        if 2 <= distinct <= min(_MAX_GROUPS, table.height // 2) and not numeric:
            found.append(name)
    return found


def first_row(frame: pl.DataFrame, mask: pl.Expr) -> dict[str, object] | None:
    """The first row where ``mask`` holds, by column name; None when there is none."""
    bad = frame.filter(mask).head(1)
    return bad.row(0, named=True) if bad.height else None


def clean_column(column: str) -> pl.Expr:
    """Stripped string, null where empty."""
    value = pl.col(column).str.strip_chars()
    return pl.when(value == "").then(None).otherwise(value)


def _numeric(frame: pl.DataFrame, column: str, label: str, path: Path) -> pl.Series:
    """Float64 of a string column (nulls stay null); a non-numeric cell is an error."""
    value = clean_column(column)
    number = value.cast(pl.Float64, strict=False)
    bad = first_row(frame, value.is_not_null() & (number.is_null() | number.is_infinite()))
    if bad is not None:
        raise AesError(
            f"{label} '{str(bad[column]).strip()}' is not a number",
            path=path,
            row=int(str(bad["_row"])),
        )
    return frame.select(number.alias(column)).to_series()


def _closest(name: str, header: Sequence[str]) -> str:
    """A did-you-mean suffix (case aside first: 'ses' for 'SES'), or nothing: the message lists
    the columns anyway."""
    same = [column for column in header if column.lower() == name.lower()]
    if same:
        return f" (did you mean '{same[0]}'?)"
    hint = did_you_mean(name, header)
    return hint if hint.startswith(" (did you mean") else ""


def check_columns(header: Sequence[str], wanted: Sequence[str], path: Path, why: str) -> None:
    for name in wanted:
        if name not in header:
            raise AesError(
                f"missing required column '{name}' ({why}){_closest(name, header)}; "
                f"columns: {', '.join(header)}",
                path=path,
            )


def _check_levels(frame: pl.DataFrame, scales: ScoreScales, path: Path) -> None:
    """Every training score must be a level of its prompt's scale (7 on 1-6, 3.25 on halves)."""
    prompts = frame["prompt"]
    for prompt in prompts.unique(maintain_order=True).to_list():
        rows = frame.filter(
            pl.col("prompt").is_null() if prompt is None else pl.col("prompt") == prompt
        )
        try:
            scale = scales.for_prompt(prompt)
        except AesError as exc:
            raise AesError(exc.message, path=path, row=int(rows["_row"][0])) from None
        ok = scale.is_level(rows["score"].to_numpy())
        if not ok.all():
            first = int(np.flatnonzero(~ok)[0])
            whose = "the" if prompt is None or not scales.is_per_prompt else f"prompt '{prompt}''s"
            raise AesError(
                f"score {rows['score'][first]:g} is not a level of {whose} scale "
                f"{scale_text(scale)} (declare the scale in data.yaml `scale:` or --scale)",
                path=path,
                row=int(rows["_row"][first]),
            )


def _inferred_scales(frame: pl.DataFrame, path: Path) -> ScoreScales:
    """One scale spanning the observed scores; a single score leaves nothing to span or learn."""
    levels = frame["score"].unique().to_list()
    if len(levels) < 2:
        raise AesError(
            f"all {frame.height} training essays score {levels[0]:g}: scores must vary to learn "
            "anything (every QWK would be 0); add essays with other scores",
            path=path,
        )
    return ScoreScales(default=ScoreScale.infer(frame["score"].to_numpy()))


def _rating_sources(
    layout: Layout, second_score_column: str | None, header: Sequence[str], path: Path
) -> dict[str, str]:
    """File column -> ``rater1``/``rater2``: the format's own rater columns, or the declared
    ``second_score_column`` (then ``rater1`` is the score itself)."""
    raters = {old: new for old, new in (layout.extras or {}).items() if old in header}
    if second_score_column is None:
        return raters
    if second_score_column not in header:
        raise AesError(
            f"second score column '{second_score_column}' is not in the file"
            f"{_closest(second_score_column, header)}; columns: {', '.join(header)}",
            path=path,
            key="second_score_column",
        )
    if second_score_column in layout.columns.values():
        raise AesError(
            f"second score column '{second_score_column}' is the file's id, text, score, "
            "prompt or source column; name the column with the second rater's scores",
            path=path,
            key="second_score_column",
        )
    kept = {old: new for old, new in raters.items() if new != SECOND_RATING}
    return {**kept, second_score_column: SECOND_RATING}


def _ratings(
    table: pl.DataFrame, frame: pl.DataFrame, sources: Mapping[str, str], layout: Layout, path: Path
) -> list[pl.Series]:
    """The rating columns on the score's scale: ASAP's summed prompts doubled; ``rater1`` is
    the score where only a second score column is declared."""
    out = []
    for old, new in sources.items():
        value = _numeric(table, old, old, path)
        if layout.name == "asap":
            summed = frame["prompt"].is_in(list(ASAP_SUMMED_PROMPTS))
            value = pl.select(pl.when(summed).then(value * 2).otherwise(value)).to_series()
        out.append(value.alias(new))
    if SECOND_RATING in sources.values() and "rater1" not in sources.values():
        out.insert(0, frame["score"].alias("rater1"))
    return out


def _check_ratings(frame: pl.DataFrame, scales: ScoreScales, path: Path) -> None:
    """Every human rating must be a level of its prompt's scale (``data check`` only)."""
    groups = scales.groups(np.asarray(frame["prompt"].to_list(), dtype=object))
    for column in ("rater1", SECOND_RATING):
        if column not in frame.columns:
            continue
        for scale, rows in groups.items():
            values = frame[column].cast(pl.Float64).fill_null(np.nan).to_numpy()[rows]
            bad = np.flatnonzero(np.isfinite(values) & ~scale.is_level(values))
            if bad.size:
                first = int(rows[bad[0]])
                raise AesError(
                    f"{column} {values[bad[0]]:g} (essay_id '{frame['essay_id'][first]}') is "
                    f"not a level of the scale {scale_text(scale)} ({bad.size} such); fix the "
                    "rating or declare the scale",
                    path=path,
                    row=int(frame["_row"][first]),
                )


def read_essays(
    path: str | Path,
    *,
    role: Role = "train",
    data_format: str = "auto",
    scales: ScoreScales | None = None,
    subgroups: Sequence[str] = (),
    columns: Mapping[str, str] | None = None,
    second_score_column: str | None = None,
    check_ratings: bool = False,
) -> Essays:
    """Read and validate one essays file (CSV, or TSV with one essay per line).

    ``columns`` maps schema columns (essay_id, full_text, score, prompt, source) to file columns
    and overrides the format's names. Without ``scales`` the format's official scales apply; a
    generic training file infers one scale from its scores. Human ratings (ASAP's two raters, or
    ``second_score_column`` beside the score) become ``rater1``/``rater2`` on the score's scale
    (``Essays.human_ratings``); ``check_ratings`` makes a rating off its scale an error. A test
    file needs no score, second rating or subgroup column (a Kaggle test file has only id, text
    and prompt); those it has are read.
    """
    file = Path(path)
    table = read_table(file, data_format)
    header = [c for c in table.columns if c != "_row"]
    layout = _layout(header, data_format, columns, file)
    cols = layout.columns
    check_columns(header, [cols["essay_id"], cols["full_text"]], file, f"{layout.name} format")
    if role == "train":
        check_columns(header, [cols["score"]], file, f"training file, {layout.name} format")
    if layout.required_prompt:
        check_columns(header, [cols["prompt"]], file, f"{layout.name} format")
    if role != "train":  # subgroups and second ratings describe training rows: kept where given
        subgroups = [name for name in subgroups if name in header]
        if second_score_column not in header:
            second_score_column = None
    twice = sorted({name for name in subgroups if list(subgroups).count(name) > 1})
    if twice:
        raise AesError(f"subgroup column '{twice[0]}' is named twice", path=file)
    for name in subgroups:
        if name not in header:
            raise AesError(
                f"subgroup column '{name}' is not in the file{_closest(name, header)}; "
                f"columns: {', '.join(header)}",
                path=file,
            )
    raters = _rating_sources(layout, second_score_column, header, file)
    clash = set(subgroups) & {*CORE_COLUMNS, *cols.values(), *raters, *raters.values()}
    if clash:
        raise AesError(
            f"subgroup '{sorted(clash)[0]}' is an id, text, score, prompt or rater column, "
            "not a subgroup",
            path=file,
        )

    frame = table.select(
        "_row",
        clean_column(cols["essay_id"]).alias("essay_id"),
        pl.col(cols["full_text"]).alias("full_text"),
        *[
            (clean_column(cols[c]) if cols[c] in header else pl.lit(None, pl.String)).alias(c)
            for c in _OPTIONAL
        ],
        *[clean_column(s).alias(s) for s in subgroups],
    )
    check_ids_and_texts(frame, file)
    if role == "train":
        score = _numeric(table, cols["score"], "score", file)
        absent = (score.is_null() | score.is_nan()).arg_true()
        if absent.len():
            first = int(absent[0])
            cell = "" if score[first] is None else f" ('{table[cols['score']][first].strip()}')"
            raise AesError(f"score is missing{cell}", path=file, row=int(frame["_row"][first]))
    else:
        score = pl.Series("score", [None] * frame.height, dtype=pl.Float64)
    frame = frame.with_columns(score.alias("score"))
    extras = {s.name: s for s in _ratings(table, frame, raters, layout, file)}
    frame = frame.with_columns(*extras.values())

    if scales is None:
        scales = layout.scales
    if scales is None:
        scales = _inferred_scales(frame, file) if role == "train" else ScoreScales()
    if role == "train":
        _check_levels(frame, scales, file)
        if check_ratings:
            _check_ratings(frame, scales, file)
    ordered = frame.select(
        *[pl.col(c).cast(t) for c, t in CORE_SCHEMA.items()], *subgroups, *extras
    )
    return Essays(ordered, scales, file, tuple(subgroups))


def check_unique_ids(frame: pl.DataFrame, path: Path, id_name: str = "essay_id") -> None:
    """A repeated ``essay_id`` is an error naming both rows (``frame`` has ``_row``);
    ``id_name``: the id column as the user's file calls it."""
    dup = first_row(frame, pl.col("essay_id").is_duplicated())
    if dup is not None:
        rows = frame.filter(pl.col("essay_id") == dup["essay_id"])["_row"].to_list()
        raise AesError(
            f"duplicate {id_name} '{dup['essay_id']}' (rows {rows[0]} and {rows[1]})",
            path=path,
            row=rows[1],
        )


def check_ids_and_texts(
    frame: pl.DataFrame, path: Path, id_name: str = "essay_id", text_name: str = "essay text"
) -> None:
    """Ids present and unique, texts not empty (``frame`` has ``essay_id``, ``full_text`` and
    ``_row``); errors call the columns ``id_name`` and ``text_name``, as the user's file does."""
    bad = first_row(frame, pl.col("essay_id").is_null())
    if bad is not None:
        raise AesError(f"{id_name} is empty", path=path, row=int(str(bad["_row"])))
    check_unique_ids(frame, path, id_name)
    empty = pl.col("full_text").is_null() | (pl.col("full_text").str.strip_chars() == "")
    bad = first_row(frame, empty)
    if bad is not None:
        raise AesError(
            f"{text_name} is empty ({id_name} '{bad['essay_id']}')",
            path=path,
            row=int(str(bad["_row"])),
        )


def _config_scales(config: DataConfig) -> ScoreScales | None:
    def parse(text: str, key: str) -> ScoreScale:
        try:
            return ScoreScale.parse(text)
        except AesError as exc:
            raise AesError(exc.message, key=key) from None

    if config.scale is None and not config.per_prompt_scales:
        return None
    return ScoreScales(
        default=None if config.scale is None else parse(config.scale, "scale"),
        per_prompt={
            str(p): parse(s, f"per_prompt_scales.{p}")
            for p, s in (config.per_prompt_scales or {}).items()
        },
    )


def config_columns(config: DataConfig) -> dict[str, str]:
    """The ``*_column`` keys of a DataConfig as a schema-column -> file-column map."""
    named = {
        "essay_id": config.id_column,
        "full_text": config.text_column,
        "score": config.score_column,
        "prompt": config.prompt_column,
        "source": config.source_column,
    }
    return {k: v for k, v in named.items() if v}


def load_dataset(config: DataConfig, root: Path) -> tuple[Essays, Essays | None]:
    """Training essays and the optional test essays (paths relative to ``root``).

    Test essays share the training scales; an id in both files is an error, since scoring an
    essay the models were fitted on would inflate every number downstream.
    """
    scales = _config_scales(config)
    columns = config_columns(config) or None

    def read(path: Path, role: Role, scales: ScoreScales | None) -> Essays:
        return read_essays(
            Path(root) / path,
            role=role,
            data_format=config.format,
            scales=scales,
            subgroups=config.subgroups,
            columns=columns,
            second_score_column=config.second_score_column,
        )

    train = read(config.train, "train", scales)
    if config.test is None:
        return train, None
    test = read(config.test, "test", train.scales)
    shared = test.frame.with_row_index("_row", offset=1).filter(
        pl.col("essay_id").is_in(train.frame["essay_id"].implode())
    )
    if shared.height:
        raise AesError(
            f"{shared.height} test essay ids also appear in the training file {train.path} "
            f"(first: '{shared['essay_id'][0]}'); test essays must be unseen",
            path=test.path,
            row=int(shared["_row"][0]),
        )
    return train, test


def load_workspace_dataset(ws: Workspace) -> tuple[Essays, Essays | None]:
    """The dataset named by the workspace's ``configs/data.yaml``."""
    if not ws.data_config_path.is_file():
        raise AesError(
            "no data config; run `aes-ensemble folds --train FILE` or write configs/data.yaml",
            path=ws.data_config_path,
        )
    return load_dataset(load_config(DataConfig, ws.data_config_path), ws.root)
