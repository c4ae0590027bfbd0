"""Fold assignment shared by every learner: grouped by prompt, stratified by score, hashed.

Every learner's out-of-fold predictions must come from the same assignment, or the stack learns
from leaked rows; so folds are saved once per workspace, hashed, and refused when edited.
"""

from __future__ import annotations

import hashlib
import json
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Literal

import numpy as np
import polars as pl
from pydantic import BaseModel, ConfigDict, Field

from aes_ensemble.config import validate
from aes_ensemble.data import (
    Essays,
    check_columns,
    check_unique_ids,
    decode_text,
    parse_csv,
)
from aes_ensemble.errors import AesError
from aes_ensemble.io import atomic_path, read_bytes
from aes_ensemble.workspace import Workspace

Method = Literal["auto", "grouped", "stratified"]
METHODS = ("auto", "grouped", "stratified")
REFOLD = "restore it, or run `aes-ensemble folds --force` (every learner then refits)"
_SHOWN_LEVELS = 6  # rare levels named in one note; wide scales (ASAP 0-60) say how many more


def folds_hash(frame: pl.DataFrame) -> str:
    """sha256 (16 hex) of the sorted ``essay_id,fold`` lines: the identity of an assignment."""
    lines = frame.select("essay_id", "fold").sort("essay_id")
    text = "\n".join(f"{i},{f}" for i, f in lines.iter_rows())
    return hashlib.sha256(text.encode()).hexdigest()[:16]


@dataclass(frozen=True)
class Folds:
    """``frame``: ``essay_id`` (String), ``fold`` (Int32, 0..n_folds-1), and ``prompt`` (String)
    where the essays have prompts or prompts were inferred. ``notes``: what a user should know
    about the split (rare score levels), for the CLI to print and a notebook to read."""

    frame: pl.DataFrame
    n_folds: int
    method: str
    hash: str
    seed: int | None = None
    notes: tuple[str, ...] = field(default=(), compare=False)

    def fold_array(self, essays: Essays) -> np.ndarray:
        """The fold of each essay, aligned to ``essays``; an essay without a fold is an error."""
        lookup = dict(self.frame.select("essay_id", "fold").iter_rows())
        missing = [i for i in essays.ids if i not in lookup]
        if missing:
            raise AesError(
                f"{len(missing)} essays have no fold (first: '{missing[0]}'); "
                "run `aes-ensemble folds` again for this data"
            )
        return np.asarray([lookup[i] for i in essays.ids], dtype=np.int64)


def _make(
    frame: pl.DataFrame,
    n_folds: int,
    method: str,
    seed: int | None,
    notes: tuple[str, ...] = (),
) -> Folds:
    frame = frame.with_columns(pl.col("fold").cast(pl.Int32))
    return Folds(frame, n_folds, method, folds_hash(frame), seed, notes)


def _score_units(essays: Essays) -> list[tuple[str, np.ndarray]]:
    """The row sets a headline QWK is computed on: each prompt where prompts have their own
    scales (the headline is the mean of per-prompt QWKs), else all essays (one QWK)."""
    if not essays.scales.is_per_prompt:
        return [("", np.arange(len(essays)))]
    groups = (
        essays.frame.with_row_index("_i").group_by("prompt", maintain_order=True).agg(pl.col("_i"))
    )
    return [
        (
            "essays without a prompt: " if prompt is None else f"prompt '{prompt}': ",
            np.asarray(rows, dtype=np.int64),
        )
        for prompt, rows in groups.iter_rows()
    ]


def _essays(n: int) -> str:
    return f"{n} essay" if n == 1 else f"{n} essays"


