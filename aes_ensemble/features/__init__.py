"""Features shared by the CPU learners: handcrafted, linguistic, TF-IDF, embeddings, and their
cache.

Names are imported on first use, so ``import aes_ensemble.features.cache`` (a cache writer)
does not pay for scikit-learn or polars, and nothing here loads torch until embeddings run.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

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
    "FeatureCache": "cache",
    "EmbeddingConfig": "embeddings",
    "embed_texts": "embeddings",
    "HANDCRAFTED_VERSION": "handcrafted",
    "handcrafted_features": "handcrafted",
    "handcrafted_matrix": "handcrafted",
    "LINGUISTIC_VERSION": "linguistic",
    "LinguisticConfig": "linguistic",
    "linguistic_matrix": "linguistic",
    "PromptSimilarity": "prompt_similarity",
    "FeatureConfig": "pipeline",
    "FeaturePipeline": "pipeline",
    "TfidfConfig": "tfidf",
    "TfidfFeatures": "tfidf",
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


def __getattr__(name: str) -> Any:
    if name not in _WHERE:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{_WHERE[name]}"), name)
