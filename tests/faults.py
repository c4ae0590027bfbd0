"""Fault injection for the reliability tests; every hook lives here, none in the package.

(a) ``run_killed``: run ``aes-ensemble ARGS`` in a subprocess that kills itself with SIGKILL
    when a named function (``module:Qualified.name``) is called for the ``nth`` time, before or
    after the call runs: a ``kill -9`` at a chosen stage, with nothing cleaned up.
(b) ``fail_writes``: make every temporary write whose file name contains a given text fail
    with ``OSError(ENOSPC)`` after writing a few bytes, as a full disk does.
(c) ``reachable_folder``, ``make_read_only`` and ``run_read_only``: a workspace nobody may write,
    and a command run against it as a user the permissions hold for (root writes through chmod,
    so as root the command runs as ``nobody``).

Run as a script, this file is the launcher of (a):
``python tests/faults.py MODULE:NAME NTH before|after -- ARGS...``.
"""

from __future__ import annotations

import errno
import importlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pytest

LAUNCHER = Path(__file__).resolve()
# Modules that import the functions a test may kill at (``from x import name``).
USERS = ("aes_ensemble.cli.fit_commands", "aes_ensemble.fold_fit", "aes_ensemble.fold_files")


def run_killed(
    args: list[str | Path], at: str, *, nth: int = 1, when: str = "before", timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """Run ``aes-ensemble ARGS``, killed at the ``nth`` call of ``at``; asserts it was killed."""
    cmd = [sys.executable, str(LAUNCHER), at, str(nth), when, "--", *map(str, args)]
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)
    assert result.returncode == -signal.SIGKILL, (
        f"expected a kill at {at} (call {nth}), got exit {result.returncode}: {result.stderr}"
    )
    return result


def _resolve(target: str) -> tuple[Any, str]:
    """The object owning the attribute named by ``module:Qualified.name``, and its name."""
    module_name, qualname = target.split(":")
    owner: Any = importlib.import_module(module_name)
    *path, attr = qualname.split(".")
    for part in path:
        owner = getattr(owner, part)
    return owner, attr


def _patch_everywhere(owner: Any, attr: str, nth: int, when: str) -> None:
    """Replace ``owner.attr`` and every ``from x import attr`` copy in the package's modules."""
    original = getattr(owner, attr)
    calls = 0

    def killer(*args: Any, **kwargs: Any) -> Any:
        nonlocal calls
        calls += 1
        if calls == nth and when == "before":
            os.kill(os.getpid(), signal.SIGKILL)
        result = original(*args, **kwargs)
        if calls == nth and when == "after":
            os.kill(os.getpid(), signal.SIGKILL)
        return result

    setattr(owner, attr, killer)
    for name, module in list(sys.modules.items()):
        if module is None or not name.startswith("aes_ensemble"):
            continue
        for key, value in list(vars(module).items()):
            if value is original:
                setattr(module, key, killer)


def _launch(argv: list[str]) -> int:
    target, nth, when, separator, *args = argv
    assert separator == "--" and when in ("before", "after"), argv
    from aes_ensemble.cli.main import main

    for module in USERS:  # imported first, so their copies of the name are patched too
        importlib.import_module(module)
    owner, attr = _resolve(target)
    _patch_everywhere(owner, attr, int(nth), when)
    return main(args)


def fail_writes(monkeypatch: pytest.MonkeyPatch, name_part: str) -> list[Path]:
    """Make temporary writes (hidden ``.NAME...`` files) whose name contains ``name_part`` fail
    with ENOSPC after a few bytes, for Parquet (pyarrow) and text/JSON/YAML (``Path``) writes.
    Returns the list of paths that failed, filled as it happens (a test asserts it fired)."""
    import pyarrow.parquet as pq

    failed: list[Path] = []
    original_text, original_bytes = Path.write_text, Path.write_bytes

    def hit(path: Any) -> bool:
        name = Path(str(path)).name
        return name.startswith(".") and name_part in name

    def full_disk(path: Any) -> None:
        original_bytes(
            Path(str(path)), b"PAR1 half"
        )  # the bytes that fitted before the disk filled
        failed.append(Path(str(path)))
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))

    def wrap(original: Callable[..., Any], path_of: Callable[..., Any]) -> Callable[..., Any]:
        def writer(*args: Any, **kwargs: Any) -> Any:
            path = path_of(*args, **kwargs)
            if hit(path):
                full_disk(path)
            return original(*args, **kwargs)

        return writer

    monkeypatch.setattr(pq, "write_table", wrap(pq.write_table, lambda table, where, **_: where))
    monkeypatch.setattr(Path, "write_text", wrap(original_text, lambda self, *_, **__: self))
    monkeypatch.setattr(Path, "write_bytes", wrap(original_bytes, lambda self, *_, **__: self))
    return failed


if __name__ == "__main__":
    sys.exit(_launch(sys.argv[1:]))


NOBODY = 65534


@contextmanager
def reachable_folder() -> Iterator[Path]:
    """A temporary folder another user can enter (pytest's own are 0700 for root)."""
    folder = Path(tempfile.mkdtemp(prefix="aes-readonly-"))
    folder.chmod(0o755)
    try:
        yield folder
    finally:
        for path in [folder, *folder.rglob("*")]:
            if path.is_dir():
                path.chmod(0o755)
        shutil.rmtree(folder, ignore_errors=True)


def make_read_only(root: Path) -> None:
    """Folders 0555 and files 0444 under ``root``, ``root`` included."""
    for path in [root, *root.rglob("*")]:
        path.chmod(0o555 if path.is_dir() else 0o444)


def run_read_only(args: Sequence[str | Path], home: Path) -> subprocess.CompletedProcess[str]:
    """Run ``args`` as a user the permissions hold for (``nobody`` when we are root); skip the
    test, with the reason, where this machine cannot start a process as another user."""
    import pytest

    drop: Callable[[], None] | None = None
    if os.geteuid() == 0:

        def drop() -> None:
            os.setgid(NOBODY)
            os.setuid(NOBODY)

    env = {**os.environ, "HOME": str(home), "COLUMNS": "200"}
    try:
        return subprocess.run(
            [str(a) for a in args],
            capture_output=True,
            text=True,
            env=env,
            preexec_fn=drop,  # the test process is single-threaded
            timeout=120,
            check=False,
        )
    except (PermissionError, subprocess.SubprocessError) as exc:
        pytest.skip(f"cannot run a process as another user here ({exc})")
