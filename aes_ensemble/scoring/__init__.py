"""Scoring new essays with a fitted stack: :class:`Ensemble` (from a workspace or a bundle),
:func:`export_bundle` (the folder that carries it to a machine without the training data) and
:func:`verify_bundle`."""

from aes_ensemble.scoring.bundle import verify_bundle
from aes_ensemble.scoring.ensemble import Ensemble, export_bundle

__all__ = ["Ensemble", "export_bundle", "verify_bundle"]