def check_score_levels(essays: Essays, n_folds: int) -> tuple[str, ...]:
    """Refuse training scores that never vary; note levels rarer than the folds.

    One level (per prompt where prompts have their own scales, since the headline QWK is then
    the mean of per-prompt QWKs) leaves nothing to learn and every QWK 0. A level with fewer
    essays than folds is fine to fit, but some validation folds never see it: say so."""
    notes = []
    for where, rows in _score_units(essays):
        scale = essays.scales.for_prompt(essays.prompts[rows[0]])
        counts = np.bincount(scale.to_index(essays.scores[rows]), minlength=scale.n_levels)
        present = np.flatnonzero(counts)
        if len(present) < 2:
            level = scale.label(scale.levels[present[0]])
            raise AesError(
                f"{where}all {len(rows)} training essays score {level}: scores must vary to "
                "learn anything (every QWK would be 0); add essays with other scores",
                path=essays.path,
            )
        rare = [int(i) for i in present if counts[i] < n_folds]
        if rare:
            named = ", ".join(
                f"{scale.label(scale.levels[i])} ({_essays(int(counts[i]))})"
                for i in rare[:_SHOWN_LEVELS]
            )
            more = f" and {len(rare) - _SHOWN_LEVELS} more" if len(rare) > _SHOWN_LEVELS else ""
            notes.append(
                f"{where}score level{'s' * (len(rare) > 1)} {named}{more}: fewer essays than "
                f"{n_folds} folds, so some validation folds never see "
                f"{'them' if len(rare) > 1 else 'it'}"
            )
    return tuple(notes)


def cluster_prompts(essays: Essays, k: int, *, seed: int = 42) -> np.ndarray:
    """Cluster essays into ``k`` pseudo-prompts (TF-IDF, SVD, k-means), so data without a prompt
    column (AES 2.0 train: 7 source prompts) can still be grouped. Labels ``inferred_0`` ... are
    ordered by cluster size, largest first."""
    from threadpoolctl import threadpool_limits

    if not 2 <= k <= len(essays):
        raise AesError(f"--infer-prompts {k}: need between 2 and {len(essays)} clusters")
    # One BLAS thread: the same labels on every machine, and no oversubscription (10x slower
    # SVD measured on a busy 2-core box).
    with threadpool_limits(limits=1):
        return _cluster(essays.texts, k, seed)


def _cluster(texts: list[str], k: int, seed: int) -> np.ndarray:
    from sklearn.cluster import KMeans
    from sklearn.decomposition import TruncatedSVD
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.preprocessing import normalize

    tfidf = TfidfVectorizer(
        sublinear_tf=True, stop_words="english", min_df=2, max_df=0.5, max_features=30000
    ).fit_transform(texts)
    n_components = max(1, min(100, tfidf.shape[1] - 1, len(texts) - 1))
    dense = normalize(TruncatedSVD(n_components, random_state=seed).fit_transform(tfidf))
    labels = KMeans(k, n_init=10, random_state=seed).fit_predict(dense)
    order = np.argsort(-np.bincount(labels, minlength=k), kind="stable")
    rank = np.empty(k, dtype=np.int64)
    rank[order] = np.arange(k)
    return np.asarray([f"inferred_{r}" for r in rank[labels]], dtype=object)


def _level_labels(essays: Essays, prompts: np.ndarray) -> np.ndarray:
    """Stratification label: the score level, crossed with the prompt where scales differ."""
    scales = essays.scales
    levels = np.empty(len(essays), dtype=np.int64)
    for scale, rows in scales.groups(essays.prompts).items():
        levels[rows] = scale.to_index(essays.scores[rows])
    if scales.is_per_prompt:
        return np.asarray(
            [f"{p}|{lvl}" for p, lvl in zip(prompts, levels, strict=True)], dtype=object
        )
    return levels.astype(str).astype(object)


