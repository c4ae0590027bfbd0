"""TF-IDF word and character n-grams, saved as JSON + .npy so a fitted model never needs pickle.

Fit on a fold's training rows only (the caller's job): a vocabulary or idf learned from the
validation rows would leak them into the model and inflate the OOF score.

Within ``shared.shared_features()`` the essays' n-grams are counted once per analyzer setting
(``NgramCounts``) and every fitted vectorizer takes its columns from those counts: the analysis,
Python-level in scikit-learn, was most of the time of scoring with several fold models.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal

import numpy as np
import scipy.sparse as sp
from pydantic import model_validator
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.preprocessing import normalize

from aes_ensemble.config import StrictModel
from aes_ensemble.errors import AesError
from aes_ensemble.features.ngram_counts import NgramCounts
from aes_ensemble.features.shared import SharedFeatures, active
from aes_ensemble.io import write_json_atomic, write_npy_atomic
from aes_ensemble.progress import step

Block = Literal["word", "char"]


class TfidfConfig(StrictModel):
    """Word n-grams and/or character n-grams inside word boundaries (``char_wb``).

    ``max_features`` and ``min_df`` apply to each block; set a range to ``null`` to drop a block.
    """

    word_ngram_range: tuple[int, int] | None = (1, 2)
    char_ngram_range: tuple[int, int] | None = (3, 5)
    min_df: int = 2
    max_features: int | None = 50_000
    sublinear_tf: bool = True
    lowercase: bool = True

    @model_validator(mode="after")
    def _check(self) -> TfidfConfig:
        if self.word_ngram_range is None and self.char_ngram_range is None:
            raise ValueError("set word_ngram_range or char_ngram_range (both are null)")
        for rng in (self.word_ngram_range, self.char_ngram_range):
            if rng is not None and not 1 <= rng[0] <= rng[1]:
                raise ValueError(f"n-gram range {list(rng)} must satisfy 1 <= low <= high")
        if self.min_df < 1:
            raise ValueError("min_df must be at least 1")
        return self

    def ranges(self) -> dict[Block, tuple[int, int]]:
        out: dict[Block, tuple[int, int]] = {}
        if self.word_ngram_range is not None:
            out["word"] = self.word_ngram_range
        if self.char_ngram_range is not None:
            out["char"] = self.char_ngram_range
        return out


def _vectorizer(config: TfidfConfig, block: Block, **extra: Any) -> TfidfVectorizer:
    return TfidfVectorizer(
        analyzer="word" if block == "word" else "char_wb",
        ngram_range=config.ranges()[block],
        min_df=config.min_df,
        max_features=config.max_features,
        sublinear_tf=config.sublinear_tf,
        lowercase=config.lowercase,
        dtype=np.float32,
        **extra,
    )


class TfidfFeatures:
    """Word and char TF-IDF blocks, hstacked in that order into one CSR matrix."""

    def __init__(self, config: TfidfConfig) -> None:
        self.config = config
        self.vectorizers: dict[Block, TfidfVectorizer] = {}

    def fit(self, texts: list[str]) -> TfidfFeatures:
        """Learn vocabulary and idf from ``texts``: a fold's training rows only."""
        if not texts:
            raise AesError("cannot fit TF-IDF on zero essays")
        fitted: dict[Block, TfidfVectorizer] = {}
        blocks = self.config.ranges()
        # Character n-grams of 10,000 essays take most of a minute: say so in a long job's log.
        with step(f"TF-IDF fit ({len(texts)} essays)", len(blocks), unit="blocks") as shown:
            for block in blocks:
                vectorizer = _vectorizer(self.config, block)
                try:
                    vectorizer.fit(texts)
                except ValueError as exc:  # e.g. min_df above the number of essays
                    raise AesError(f"TF-IDF {block} block: {exc}", key="tfidf.min_df") from None
                fitted[block] = vectorizer
                shown.advance()
        self.vectorizers = fitted
        return self

    def transform(self, texts: list[str]) -> sp.csr_matrix:
        self._require_fitted()
        scope = active()
        blocks = [
            v.transform(texts) if scope is None else shared_transform(v, texts, scope)
            for v in self.vectorizers.values()
        ]
        return sp.csr_matrix(sp.hstack(blocks, format="csr", dtype=np.float32))

    def feature_names(self) -> list[str]:
        self._require_fitted()
        return [
            f"{block}:{term}"
            for block, v in self.vectorizers.items()
            for term in v.get_feature_names_out()
        ]

    def save(self, directory: Path) -> None:
        """``tfidf.json`` (config and vocabularies in column order) plus ``idf_<block>.npy``."""
        self._require_fitted()
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        for block, v in self.vectorizers.items():
            write_npy_atomic(directory / f"idf_{block}.npy", np.asarray(v.idf_))
        vocab = {b: v.get_feature_names_out().tolist() for b, v in self.vectorizers.items()}
        write_json_atomic(
            directory / "tfidf.json",
            {"config": self.config.model_dump(mode="json"), "vocabulary": vocab},
        )

    @classmethod
    def load(cls, directory: Path) -> TfidfFeatures:
        directory = Path(directory)
        meta_path = directory / "tfidf.json"
        try:
            meta = json.loads(meta_path.read_text(encoding="utf-8"))
            out = cls(TfidfConfig.model_validate(meta["config"]))
            for block in out.config.ranges():
                terms = meta["vocabulary"][block]
                idf = np.load(directory / f"idf_{block}.npy", allow_pickle=False)
                vectorizer = _vectorizer(
                    out.config, block, vocabulary={t: i for i, t in enumerate(terms)}
                )
                vectorizer.idf_ = idf
                out.vectorizers[block] = vectorizer
        except (OSError, ValueError, KeyError) as exc:
            raise AesError(f"cannot load TF-IDF model ({exc})", path=meta_path) from None
        return out

    def _require_fitted(self) -> None:
        if not self.vectorizers:
            raise RuntimeError("TfidfFeatures is not fitted: call fit() first")


