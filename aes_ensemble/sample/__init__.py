"""Real essays shipped with the package (an ELLIPSE subset, CC BY-NC-SA 4.0; see
LICENSE-ELLIPSE.md beside them), so the demo and the tests run with no data of the user's own."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from aes_ensemble.errors import AesError, did_you_mean

TRAIN = "ellipse_train.csv"
TEST = "ellipse_test.csv"
LICENSE = "LICENSE-ELLIPSE.md"


def sample_path(name: str) -> Path:
    """Filesystem path of a shipped sample file, e.g. ``sample_path("ellipse_train.csv")``."""
    folder = resources.files(__name__)
    entry = folder / name
    if not entry.is_file():
        known = [e.name for e in folder.iterdir() if e.name.endswith((".csv", ".md"))]
        raise AesError(f"no sample file named '{name}'{did_you_mean(name, known)}")
    return Path(str(entry))