def assign_folds(
    essays: Essays,
    n_folds: int = 5,
    *,
    seed: int = 42,
    method: Method = "auto",
    infer_prompts: int | None = None,
) -> Folds:
    """Split training essays into ``n_folds`` folds.

    ``grouped`` keeps each prompt in one fold (score-stratified across prompts), so validation
    measures scoring on unseen prompts; ``stratified`` balances score levels (per prompt where
    scales differ). ``auto`` groups when there are at least ``n_folds`` prompts sharing one
    scale; per-prompt scales (ASAP) stratify, as the published ASAP protocol does. The seed
    shuffles essays within score levels (stratified) or the order prompts are placed in
    (grouped), so several seeds give several splits to average over. Scores that never vary
    are an error; levels rarer than the folds are in ``notes``.
    """
    from sklearn.model_selection import StratifiedKFold

    if n_folds < 2:
        raise AesError(f"--n-folds {n_folds}: need at least 2 folds")
    if method not in METHODS:
        raise AesError(f"unknown fold method '{method}' (valid: {', '.join(METHODS)})")
    if not 0 <= seed < 2**32:
        raise AesError(f"--seed {seed}: must be between 0 and {2**32 - 1}")
    if not essays.has_scores:
        raise AesError("folds need training essays with scores", path=essays.path)
    notes = check_score_levels(essays, n_folds)
    if len(essays) < n_folds:
        raise AesError(f"{len(essays)} essays cannot fill {n_folds} folds", path=essays.path)
    prompts = essays.prompts
    if infer_prompts is not None:
        if essays.has_prompts:
            raise AesError(
                "the essays already have a prompt column; drop --infer-prompts", path=essays.path
            )
        prompts = cluster_prompts(essays, infer_prompts, seed=seed)
        method = "grouped"
    n_prompts = len({p for p in prompts if p is not None})
    if method == "auto":
        grouped = n_prompts >= n_folds and not essays.scales.is_per_prompt
        method = "grouped" if grouped else "stratified"
    labels = _level_labels(essays, prompts)
    fold = np.empty(len(essays), dtype=np.int64)
    with warnings.catch_warnings():
        # Rare levels (ASAP prompt 1 has one essay scored 3) cannot reach every fold; that is fine.
        warnings.filterwarnings("ignore", message="The least populated class", category=UserWarning)
        if method == "grouped":
            if n_prompts < n_folds or any(p is None for p in prompts):
                raise AesError(
                    f"grouped folds need a prompt for every essay and at least {n_folds} prompts "
                    f"(found {n_prompts}); use --method stratified or --infer-prompts K",
                    path=essays.path,
                )
            fold = grouped_split(labels, prompts.astype(str), n_folds, seed)
        else:
            common = max(np.unique(labels, return_counts=True)[1])
            if common < n_folds:
                raise AesError(
                    f"stratified folds need a score level with at least {n_folds} essays (the "
                    f"most common has {common}); use fewer folds or add essays",
                    path=essays.path,
                )
            splits = StratifiedKFold(n_folds, shuffle=True, random_state=seed).split(
                np.zeros(len(essays)), labels
            )
            for k, (_, test_rows) in enumerate(splits):
                fold[test_rows] = k
    frame = pl.DataFrame(
        {
            "essay_id": essays.ids,
            "fold": fold,
            "prompt": pl.Series(prompts.tolist(), dtype=pl.String),
        }
    )
    label = "grouped-inferred" if infer_prompts is not None else method
    return _make(_drop_null_prompt(frame), n_folds, label, seed, notes)


def _imbalance(per_fold: np.ndarray, total: np.ndarray) -> np.ndarray:
    """Mean over labels of the spread across folds of each label's share: 0 when every fold
    holds 1/k of every level (and so of the essays). ``per_fold`` is ``(..., k, labels)``."""
    return np.mean(np.std(per_fold / total, axis=-2), axis=-1)


