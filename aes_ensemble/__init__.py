"""aes-ensemble: essay scoring with base learners, grouped folds, stacking and QWK thresholds.

The names a user needs, one per step of the job::

    import aes_ensemble as aes

    ws = aes.Workspace.at("aes2")
    aes.split(ws, train=Path("train.csv"))           # configs/data.yaml + the folds, once
    aes.fit_learners(ws, ["ridge_tfidf", "lgbm"])     # base learners: OOF and test predictions
    run = aes.stack(ws, meta="nnls")                  # nested CV, cross-fitted cut points
    ensemble = aes.Ensemble.load(ws.root)            # scores new essays (or a bundle's)
    aes.qwk(y_true, y_pred, scale="1-6")

Everything else is importable from its module (``aes_ensemble.stacking``, ``aes_ensemble.store``,
...) but is not the advertised surface. The names load on first use, so ``import aes_ensemble``
stays light (the command line starts without scikit-learn or torch).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from aes_ensemble.lazy_names import lazy_getattr
from aes_ensemble.version import __version__

if TYPE_CHECKING:
    from aes_ensemble.engine import fit_learner, fit_learners
    from aes_ensemble.errors import AesError
    from aes_ensemble.metrics import qwk
    from aes_ensemble.sample import sample_path
    from aes_ensemble.scoring.ensemble import Ensemble, export_bundle
    from aes_ensemble.splitting import split
    from aes_ensemble.stacking.stack_workspace import stack
    from aes_ensemble.workspace import Workspace

# name -> the module that defines it
_PUBLIC = {
    "AesError": "aes_ensemble.errors",
    "Ensemble": "aes_ensemble.scoring.ensemble",
    "Workspace": "aes_ensemble.workspace",
    "export_bundle": "aes_ensemble.scoring.ensemble",
    "fit_learner": "aes_ensemble.engine",
    "fit_learners": "aes_ensemble.engine",
    "qwk": "aes_ensemble.metrics",
    "sample_path": "aes_ensemble.sample",
    "split": "aes_ensemble.splitting",
    "stack": "aes_ensemble.stacking.stack_workspace",
}
__all__ = [
    "AesError",
    "Ensemble",
    "Workspace",
    "__version__",
    "export_bundle",
    "fit_learner",
    "fit_learners",
    "qwk",
    "sample_path",
    "split",
    "stack",
]


__getattr__ = lazy_getattr(__name__, _PUBLIC)


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_PUBLIC))
