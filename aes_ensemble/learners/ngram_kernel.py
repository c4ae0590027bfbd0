"""The histogram-intersection kernel over character n-grams, computed as matrix products.

``K(a, b) = sum over n-grams g of min(count_a(g), count_b(g))``. A count ``c`` becomes ones in
columns ``(g, 1) .. (g, c)``, so the sum of minima is the dot product of two binary rows and a
kernel block is a matrix product: columns most training essays share go through dense BLAS, the
long tail through a sparse product. Both sum 0/1 products in float32, which is exact (and so the
same whatever the summation order or thread count) below 2**24 n-grams per essay.

N-grams are exact, never hashed: the n-grams of length ``n`` get ids from (id of their first
``n - 1`` characters, last character) pairs, level by level, against the training vocabulary.
An n-gram no training essay has adds nothing to a kernel value against a training essay, so it
is dropped, except from ``K(a, a)``, which counts every n-gram of ``a`` (a function of length).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np
import scipy.sparse as sp

# An expanded column held by more than this share of training essays goes through dense BLAS:
# its sparse cost grows with the square of its essays, the dense one with all essays' pairs.
DENSE_SHARE = 1 / 16


@dataclass(frozen=True)
class Counts:
    """N-gram counts in CSR layout (rows: texts; columns sorted within each row)."""

    indptr: np.ndarray
    indices: np.ndarray
    data: np.ndarray
    n_columns: int

    @property
    def n_rows(self) -> int:
        return len(self.indptr) - 1

    def rows(self) -> np.ndarray:
        return np.repeat(np.arange(self.n_rows), np.diff(self.indptr))


def _codes(texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """All texts' code points in one array, and the index of the text of each."""
    arrays = [np.frombuffer(t.encode("utf-32-le"), dtype=np.uint32) for t in texts]
    lengths = np.asarray([len(a) for a in arrays], dtype=np.int64)
    codes = np.concatenate(arrays).astype(np.int64) if arrays else np.empty(0, np.int64)
    return codes, np.repeat(np.arange(len(texts), dtype=np.int64), lengths)


def _lookup(keys: np.ndarray, valid: np.ndarray, vocab: np.ndarray) -> np.ndarray:
    """The position of each key in the sorted ``vocab``; -1 where invalid or absent. Keys are
    searched in sorted order, which keeps the binary searches in cache."""
    if not len(vocab):
        return np.full(len(keys), -1, dtype=np.int64)
    order = _order(np.where(valid, keys, 0))
    where = np.empty(len(keys), dtype=np.int64)
    where[order] = np.minimum(np.searchsorted(vocab, keys[order]), len(vocab) - 1)
    return np.where(valid & (vocab[where] == keys), where, -1)


def _order(keys: np.ndarray) -> np.ndarray:
    """``np.argsort(keys)`` for non-negative keys, via a plain sort of key and position packed
    in one int64 where they fit (several times faster than an indirect sort)."""
    bits = max(len(keys).bit_length(), 1)
    if not len(keys) or int(keys.max()) >= 1 << (62 - bits):
        return np.argsort(keys)
    packed = np.sort((keys << bits) | np.arange(len(keys), dtype=np.int64))
    return packed & ((1 << bits) - 1)


