"""Features shared by the CPU learners: handcrafted, linguistic, TF-IDF, embeddings, and their
cache.

Names are imported on first use, so ``import aes_ensemble.features.cache`` (a cache writer)
does not pay for scikit-learn or polars, and nothing here loads torch until embeddings run.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from aes_ensemble.lazy_names import lazy_getattr

if TYPE_CHECKING:
    from aes_ensemble.features.cache import FeatureCache
    from aes_ensemble.features.embeddings import EmbeddingConfig, embed_texts
    from aes_ensemble.features.handcrafted import (
        HANDCRAFTED_VERSION,
        handcrafted_features,
        handcrafted_matrix,
    )
    from aes_ensemble.features.linguistic import (
        LINGUISTIC_VERSION,
        LinguisticConfig,
        linguistic_matrix,
    )
    from aes_ensemble.features.pipeline import FeatureConfig, FeaturePipeline
    from aes_ensemble.features.prompt_similarity import PromptSimilarity
    from aes_ensemble.features.tfidf import TfidfConfig, TfidfFeatures

_WHERE = {
    "FeatureCache": "aes_ensemble.features.cache",
    "EmbeddingConfig": "aes_ensemble.features.embeddings",
    "embed_texts": "aes_ensemble.features.embeddings",
    "HANDCRAFTED_VERSION": "aes_ensemble.features.handcrafted",
    "handcrafted_features": "aes_ensemble.features.handcrafted",
    "handcrafted_matrix": "aes_ensemble.features.handcrafted",
    "LINGUISTIC_VERSION": "aes_ensemble.features.linguistic",
    "LinguisticConfig": "aes_ensemble.features.linguistic",
    "linguistic_matrix": "aes_ensemble.features.linguistic",
    "PromptSimilarity": "aes_ensemble.features.prompt_similarity",
    "FeatureConfig": "aes_ensemble.features.pipeline",
    "FeaturePipeline": "aes_ensemble.features.pipeline",
    "TfidfConfig": "aes_ensemble.features.tfidf",
    "TfidfFeatures": "aes_ensemble.features.tfidf",
}

__all__ = [
    "HANDCRAFTED_VERSION",
    "LINGUISTIC_VERSION",
    "EmbeddingConfig",
    "FeatureCache",
    "FeatureConfig",
    "FeaturePipeline",
    "LinguisticConfig",
    "PromptSimilarity",
    "TfidfConfig",
    "TfidfFeatures",
    "embed_texts",
    "handcrafted_features",
    "handcrafted_matrix",
    "linguistic_matrix",
]


__getattr__ = lazy_getattr(__name__, _WHERE)
