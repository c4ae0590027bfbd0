"""aes-ensemble: essay scoring with base learners, grouped folds, stacking and QWK thresholds."""

from aes_ensemble.errors import AesError

__version__ = "0.1.0"
__all__ = ["AesError", "__version__"]
