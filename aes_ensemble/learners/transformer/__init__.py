"""Transformer base learners (``kind: transformer``): fine-tuned Hugging Face encoders.

Importing this package registers the kind; torch and transformers load only here.
"""

from aes_ensemble.learners.transformer.config import TransformerConfig
from aes_ensemble.learners.transformer.learner import TransformerLearner

__all__ = ["TransformerConfig", "TransformerLearner"]