def _runs(sorted_keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Distinct values of sorted keys and how often each occurs (sorting beats numpy's hashed
    ``unique`` by far on millions of int64 keys)."""
    if not len(sorted_keys):
        return sorted_keys, np.empty(0, dtype=np.int64)
    starts = np.flatnonzero(np.concatenate([[True], sorted_keys[1:] != sorted_keys[:-1]]))
    return sorted_keys[starts], np.diff(np.append(starts, len(sorted_keys)))


class NgramIndex:
    """The exact vocabulary of the training texts' n-grams of lengths ``low..high``."""

    def __init__(self, alphabet: np.ndarray, levels: list[np.ndarray], low: int, high: int):
        self.alphabet, self.levels, self.low, self.high = alphabet, levels, low, high

    @classmethod
    def fit(cls, texts: list[str], low: int, high: int) -> tuple[NgramIndex, Counts]:
        """The vocabulary of ``texts`` and their counts over it, in one pass."""
        codes, doc = _codes(texts)
        index = cls(np.unique(codes), [], low, high)
        levels = list(index._ids(codes, doc, build=True))
        return index, index._counts(doc, levels, len(texts))

    @property
    def offsets(self) -> np.ndarray:
        """First column of each length ``low..high`` (and the total at the end)."""
        sizes = [len(self.alphabet), *(len(v) for v in self.levels)][self.low - 1 : self.high]
        return np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)

    @property
    def n_columns(self) -> int:
        return int(self.offsets[-1])

    def counts(self, texts: list[str]) -> Counts:
        codes, doc = _codes(texts)
        return self._counts(doc, list(self._ids(codes, doc, build=False)), len(texts))

    def _ids(self, codes: np.ndarray, doc: np.ndarray, *, build: bool) -> Iterator[np.ndarray]:
        """Per length ``low..high``: the id of the n-gram starting at each position (-1: none
        or unknown). ``build`` grows the vocabulary from these texts instead of looking up."""
        chars = _lookup(codes, np.ones(len(codes), dtype=bool), self.alphabet)
        ids, total, width = chars, len(codes), len(self.alphabet)
        for n in range(1, self.high + 1):
            if n > 1:
                keys = np.zeros(total, dtype=np.int64)
                valid = np.zeros(total, dtype=bool)
                if total >= n:
                    head, last = ids[: total - n + 1], chars[n - 1 :]
                    keys[: total - n + 1] = head * width + last
                    valid[: total - n + 1] = (
                        (doc[: total - n + 1] == doc[n - 1 :]) & (head >= 0) & (last >= 0)
                    )
                if build:
                    ids = np.full(total, -1, dtype=np.int64)
                    at = np.flatnonzero(valid)
                    order = _order(keys[at])
                    vocab, repeats = _runs(keys[at][order])
                    ids[at[order]] = np.repeat(np.arange(len(vocab)), repeats)
                    self.levels.append(vocab)
                else:
                    ids = _lookup(keys, valid, self.levels[n - 2])
            if n >= self.low:
                yield ids

    def _counts(self, doc: np.ndarray, levels: list[np.ndarray], n_rows: int) -> Counts:
        """CSR counts from each length's ids; lengths occupy increasing column ranges, so
        placing each length's entries after the shorter ones keeps every row sorted."""
        parts, per_row, offsets = [], [], self.offsets
        for n, ids in enumerate(levels):
            hit = ids >= 0
            width = offsets[n + 1] - offsets[n]
            keys, cnt = _runs(np.sort(doc[hit] * width + ids[hit]))
            rows = keys // width
            parts.append((rows, keys % width + offsets[n], cnt))
            per_row.append(np.bincount(rows, minlength=n_rows))
        before = np.cumsum([np.zeros(n_rows, np.int64), *per_row], axis=0)
        indptr = np.concatenate([[0], np.cumsum(before[-1])]).astype(np.int64)
        total = int(indptr[-1])
        indices = np.empty(total, dtype=np.int64)
        data = np.empty(total, dtype=np.int64)
        for n, (rows, cols, cnt) in enumerate(parts):
            starts = np.concatenate([[0], np.cumsum(per_row[n])[:-1]])
            at = indptr[rows] + before[n][rows] + np.arange(len(rows)) - starts[rows]
            indices[at], data[at] = cols, cnt
        return Counts(indptr, indices, data, self.n_columns)

    def self_kernel(self, texts: list[str]) -> np.ndarray:
        """``K(a, a)``: the number of n-grams of ``a`` in the length range."""
        lengths = np.asarray([len(t) for t in texts], dtype=np.float64)
        out = np.zeros(len(texts), dtype=np.float64)
        for n in range(self.low, self.high + 1):
            out += np.maximum(lengths - n + 1, 0.0)
        return out