def grouped_split(labels: np.ndarray, groups: np.ndarray, n_folds: int, seed: int) -> np.ndarray:
    """Fold of each row, with every group in one fold and label shares balanced across folds.

    StratifiedGroupKFold's greedy placement (largest score spread first) ignores its seed
    whenever groups differ, so every seed gave the same split. Here groups are placed greedily
    in a seeded order (each where it unbalances the label shares least, ties to the smaller
    fold), then moved one at a time while a move improves the balance: different seeds give
    different splits of similar quality, and the same seed the same split."""
    group_names, group = np.unique(groups, return_inverse=True)
    _, label = np.unique(labels, return_inverse=True)
    counts = np.zeros((len(group_names), label.max() + 1))
    np.add.at(counts, (group, label), 1)
    total = counts.sum(axis=0)
    order = np.random.default_rng(seed).permutation(len(group_names))
    eye = np.eye(n_folds)[:, :, None]  # candidate fold f gets the group: row f of each option
    per_fold = np.zeros((n_folds, counts.shape[1]))
    where = np.empty(len(group_names), dtype=np.int64)
    for placed, g in enumerate(order):
        score = _imbalance(per_fold + eye * counts[g], total)
        empty = per_fold.sum(axis=1) == 0
        if empty.sum() >= len(order) - placed:  # the groups left must fill the empty folds
            score = np.where(empty, score, np.inf)
        best = np.flatnonzero(np.isclose(score, score.min()))
        where[g] = best[np.argmin(per_fold[best].sum(axis=1))]
        per_fold[where[g]] += counts[g]
    current = float(_imbalance(per_fold, total))
    for _ in range(100):  # local search; converges in a few sweeps
        moved = False
        for g in order:
            source = where[g]
            if np.sum(where == source) == 1:
                continue  # a fold must keep at least one group
            base = per_fold.copy()
            base[source] -= counts[g]
            score = _imbalance(base + eye * counts[g], total)
            target = int(np.argmin(score))
            if score[target] < current - 1e-12:
                per_fold = base
                per_fold[target] += counts[g]
                where[g], current, moved = target, float(score[target]), True
        if not moved:
            break
    return where[group]


def _drop_null_prompt(frame: pl.DataFrame) -> pl.DataFrame:
    return frame.drop("prompt") if frame["prompt"].null_count() == frame.height else frame


def _read_csv(path: Path) -> pl.DataFrame:
    """``essay_id`` (stripped, non-empty, unique) and ``fold`` (a non-negative integer) of a
    folds CSV, with ``_row``; any other column is kept as text."""
    frame = parse_csv(decode_text(read_bytes(path), path).encode(), path)
    check_columns(frame.drop("_row").columns, ("essay_id", "fold"), path, "a folds file")
    if frame.height == 0:
        raise AesError("folds file has a header but no rows", path=path)
    frame = frame.with_columns(pl.col("essay_id").str.strip_chars())
    empty = frame.filter(pl.col("essay_id").is_null() | (pl.col("essay_id") == "")).head(1)
    if empty.height:
        raise AesError("essay_id is empty", path=path, row=empty["_row"][0])
    fold = pl.col("fold").str.strip_chars().cast(pl.Int64, strict=False)
    bad = frame.filter(fold.is_null() | (fold < 0)).head(1)
    if bad.height:
        raise AesError(
            f"fold '{bad['fold'][0]}' is not a non-negative integer", path=path, row=bad["_row"][0]
        )
    frame = frame.with_columns(fold.alias("fold"))
    check_unique_ids(frame, path)
    return frame


@contextmanager
def _damaged(fix: str) -> Iterator[None]:
    """A problem in a file the toolkit wrote: the same error as for a user's file, plus how to
    get a good one back."""
    try:
        yield
    except AesError as exc:
        raise AesError(f"{exc.message}; {fix}", path=exc.path, row=exc.row, key=exc.key) from None


def read_folds_file(path: str | Path, essays: Essays) -> Folds:
    """A fold assignment from a CSV ``essay_id,fold`` (e.g. the Taghipour & Ng ASAP split)."""
    file = Path(path)
    if not essays.has_scores:
        raise AesError("folds need training essays with scores", path=essays.path)
    frame = _read_csv(file)
    known = pl.Series(essays.ids, dtype=pl.String).implode()
    extra = frame.filter(~pl.col("essay_id").is_in(known))
    if extra.height:
        raise AesError(
            f"essay_id '{extra['essay_id'][0]}' is not in the training essays "
            f"({extra.height} such ids)",
            path=file,
            row=extra["_row"][0],
        )
    missing = set(essays.ids) - set(frame["essay_id"].to_list())
    if missing:
        first = next(i for i in essays.ids if i in missing)
        raise AesError(f"{len(missing)} training essays have no fold (first: '{first}')", path=file)
    n_folds = int(frame["fold"].max()) + 1  # type: ignore[arg-type]
    if n_folds < 2:
        raise AesError("every essay is in fold 0: need at least 2 folds", path=file)
    empty = sorted(set(range(n_folds)) - set(frame["fold"].to_list()))
    if empty:
        raise AesError(f"fold {empty[0]} has no essays (folds run 0..{n_folds - 1})", path=file)
    notes = check_score_levels(essays, n_folds)
    prompts = essays.frame.select("essay_id", "prompt")
    ordered = frame.select("essay_id", "fold").join(prompts, on="essay_id", how="left")
    return _make(_drop_null_prompt(ordered), n_folds, "file", None, notes)


