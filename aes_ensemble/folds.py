"""Fold assignment shared by every learner: grouped by prompt, stratified by score, hashed.

Every learner's out-of-fold predictions must come from the same assignment, or the stack learns
from leaked rows; so folds are saved once per workspace, hashed, and refused when edited.
"""

from __future__ import annotations

import hashlib
import json
import warnings
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Literal

import numpy as np
import polars as pl

from aes_ensemble.data import Essays, check_columns, check_unique_ids, parse_csv
from aes_ensemble.errors import AesError
from aes_ensemble.io import atomic_path, write_json_atomic
from aes_ensemble.workspace import Workspace

Method = Literal["auto", "grouped", "stratified"]


def folds_hash(frame: pl.DataFrame) -> str:
    """sha256 (16 hex) of the sorted ``essay_id,fold`` lines: the identity of an assignment."""
    lines = frame.select("essay_id", "fold").sort("essay_id")
    text = "\n".join(f"{i},{f}" for i, f in lines.iter_rows())
    return hashlib.sha256(text.encode()).hexdigest()[:16]


@dataclass(frozen=True)
class Folds:
    """``frame``: ``essay_id`` (String), ``fold`` (Int32, 0..n_folds-1), and ``prompt`` (String)
    where the essays have prompts or prompts were inferred."""

    frame: pl.DataFrame
    n_folds: int
    method: str
    hash: str
    seed: int | None = None

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


def _make(frame: pl.DataFrame, n_folds: int, method: str, seed: int | None) -> Folds:
    frame = frame.with_columns(pl.col("fold").cast(pl.Int32))
    return Folds(frame, n_folds, method, folds_hash(frame), seed)


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
    scale; per-prompt scales (ASAP) stratify, as the published ASAP protocol does. For grouped
    folds the seed only breaks ties: StratifiedGroupKFold places groups by their score spread.
    """
    from sklearn.model_selection import StratifiedGroupKFold, StratifiedKFold

    if n_folds < 2:
        raise AesError(f"--n-folds {n_folds}: need at least 2 folds")
    if not essays.has_scores:
        raise AesError("folds need training essays with scores", path=essays.path)
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
            splitter = StratifiedGroupKFold(n_folds, shuffle=True, random_state=seed)
            splits = splitter.split(np.zeros(len(essays)), labels, groups=prompts.astype(str))
        elif method == "stratified":
            splits = StratifiedKFold(n_folds, shuffle=True, random_state=seed).split(
                np.zeros(len(essays)), labels
            )
        else:
            raise AesError(f"unknown fold method '{method}' (valid: auto, grouped, stratified)")
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
    return _make(_drop_null_prompt(frame), n_folds, label, seed)


def _drop_null_prompt(frame: pl.DataFrame) -> pl.DataFrame:
    return frame.drop("prompt") if frame["prompt"].null_count() == frame.height else frame


def _read_csv(path: Path) -> pl.DataFrame:
    if not path.is_file():
        raise AesError("folds file not found", path=path)
    frame = parse_csv(path.read_bytes(), path)
    check_columns(frame.drop("_row").columns, ("essay_id", "fold"), path, "a folds file")
    if frame.height == 0:
        raise AesError("folds file has a header but no rows", path=path)
    return frame


def read_folds_file(path: str | Path, essays: Essays) -> Folds:
    """A fold assignment from a CSV ``essay_id,fold`` (e.g. the Taghipour & Ng ASAP split)."""
    file = Path(path)
    frame = _read_csv(file).with_columns(pl.col("essay_id").str.strip_chars())
    fold = pl.col("fold").str.strip_chars().cast(pl.Int64, strict=False)
    bad = frame.filter(fold.is_null() | (fold < 0)).head(1)
    if bad.height:
        raise AesError(
            f"fold '{bad['fold'][0]}' is not a non-negative integer", path=file, row=bad["_row"][0]
        )
    frame = frame.with_columns(fold.alias("fold"))
    check_unique_ids(frame, file)
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
    empty = sorted(set(range(n_folds)) - set(frame["fold"].to_list()))
    if empty:
        raise AesError(f"fold {empty[0]} has no essays (folds run 0..{n_folds - 1})", path=file)
    prompts = essays.frame.select("essay_id", "prompt")
    ordered = frame.select("essay_id", "fold").join(prompts, on="essay_id", how="left")
    return _make(_drop_null_prompt(ordered), n_folds, "file", None)


def _existing_hash(ws: Workspace) -> str | None:
    if not ws.folds_path.is_file():
        return None
    frame = _read_csv(ws.folds_path)
    return folds_hash(frame.with_columns(pl.col("fold").str.strip_chars()))


def save_folds(ws: Workspace, folds: Folds, *, force: bool = False) -> Path:
    """Write ``folds.csv`` and ``folds.json`` once; a different existing assignment is kept
    unless ``force``, because every OOF file in the workspace was fitted on it."""
    existing = _existing_hash(ws)
    if existing is not None and existing != folds.hash and not force:
        raise AesError(
            f"the workspace already has a different fold assignment (hash {existing}, new "
            f"{folds.hash}); existing OOF files would no longer match; pass --force to replace it",
            path=ws.folds_path,
        )
    with atomic_path(ws.folds_path) as tmp:
        folds.frame.write_csv(tmp)
    meta = {
        "hash": folds.hash,
        "method": folds.method,
        "seed": folds.seed,
        "n_folds": folds.n_folds,
        "n_essays": folds.frame.height,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    write_json_atomic(ws.folds_meta_path, meta)
    return ws.folds_path


def load_folds(ws: Workspace) -> Folds:
    """The workspace's saved folds; a ``folds.csv`` changed after saving is refused."""
    if not ws.folds_path.is_file() or not ws.folds_meta_path.is_file():
        raise AesError("no folds yet; run `aes-ensemble folds` first", path=ws.folds_path)
    try:
        meta = json.loads(ws.folds_meta_path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise AesError(f"invalid JSON ({exc.msg})", path=ws.folds_meta_path) from None
    frame = _read_csv(ws.folds_path).drop("_row")
    fold = pl.col("fold").str.strip_chars().cast(pl.Int32, strict=False)
    folds = _make(
        frame.with_columns(fold), int(meta["n_folds"]), str(meta["method"]), meta.get("seed")
    )
    if folds.hash != meta.get("hash"):
        raise AesError(
            f"folds.csv was changed after it was saved (hash {folds.hash}, folds.json says "
            f"{meta.get('hash')}); run `aes-ensemble folds --force` to reassign "
            "(existing OOF files would no longer match)",
            path=ws.folds_path,
        )
    return folds
