"""Similarity of an essay to its prompt's other essays, fitted on a fold's training essays.

An on-topic essay shares content words with the other answers to its prompt; one that misreads
the task or pads with filler shares fewer. Each essay is a hashed bag of content words
(English stop words removed, sublinear counts, unit length: no vocabulary to fit, so essays of a
prompt never seen in training are represented as well as the others); each prompt keeps the sum
of its training essays' vectors. Two columns:

- ``sim``: cosine to the centroid of the prompt's other essays; a training essay is left out of
  its own centroid (leave-one-out), so its value is what a new essay of the prompt would get;
- ``sim_z``: ``sim`` standardised by the prompt's training values, comparable across prompts
  (narrow, source-based prompts have high raw similarities).

A prompt unseen in training (leave-one-prompt-out, prompt-grouped folds) is compared with the
other essays of that prompt in the batch being transformed, leave-one-out, and standardised by
their own values: it uses their texts, never their scores, but the values then depend on which
essays are scored together. With fewer than two such essays, ``sim`` is the training mean and
``sim_z`` 0. Essays without a prompt form one group.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import scipy.sparse as sp
from sklearn.feature_extraction.text import HashingVectorizer

from aes_ensemble.errors import AesError
from aes_ensemble.io import write_json_atomic, write_npy_atomic

N_FEATURES = 2**18
NAMES = ("sim", "sim_z")
_NONE = "\x00none"  # the group of essays without a prompt (no real prompt id is this)


def vectors(texts: list[str]) -> sp.csr_matrix:
    """Unit-length hashed content-word vectors (ASAP's ``@CAPS1`` tokens are not words)."""
    hashed = HashingVectorizer(
        n_features=N_FEATURES,
        token_pattern=r"(?<![@\w])[A-Za-z][A-Za-z]+(?!\w)",
        stop_words="english",
        alternate_sign=False,
        norm=None,
        dtype=np.float64,
    ).transform(texts)
    hashed.data = 1.0 + np.log(hashed.data)
    norms = np.sqrt(np.asarray(hashed.multiply(hashed).sum(axis=1)).ravel())
    scale = np.divide(1.0, norms, out=np.zeros_like(norms), where=norms > 0)
    return sp.csr_matrix(sp.diags(scale) @ hashed)


def _keys(prompts: np.ndarray | list[object]) -> list[str]:
    return [_NONE if p is None else str(p) for p in prompts]


def _leave_one_out(x: sp.csr_matrix, total: np.ndarray) -> np.ndarray:
    """Cosine of each row of ``x`` to ``total`` minus that row (rows are unit or zero)."""
    dot = np.asarray(x @ total).ravel()
    self_sq = np.asarray(x.multiply(x).sum(axis=1)).ravel()
    rest_dot = dot - self_sq
    rest_sq = np.maximum(float(total @ total) - 2.0 * dot + self_sq, 0.0)
    return np.divide(rest_dot, np.sqrt(rest_sq), out=np.zeros_like(dot), where=rest_sq > 1e-12)


def _standardised(sim: np.ndarray, mean: float, sd: float) -> np.ndarray:
    return (sim - mean) / sd if sd > 0 else np.zeros_like(sim)


class PromptSimilarity:
    """Per-prompt sums of essay vectors and the spread of the training similarities."""

    def __init__(self) -> None:
        self.prompts: list[str] = []
        self.totals: sp.csr_matrix | None = None  # one row per prompt
        self.mean = np.zeros(0)
        self.sd = np.zeros(0)
        self.overall_mean = 0.0

    def fit_transform(self, texts: list[str], prompts: np.ndarray) -> np.ndarray:
        """Fit on training essays; their leave-one-out similarities, (n, 2)."""
        if not texts:
            raise AesError("cannot fit prompt similarity on zero essays")
        x, keys = vectors(texts), _keys(prompts)
        self.prompts = sorted(set(keys))
        totals, sim = [], np.zeros(len(texts))
        for prompt in self.prompts:
            rows = np.flatnonzero(np.array(keys) == prompt)
            total = np.asarray(x[rows].sum(axis=0)).ravel()
            totals.append(total)
            sim[rows] = _leave_one_out(x[rows], total) if len(rows) > 1 else np.nan
        self.totals = sp.csr_matrix(np.vstack(totals))
        self.overall_mean = float(np.nanmean(sim)) if np.isfinite(sim).any() else 0.0
        stats = [self._stats(sim[np.array(keys) == p]) for p in self.prompts]
        self.mean = np.array([m for m, _ in stats])
        self.sd = np.array([s for _, s in stats])
        return self._columns(sim, keys)

    def _stats(self, sim: np.ndarray) -> tuple[float, float]:
        sim = sim[np.isfinite(sim)]
        return (float(sim.mean()), float(sim.std())) if sim.size else (self.overall_mean, 0.0)

    def transform(self, texts: list[str], prompts: np.ndarray) -> np.ndarray:
        """Similarities of new essays to their prompt's training essays, (n, 2)."""
        if self.totals is None:
            raise RuntimeError("PromptSimilarity is not fitted: call fit_transform() first")
        x, keys = vectors(texts), _keys(prompts)
        sim, z = np.zeros(len(texts)), np.zeros(len(texts))
        index = {p: i for i, p in enumerate(self.prompts)}
        for prompt in sorted(set(keys)):
            rows = np.flatnonzero(np.array(keys) == prompt)
            if prompt in index:
                i = index[prompt]
                total = self.totals[i].toarray().ravel()
                norm = float(np.sqrt(total @ total))
                sim[rows] = np.asarray(x[rows] @ total).ravel() / norm if norm > 0 else 0.0
                z[rows] = _standardised(sim[rows], self.mean[i], self.sd[i])
            elif len(rows) > 1:  # unseen prompt: its other essays in this batch
                own = _leave_one_out(x[rows], np.asarray(x[rows].sum(axis=0)).ravel())
                sim[rows] = own
                z[rows] = _standardised(own, float(own.mean()), float(own.std()))
            else:
                sim[rows] = self.overall_mean
        return np.column_stack([sim, z])

    def _columns(self, sim: np.ndarray, keys: list[str]) -> np.ndarray:
        z = np.zeros_like(sim)
        for i, prompt in enumerate(self.prompts):
            rows = np.array(keys) == prompt
            z[rows] = _standardised(sim[rows], self.mean[i], self.sd[i])
        sim = np.where(np.isfinite(sim), sim, self.overall_mean)
        return np.column_stack([sim, np.nan_to_num(z)])

    def save(self, directory: Path) -> None:
        """``prompt_similarity.json`` plus the prompt totals as CSR arrays (``.npy``)."""
        if self.totals is None:
            raise RuntimeError("PromptSimilarity is not fitted: call fit_transform() first")
        directory.mkdir(parents=True, exist_ok=True)
        for name in ("data", "indices", "indptr"):
            write_npy_atomic(directory / f"totals_{name}.npy", getattr(self.totals, name))
        write_json_atomic(
            directory / "prompt_similarity.json",
            {
                "n_features": N_FEATURES,
                "prompts": self.prompts,
                "mean": self.mean.tolist(),
                "sd": self.sd.tolist(),
                "overall_mean": self.overall_mean,
            },
        )

    @classmethod
    def load(cls, directory: Path) -> PromptSimilarity:
        path = directory / "prompt_similarity.json"
        try:
            meta = json.loads(path.read_text(encoding="utf-8"))
            arrays = [
                np.load(directory / f"totals_{n}.npy", allow_pickle=False)
                for n in ("data", "indices", "indptr")
            ]
        except (OSError, ValueError) as exc:
            raise AesError(f"cannot load prompt similarity ({exc})", path=path) from None
        if meta.get("n_features") != N_FEATURES:
            raise AesError("prompt similarity saved with another hashing width: refit", path=path)
        out = cls()
        out.prompts = list(meta["prompts"])
        out.totals = sp.csr_matrix(tuple(arrays), shape=(len(out.prompts), N_FEATURES))
        out.mean, out.sd = np.array(meta["mean"]), np.array(meta["sd"])
        out.overall_mean = float(meta["overall_mean"])
        return out
