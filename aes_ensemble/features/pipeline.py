"""Essays -> feature matrix for one fold: cached per-text blocks plus per-fold fitted blocks.

Handcrafted and linguistic features and embeddings depend on one text only, so they come from
the ``FeatureCache`` (computed once per essay, shared by every fold and learner). TF-IDF, its SVD,
the prompt similarity and the standardiser learn from data, so they are fitted on the fold's
training rows only.
Column order: raw TF-IDF (if no SVD), handcrafted, linguistic, prompt similarity, SVD
components, embeddings.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp
from pydantic import Field, model_validator
from sklearn.decomposition import TruncatedSVD
from threadpoolctl import threadpool_limits

from aes_ensemble.config import StrictModel
from aes_ensemble.errors import AesError
from aes_ensemble.features.cache import FeatureCache
from aes_ensemble.features.embeddings import EMBEDDING_VERSION, EmbeddingConfig, embed_texts
from aes_ensemble.features.handcrafted import HANDCRAFTED_VERSION, handcrafted_matrix
from aes_ensemble.features.handcrafted import feature_names as handcrafted_names
from aes_ensemble.features.linguistic import LINGUISTIC_VERSION, LinguisticConfig, linguistic_matrix
from aes_ensemble.features.linguistic import feature_names as linguistic_names
from aes_ensemble.features.prompt_similarity import NAMES as PROMPT_SIMILARITY_NAMES
from aes_ensemble.features.prompt_similarity import PromptSimilarity
from aes_ensemble.features.tfidf import TfidfConfig, TfidfFeatures
from aes_ensemble.io import write_json_atomic, write_npy_atomic

FORMAT_VERSION = 1


class FeatureConfig(StrictModel):
    """The ``features:`` section of a learner config."""

    handcrafted: bool = True
    linguistic: LinguisticConfig | None = None
    tfidf: TfidfConfig | None = None
    svd_components: int | None = Field(None, ge=1)
    embeddings: EmbeddingConfig | None = None
    scale: bool = True

    @model_validator(mode="after")
    def _check(self) -> FeatureConfig:
        if self.svd_components is not None and self.tfidf is None:
            raise ValueError("svd_components needs a tfidf section to reduce")
        if not (self.handcrafted or self.linguistic or self.tfidf or self.embeddings):
            raise ValueError("no features: enable handcrafted, linguistic, tfidf or embeddings")
        return self


def definition_versions(config: FeatureConfig) -> dict[str, str]:
    """The definition version of each per-essay block ``config`` uses. A fold fitted under
    another version is stale although its config is unchanged: ``fit-base`` refits it."""
    versions: dict[str, str] = {}
    if config.handcrafted:
        versions["handcrafted"] = HANDCRAFTED_VERSION
    if config.linguistic is not None:
        versions["linguistic"] = LINGUISTIC_VERSION
    if config.embeddings is not None:
        versions["embeddings"] = EMBEDDING_VERSION
    return versions


class FeaturePipeline:
    """Fit on a fold's training essays, then transform any essays into the same columns."""

    def __init__(
        self,
        config: FeatureConfig,
        cache_dir: Path | None = None,
        seed: int = 42,
        progress: bool = True,
    ) -> None:
        self.config = config
        self.cache = FeatureCache(cache_dir)
        self.seed = seed
        self.progress = progress
        self.tfidf: TfidfFeatures | None = None
        self.svd_components: np.ndarray | None = None
        self.prompt_similarity: PromptSimilarity | None = None
        self.mean: np.ndarray | None = None
        self.std: np.ndarray | None = None
        self.embedding_dim = 0
        self.fitted = False

    @property
    def sparse_output(self) -> bool:
        """True when ``transform`` returns CSR (raw TF-IDF columns), else a dense array."""
        return self.config.tfidf is not None and self.config.svd_components is None

    def warm(self, essays: Any) -> None:
        """Compute the cached blocks for ``essays`` now (e.g. train and test before the folds),
        so every essay is embedded in one pass and no fold waits on another."""
        self._cached_blocks(essays.texts)

    def fit(self, essays: Any) -> FeaturePipeline:
        """Fit TF-IDF, SVD, prompt similarity and the standardiser on ``essays``: a fold's
        training rows only."""
        self._fit(essays)
        return self

    def fit_transform(self, essays: Any) -> np.ndarray | sp.csr_matrix:
        """``fit`` then ``transform`` of the same essays, each block built once."""
        tfidf, dense = self._fit(essays)
        return self._assemble(tfidf, self._scale(dense))

    def transform(self, essays: Any) -> np.ndarray | sp.csr_matrix:
        """float32 features of ``essays``: CSR when raw TF-IDF is present, else dense."""
        if not self.fitted:
            raise RuntimeError("FeaturePipeline is not fitted: call fit() first")
        texts = essays.texts
        tfidf = None if self.tfidf is None else self.tfidf.transform(texts)
        similarity = None
        if self.prompt_similarity is not None:
            similarity = self.prompt_similarity.transform(texts, essays.prompts)
        return self._assemble(tfidf, self._scale(self._dense(texts, tfidf, similarity)))

    def _fit(self, essays: Any) -> tuple[sp.csr_matrix | None, np.ndarray]:
        """Fit every learned block; the training rows' TF-IDF and unscaled dense block."""
        texts = essays.texts
        if not texts:
            raise AesError("cannot fit features on zero essays")
        self.tfidf = self.svd_components = self.mean = self.std = None
        self.prompt_similarity = similarity = None
        if self.config.linguistic is not None and self.config.linguistic.prompt_similarity:
            self.prompt_similarity = PromptSimilarity()
            similarity = self.prompt_similarity.fit_transform(texts, essays.prompts)
        tfidf = None
        if self.config.tfidf is not None:
            self.tfidf = TfidfFeatures(self.config.tfidf).fit(texts)
            tfidf = self.tfidf.transform(texts)
            if self.config.svd_components is not None:
                self._fit_svd(tfidf, self.config.svd_components)
        self.fitted = True
        dense = self._dense(texts, tfidf, similarity)
        if self.config.scale and dense.shape[1]:
            self.mean = dense.mean(axis=0, dtype=np.float64)
            std = dense.std(axis=0, dtype=np.float64)
            self.std = np.where(std > 0, std, 1.0)
        return tfidf, dense

    def _assemble(
        self, tfidf: sp.csr_matrix | None, dense: np.ndarray
    ) -> np.ndarray | sp.csr_matrix:
        if not self.sparse_output:
            return dense
        assert tfidf is not None
        return sp.csr_matrix(
            sp.hstack([tfidf, sp.csr_matrix(dense)], format="csr", dtype=np.float32)
        )

    def feature_names(self) -> list[str]:
        if not self.fitted:
            raise RuntimeError("FeaturePipeline is not fitted: call fit() first")
        names: list[str] = []
        if self.sparse_output and self.tfidf is not None:
            names += [f"tfidf.{n}" for n in self.tfidf.feature_names()]
        if self.config.handcrafted:
            names += [f"hc.{n}" for n in handcrafted_names()]
        if self.config.linguistic is not None:
            names += [f"ling.{n}" for n in linguistic_names(self.config.linguistic)]
        if self.prompt_similarity is not None:
            names += [f"ling.prompt.{n}" for n in PROMPT_SIMILARITY_NAMES]
        if self.svd_components is not None:
            names += [f"svd.{i}" for i in range(self.svd_components.shape[0])]
        names += [f"emb.{i}" for i in range(self.embedding_dim)]
        return names

    def _fit_svd(self, matrix: sp.csr_matrix, n_components: int) -> None:
        limit = min(matrix.shape) - 1
        if n_components > limit:
            raise AesError(
                f"svd_components={n_components} is more than the TF-IDF block allows ({limit})",
                key="features.svd_components",
            )
        # One BLAS thread: the randomized SVD's result depends on how many threads its BLAS calls
        # use, so without it one process (all cores) and --jobs workers (a share each) fit other
        # components, and the trees downstream amplify the 1e-5 into different predictions.
        with threadpool_limits(limits=1):
            svd = TruncatedSVD(n_components=n_components, random_state=self.seed).fit(matrix)
        self.svd_components = svd.components_.astype(np.float32)

    def _cached_blocks(self, texts: list[str]) -> list[np.ndarray]:
        blocks = []
        if self.config.handcrafted:
            blocks.append(handcrafted_matrix(texts, self.cache))
        if self.config.linguistic is not None:
            blocks.append(linguistic_matrix(texts, self.config.linguistic, self.cache))
        if self.config.embeddings is not None:
            emb = embed_texts(texts, self.config.embeddings, self.cache, progress=self.progress)
            self.embedding_dim = emb.shape[1]
            blocks.append(emb)
        return blocks

    def _dense(
        self, texts: list[str], tfidf: sp.csr_matrix | None, similarity: np.ndarray | None
    ) -> np.ndarray:
        """The unscaled dense columns: cached blocks, then (before the embeddings) the prompt
        similarity and the SVD of ``tfidf``, all of these texts."""
        blocks = self._cached_blocks(texts)
        at = int(self.config.handcrafted) + int(self.config.linguistic is not None)
        if similarity is not None:
            blocks.insert(at, similarity)
            at += 1
        if self.svd_components is not None:
            assert tfidf is not None
            reduced = tfidf @ self.svd_components.T
            blocks.insert(at, np.asarray(reduced))
        if not blocks:
            return np.zeros((len(texts), 0), dtype=np.float32)
        return np.hstack(blocks).astype(np.float32)

    def _scale(self, dense: np.ndarray) -> np.ndarray:
        if self.mean is None or self.std is None:
            return dense
        return ((dense - self.mean) / self.std).astype(np.float32)

    def save(self, directory: Path) -> None:
        """``pipeline.json`` plus ``.npy`` arrays and the TF-IDF folder; no pickles."""
        if not self.fitted:
            raise RuntimeError("FeaturePipeline is not fitted: call fit() first")
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        if self.tfidf is not None:
            self.tfidf.save(directory / "tfidf")
        if self.prompt_similarity is not None:
            self.prompt_similarity.save(directory / "prompt_similarity")
        arrays = {"svd_components": self.svd_components, "mean": self.mean, "std": self.std}
        for name, array in arrays.items():
            if array is not None:
                write_npy_atomic(directory / f"{name}.npy", array)
        write_json_atomic(
            directory / "pipeline.json",
            {
                "format_version": FORMAT_VERSION,
                "config": self.config.model_dump(mode="json"),
                "seed": self.seed,
                "handcrafted_version": HANDCRAFTED_VERSION,
                "linguistic_version": LINGUISTIC_VERSION,
                "embedding_dim": self.embedding_dim,
                "arrays": sorted(k for k, v in arrays.items() if v is not None),
            },
        )

    @classmethod
    def load(
        cls, directory: Path, cache_dir: Path | None = None, progress: bool = True
    ) -> FeaturePipeline:
        directory = Path(directory)
        meta_path = directory / "pipeline.json"
        try:
            meta = json.loads(meta_path.read_text(encoding="utf-8"))
            config = FeatureConfig.model_validate(meta["config"])
            out = cls(config, cache_dir, int(meta["seed"]), progress)
            arrays = {
                name: np.load(directory / f"{name}.npy", allow_pickle=False)
                for name in meta["arrays"]
            }
        except (OSError, ValueError, KeyError) as exc:
            raise AesError(f"cannot load feature pipeline ({exc})", path=meta_path) from None
        if meta.get("handcrafted_version") != HANDCRAFTED_VERSION and config.handcrafted:
            raise AesError(
                f"saved with handcrafted features {meta.get('handcrafted_version')}, "
                f"this version computes {HANDCRAFTED_VERSION}: refit",
                path=meta_path,
            )
        if meta.get("linguistic_version") != LINGUISTIC_VERSION and config.linguistic:
            raise AesError(
                f"saved with linguistic features {meta.get('linguistic_version')}, "
                f"this version computes {LINGUISTIC_VERSION}: refit",
                path=meta_path,
            )
        if config.tfidf is not None:
            out.tfidf = TfidfFeatures.load(directory / "tfidf")
        if config.linguistic is not None and config.linguistic.prompt_similarity:
            out.prompt_similarity = PromptSimilarity.load(directory / "prompt_similarity")
        out.svd_components = arrays.get("svd_components")
        out.mean, out.std = arrays.get("mean"), arrays.get("std")
        out.embedding_dim = int(meta["embedding_dim"])
        out.fitted = True
        return out