@dataclass
class IntersectionKernel:
    """The training essays' binary (n-gram, k <= count) rows, split into dense columns (shared
    by many essays) and the sparse tail, ready for kernel blocks against any texts."""

    index: NgramIndex
    caps: np.ndarray  # per n-gram: the training essays' largest count (min() never exceeds it)
    layers: np.ndarray  # first binary column of each n-gram
    dense_of: np.ndarray  # binary column -> its dense column, -1 for the tail
    train_dense: np.ndarray = field(repr=False)
    train_tail: sp.csr_matrix = field(repr=False)
    train_self: np.ndarray = field(repr=False)

    @classmethod
    def fit(cls, texts: list[str], low: int, high: int) -> IntersectionKernel:
        index, counts = NgramIndex.fit(texts, low, high)
        caps = np.zeros(counts.n_columns, dtype=np.int64)
        np.maximum.at(caps, counts.indices, counts.data)
        layers = np.concatenate([[0], np.cumsum(caps)]).astype(np.int64)
        rows, cols = _binary(counts, caps, layers)
        held = np.bincount(cols, minlength=int(layers[-1]))
        dense = held > DENSE_SHARE * max(len(texts), 1)
        dense_of = np.where(dense, np.cumsum(dense) - 1, -1)
        kernel = cls(index, caps, layers, dense_of, np.empty(0), sp.csr_matrix((0, 0)), np.empty(0))
        kernel.train_dense, kernel.train_tail = kernel._split(rows, cols, len(texts))
        kernel.train_self = index.self_kernel(texts)
        return kernel

    def _split(
        self, rows: np.ndarray, cols: np.ndarray, n: int
    ) -> tuple[np.ndarray, sp.csr_matrix]:
        """Binary entries as a dense float32 block and a CSR tail."""
        where = self.dense_of[cols]
        dense = np.zeros((n, int(self.dense_of.max(initial=-1)) + 1), dtype=np.float32)
        is_dense = where >= 0
        dense[rows[is_dense], where[is_dense]] = 1.0
        tail_rows, tail_cols = rows[~is_dense], cols[~is_dense]
        indptr = np.concatenate([[0], np.cumsum(np.bincount(tail_rows, minlength=n))])
        tail = sp.csr_matrix(
            (np.ones(len(tail_cols), dtype=np.float32), tail_cols, indptr),
            shape=(n, len(self.dense_of)),
        )
        return dense, tail

    def __call__(self, texts: list[str], *, normalise: bool) -> np.ndarray:
        """(texts x training essays) kernel values, float64."""
        rows, cols = _binary(self.index.counts(texts), self.caps, self.layers)
        dense, tail = self._split(rows, cols, len(texts))
        own = self.index.self_kernel(texts)
        return self._product(dense, tail, own, normalise)

    def gram(self, *, normalise: bool) -> np.ndarray:
        """The training essays' own (symmetric) kernel matrix, from the parts kept at fit."""
        return self._product(self.train_dense, self.train_tail, self.train_self, normalise)

    def _product(
        self, dense: np.ndarray, tail: sp.csr_matrix, own: np.ndarray, normalise: bool
    ) -> np.ndarray:
        k = (dense @ self.train_dense.T).astype(np.float64)
        k += (tail @ self.train_tail.T).toarray()
        if normalise:
            k /= np.sqrt(np.maximum(np.outer(own, self.train_self), 1.0))
        return k


def _binary(counts: Counts, caps: np.ndarray, layers: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(row, column) of every one of the binary rows, row-major and sorted: count ``c`` of
    n-gram ``g`` sets columns ``layers[g] .. layers[g] + min(c, caps[g]) - 1``."""
    reps = np.minimum(counts.data, caps[counts.indices])
    row = np.repeat(counts.rows(), reps)
    first = np.repeat(layers[counts.indices], reps)
    within = np.arange(int(reps.sum()), dtype=np.int64) - np.repeat(np.cumsum(reps) - reps, reps)
    return row, first + within
