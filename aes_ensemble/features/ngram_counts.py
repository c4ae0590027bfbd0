"""n-gram counts of essays under one analyzer, each distinct text analysed once.

Scoring with several fold models of a TF-IDF learner analyses the same essays again and again;
inside ``shared.shared_features()`` one ``NgramCounts`` per analyzer setting does the analysis
once and every fitted vectorizer selects its own columns from it (``tfidf.shared_transform``).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping

import numpy as np
import scipy.sparse as sp
from sklearn.feature_extraction.text import TfidfVectorizer


class NgramCounts:
    """n-gram counts of texts under one analyzer, each distinct text analysed once, over an
    open vocabulary (every n-gram seen): any vectorizer with this analyzer selects its own
    columns, whatever its fitted vocabulary."""

    def __init__(self, vectorizer: TfidfVectorizer) -> None:
        self._analyze = vectorizer.build_analyzer()
        # char_wb n-grams never cross white space and lowercasing keeps within a word, so a
        # word has the same n-grams in every essay: each distinct word is analysed once.
        self._by_word = (
            vectorizer.analyzer == "char_wb"
            and vectorizer.input == "content"
            and vectorizer.strip_accents is None
            and vectorizer.preprocessor is None
        )
        self.vocabulary: dict[str, int] = {}
        self._words: dict[str, np.ndarray] = {}  # word -> the columns of its n-grams
        self._row: dict[str, int] = {}
        self._parts: list[tuple[np.ndarray, np.ndarray]] = []  # (columns, counts) per text
        self._matrix: sp.csr_matrix | None = None
        self._rank = np.zeros(0, dtype=np.int32)  # a vocabulary id -> its column in the matrix

    def __len__(self) -> int:
        """The number of distinct texts counted."""
        return len(self._row)

    def matrix(self, texts: list[str]) -> sp.csr_matrix:
        """int32 counts of ``texts`` (rows in order), one column per n-gram of the vocabulary."""
        for text in texts:
            if text not in self._row:
                self._row[text] = len(self._row)
                self._parts.append(self._count(text))
                self._matrix = None
        if self._matrix is None:
            # Columns in the order of their n-grams, as a fitted vectorizer orders its own: its
            # columns then come out of ``select`` already sorted, with nothing to re-sort.
            self._rank = np.empty(len(self.vocabulary), dtype=np.int32)
            self._rank[[self.vocabulary[t] for t in sorted(self.vocabulary)]] = np.arange(
                len(self.vocabulary)
            )
            indptr = np.zeros(len(self._parts) + 1, dtype=np.int64)
            np.cumsum([len(c) for c, _ in self._parts], out=indptr[1:])
            self._matrix = sp.csr_matrix(
                (
                    np.concatenate([n for _, n in self._parts]),
                    self._rank[np.concatenate([c for c, _ in self._parts])],
                    indptr,
                ),
                shape=(len(self._parts), len(self.vocabulary)),
            )
            self._matrix.sort_indices()
        rows = np.fromiter((self._row[t] for t in texts), np.int64, len(texts))
        if np.array_equal(rows, np.arange(self._matrix.shape[0])):
            return self._matrix
        return sp.csr_matrix(self._matrix[rows])

    def select(self, vocabulary: Mapping[str, int]) -> np.ndarray:
        """For each column of the last ``matrix``, the column of its n-gram in ``vocabulary``
        (a fitted vectorizer's), or -1 where ``vocabulary`` lacks it."""
        found = np.fromiter((self.vocabulary.get(t, -1) for t in vocabulary), np.int32)
        own = np.fromiter(vocabulary.values(), np.int32, len(vocabulary))
        hit = found >= 0
        out = np.full(len(self.vocabulary), -1, dtype=np.int64)
        out[self._rank[found[hit]]] = own[hit]
        return out

    def _count(self, text: str) -> tuple[np.ndarray, np.ndarray]:
        """The columns of the n-grams of ``text`` and how often each occurs."""
        if not self._by_word:
            counts = Counter(self._analyze(text))
            return self._columns(counts), np.fromiter(counts.values(), np.int32, len(counts))
        words = Counter(text.split())
        parts = [self._word_columns(word) for word in words]
        if not parts:
            return np.zeros(0, np.int32), np.zeros(0, np.int32)
        columns, where = np.unique(np.concatenate(parts), return_inverse=True)
        times = np.repeat(np.fromiter(words.values(), np.int32), [len(p) for p in parts])
        return columns, np.bincount(where, weights=times).astype(np.int32)

    def _word_columns(self, word: str) -> np.ndarray:
        if word not in self._words:
            self._words[word] = self._columns(self._analyze(word))
        return self._words[word]

    def _columns(self, terms: Iterable[str]) -> np.ndarray:
        vocabulary = self.vocabulary
        return np.fromiter((vocabulary.setdefault(t, len(vocabulary)) for t in terms), np.int32)