def _existing_hash(ws: Workspace) -> str | None:
    if not ws.folds_path.exists():
        return None
    with _damaged(REFOLD):
        return folds_hash(_read_csv(ws.folds_path))


def save_folds(ws: Workspace, folds: Folds, *, force: bool = False) -> Path:
    """Write ``folds.csv`` and ``folds.json`` once; a different existing assignment is kept
    unless ``force``, because every OOF file in the workspace was fitted on it (``force``
    also replaces a damaged one)."""
    existing = None if force else _existing_hash(ws)
    if existing is not None and existing != folds.hash:
        raise AesError(
            f"the workspace already has a different fold assignment (hash {existing}, new "
            f"{folds.hash}); existing OOF files would no longer match; pass --force to replace it",
            path=ws.folds_path,
        )
    meta = {
        "hash": folds.hash,
        "method": folds.method,
        "seed": folds.seed,
        "n_folds": folds.n_folds,
        "n_essays": folds.frame.height,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    text = json.dumps(meta, indent=2, sort_keys=True) + "\n"
    try:
        # Both files are complete before either replaces its old copy, so a failed write (a
        # full disk) leaves the previous pair, which still agree with each other.
        with atomic_path(ws.folds_path) as csv_tmp, atomic_path(ws.folds_meta_path) as meta_tmp:
            folds.frame.write_csv(csv_tmp)
            meta_tmp.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise AesError(
            f"cannot write ({exc.strerror}); the previous folds are kept", path=ws.root
        ) from None
    return ws.folds_path


class FoldsMeta(BaseModel):
    """``folds.json`` as :func:`save_folds` writes it; read back with the checks a user's file
    gets. Keys this version does not use are ignored."""

    model_config = ConfigDict(extra="ignore", frozen=True, strict=True)

    hash: str = Field(pattern=r"^[0-9a-f]{16}$")
    method: str = Field(min_length=1)
    n_folds: int = Field(ge=2)
    seed: int | None
    n_essays: int | None = Field(default=None, ge=1)


def _read_meta(path: Path) -> FoldsMeta:
    text = decode_text(read_bytes(path), path)
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise AesError(f"invalid JSON ({exc.msg}, line {exc.lineno})", path=path) from None
    if not isinstance(data, dict):
        raise AesError("must be a JSON object of hash, method, n_folds, seed", path=path)
    return validate(FoldsMeta, data, path=path)


def load_folds(ws: Workspace) -> Folds:
    """The workspace's saved folds, validated as a user's file would be; a ``folds.csv``
    changed after saving is refused."""
    if not ws.folds_path.exists() or not ws.folds_meta_path.exists():
        raise AesError("no folds yet; run `aes-ensemble folds` first", path=ws.folds_path)
    with _damaged(REFOLD):
        meta = _read_meta(ws.folds_meta_path)
        frame = _read_csv(ws.folds_path)
        beyond = frame.filter(pl.col("fold") >= meta.n_folds).head(1)
        if beyond.height:
            raise AesError(
                f"fold {beyond['fold'][0]} is beyond the {meta.n_folds} folds of folds.json",
                path=ws.folds_path,
                row=beyond["_row"][0],
            )
        if meta.n_essays is not None and meta.n_essays != frame.height:
            raise AesError(
                f"has {frame.height} essays, folds.json says {meta.n_essays}", path=ws.folds_path
            )
    folds = _make(frame.drop("_row"), meta.n_folds, meta.method, meta.seed)
    if folds.hash != meta.hash:
        raise AesError(
            f"folds.csv was changed after it was saved (hash {folds.hash}, folds.json says "
            f"{meta.hash}); run `aes-ensemble folds --force` to reassign "
            "(existing OOF files would no longer match)",
            path=ws.folds_path,
        )
    return folds