# TfidfVectorizer parameters that weight or select counts: every other one shapes the analysis,
# so vectorizers that agree on the others count the same n-grams of a text.
_WEIGHTING = frozenset(
    {"binary", "dtype", "max_df", "max_features", "min_df", "norm"}
    | {"smooth_idf", "sublinear_tf", "use_idf", "vocabulary"}
)


def shared_transform(
    vectorizer: TfidfVectorizer, texts: list[str], scope: SharedFeatures
) -> sp.csr_matrix:
    """``vectorizer.transform(texts)``, from n-grams counted once per ``scope``: its columns
    taken from the shared counts, then its own tf, idf and norm, step by step as scikit-learn
    applies them (same dtype, same order of operations), so the values are the same."""
    params = vectorizer.get_params()
    key = tuple(sorted((k, repr(v)) for k, v in params.items() if k not in _WEIGHTING))
    if key not in scope.ngrams:
        scope.ngrams[key] = NgramCounts(vectorizer)
    shared = scope.ngrams[key]
    counts = shared.matrix(texts)
    own = getattr(vectorizer, "vocabulary_", None) or vectorizer.vocabulary
    mapped = shared.select(own)[counts.indices]
    kept = mapped >= 0
    rows = np.repeat(np.arange(counts.shape[0]), np.diff(counts.indptr))
    indptr = np.zeros(counts.shape[0] + 1, dtype=np.int64)
    np.cumsum(np.bincount(rows[kept], minlength=counts.shape[0]), out=indptr[1:])
    x = sp.csr_matrix(
        (counts.data[kept].astype(vectorizer.dtype), mapped[kept], indptr),
        shape=(counts.shape[0], len(own)),
    )
    x.sort_indices()  # CountVectorizer's order (if not already), so the norm sums alike
    if vectorizer.binary:
        x.data.fill(1)
    if vectorizer.sublinear_tf:
        np.log(x.data, x.data)
        x.data += 1.0
    if vectorizer.use_idf:
        x.data *= vectorizer.idf_[x.indices]
    if vectorizer.norm is not None:
        x = normalize(x, norm=vectorizer.norm, copy=False)
    return x
