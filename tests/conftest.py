"""Shared fixtures. Tests that need the real corpora skip with a reason when they are absent."""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

DATA_DIR = Path(
    os.environ.get("AES_SHARED_DATA")
    or os.environ.get("AES_DATA_DIR")
    or Path(__file__).resolve().parents[2] / "shared" / "data"
)


def pytest_configure(config: pytest.Config) -> None:
    """Under pytest-xdist each worker gets its share of the cores, as ``fit-base --jobs`` gives
    its workers (``tasks.thread_budget``): N workers each running every core's worth of BLAS,
    OpenMP and torch threads would spend their time switching between them."""
    workers = os.environ.get("PYTEST_XDIST_WORKER_COUNT")
    if workers is not None:
        from aes_ensemble.engine import apply_thread_budget, thread_budget

        apply_thread_budget(thread_budget(int(workers), os.cpu_count() or 1))


def _corpus(name: str) -> Path:
    path = DATA_DIR / name
    if not path.is_dir():
        pytest.skip(
            f"needs ../shared/data (absent in a user's clone): {path} not found "
            "(set AES_SHARED_DATA to the shared data folder)"
        )
    return path


@pytest.fixture(scope="session")
def asap_path() -> Path:
    """The ASAP-AES folder (training_set_rel3.tsv, folds, README.md)."""
    return _corpus("asap-aes")


@pytest.fixture(scope="session")
def ellipse_path() -> Path:
    """The ELLIPSE folder (ELLIPSE_Final_github_test.csv, feedback_prize_ell_train.csv)."""
    return _corpus("ellipse")


@pytest.fixture(scope="session")
def asap_csv_path(asap_path: Path) -> Path:
    """ASAP as a clean UTF-8 CSV."""
    return asap_path / "training_set_rel3.clean.csv"


@pytest.fixture(scope="session")
def asap_tsv_path(asap_path: Path) -> Path:
    """ASAP's original TSV (essay 10534 has an unmatched quote)."""
    return asap_path / "training_set_rel3.tsv"


@pytest.fixture(scope="session")
def asap_folds_path(asap_path: Path) -> Path:
    """The Taghipour & Ng (2016) 5-fold split, ``essay_id,fold``."""
    return asap_path / "folds_taghipour_ng2016.csv"


@pytest.fixture(scope="session")
def ellipse_csv_path(ellipse_path: Path) -> Path:
    """ELLIPSE test release: 2,571 essays, 44 prompts, ``Overall`` 1-5 in half points."""
    return ellipse_path / "ELLIPSE_Final_github_test.csv"


def _skip_reason(report: pytest.TestReport) -> str:
    longrepr = report.longrepr
    reason = longrepr[2] if isinstance(longrepr, tuple) else str(longrepr)
    return reason.removeprefix("Skipped: ")


def pytest_terminal_summary(terminalreporter: Any) -> None:
    """One line per skip reason ("62 tests skipped: needs ../shared/data ..."), not one per test:
    a clean clone skips every test that reads the real corpora."""
    reasons = Counter(_skip_reason(r) for r in terminalreporter.stats.get("skipped", []))
    for reason, count in reasons.most_common():
        terminalreporter.write_line(f"{count} test{'s' if count > 1 else ''} skipped: {reason}")


@dataclass(frozen=True)
class CliResult:
    exit_code: int
    stdout: str
    stderr: str


@pytest.fixture
def run_cli(capsys: pytest.CaptureFixture[str]) -> Callable[..., CliResult]:
    """Run ``aes-ensemble ARGS`` in-process, as a user would, and capture what it prints."""
    from aes_ensemble.cli.main import main

    def run(*args: str | Path) -> CliResult:
        capsys.readouterr()
        code = main([str(a) for a in args])
        out = capsys.readouterr()
        return CliResult(code, out.out, out.err)

    return run


@pytest.fixture
def ellipse_workspace(ellipse_csv_path: Path, tmp_path: Path) -> Callable[..., Path]:
    """A fresh workspace on the first ``n`` ELLIPSE essays (the next ``n_test`` as test essays),
    with ``configs/data.yaml`` and saved prompt-grouped folds; learner configs go in by name."""
    import polars as pl

    from aes_ensemble.data import load_workspace_dataset
    from aes_ensemble.folds import assign_folds, save_folds
    from aes_ensemble.workspace import Workspace

    def make(
        name: str = "ws", *, n: int = 300, n_test: int = 30, n_folds: int = 3, **configs: str
    ) -> Path:
        root = tmp_path / name
        (root / "configs").mkdir(parents=True)
        rows = pl.read_csv(ellipse_csv_path, infer_schema=False).head(n + n_test)
        rows.head(n).write_csv(root / "essays.csv")
        rows.tail(n_test).write_csv(root / "test.csv")
        (root / "configs" / "data.yaml").write_text(
            "train: essays.csv\ntest: test.csv\nformat: ellipse\n", encoding="utf-8"
        )
        for config_name, text in configs.items():
            (root / "configs" / f"{config_name}.yaml").write_text(text, encoding="utf-8")
        ws = Workspace.at(root)
        train, _ = load_workspace_dataset(ws)
        save_folds(ws, assign_folds(train, n_folds, seed=0))
        return root

    return make
