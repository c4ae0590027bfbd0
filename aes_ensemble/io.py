"""Atomic file writes: a reader never sees a half-written file, a crash never truncates one.

Temporary names. Every temporary file or folder is a hidden sibling of its target named
``.TARGET.HOST-PID.RANDOM.KIND`` (KIND ``tmp``: being written; ``old``/``staged``: the runner's
fold replacement, see ``fold_files``). A process killed mid-write leaves one behind; the next run
removes those whose owner is gone (``dead_leftovers``): same host and no process with that pid.
Leftovers of a live process (another fold fitted at the same time) and of other hosts (a shared
network disk) are never touched, since their owner may still be writing them; one whose pid was
reused by an unrelated process waits until that process ends. Hidden files of other names are
not ours and are left alone.

Modes: ``mkstemp`` creates 0600 files; ``atomic_path`` gives the final file what a plain
``open`` would (0666 less the umask), so a teammate or a serving process can read it.
"""

from __future__ import annotations

import codecs
import json
import os
import re
import secrets
import shutil
import socket
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from aes_ensemble.errors import AesError

if TYPE_CHECKING:
    import numpy as np

_LEFTOVER = re.compile(
    r"^\.(?P<target>.+)\.(?P<host>[A-Za-z0-9-]+)-(?P<pid>\d+)\.[A-Za-z0-9_]+\.(?P<kind>tmp|old|staged)$"
)


def _host() -> str:
    return re.sub(r"[^A-Za-z0-9-]", "-", socket.gethostname())[:40] or "host"


def _umask_at_import() -> int:
    mask = os.umask(0o022)  # the only way to read it without /proc; restored at once
    os.umask(mask)
    return mask


_IMPORT_UMASK = _umask_at_import()


def current_umask() -> int:
    """The process's umask, read from /proc (Linux) so that no thread ever sees it changed;
    elsewhere the one read once at import."""
    try:
        with Path("/proc/self/status").open(encoding="ascii") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    return _IMPORT_UMASK


def file_mode() -> int:
    """The mode a plain ``open(path, "w")`` would give a new file."""
    return 0o666 & ~current_umask()


def owner_tag() -> str:
    """``HOST-PID`` of this process, as it appears in its temporary names."""
    return f"{_host()}-{os.getpid()}"


def temp_sibling(target: Path, kind: str) -> Path:
    """A fresh hidden name beside ``target`` for a temporary of this process (not created)."""
    return target.parent / f".{target.name}.{owner_tag()}.{secrets.token_hex(4)}.{kind}"


def make_temp_dir(target: Path) -> Path:
    """A new empty folder beside ``target`` with the mode ``mkdir`` would give it."""
    target.parent.mkdir(parents=True, exist_ok=True)
    folder = Path(
        tempfile.mkdtemp(prefix=f".{target.name}.{owner_tag()}.", suffix=".tmp", dir=target.parent)
    )
    folder.chmod(0o777 & ~current_umask())
    return folder


@contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success it replaces ``path`` in one rename,
    with the mode a plain ``open`` would have given it (mkstemp makes 0600)."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(
        prefix=f".{target.name}.{owner_tag()}.", suffix=".tmp", dir=target.parent
    )
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        tmp_path.chmod(file_mode())
        tmp_path.replace(target)
    finally:
        tmp_path.unlink(missing_ok=True)


def write_text_atomic(path: str | Path, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def write_json_atomic(path: str | Path, data: Any) -> None:
    write_text_atomic(path, json.dumps(data, indent=2, sort_keys=True, default=str) + "\n")


def write_npy_atomic(path: str | Path, array: np.ndarray) -> None:
    """``.npy`` without pickles, so a stranger's file cannot run code when loaded."""
    import numpy as np

    with atomic_path(path) as tmp, tmp.open("wb") as handle:
        np.save(handle, array, allow_pickle=False)


def require_file(path: Path) -> None:
    """A folder or a missing file is an ``AesError`` naming it: cheap enough to check before the
    libraries that read the file are loaded."""
    if path.is_dir():
        raise AesError("is a folder, not a file", path=path)
    if not path.is_file():
        raise AesError("file not found", path=path)


def read_bytes(path: Path) -> bytes:
    """The bytes of a text file (CSV, TSV, JSON); a folder, a missing, unreadable, empty or
    binary file is an ``AesError`` naming it."""
    require_file(path)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise AesError(f"cannot read the file ({exc.strerror})", path=path) from None
    if not raw.removeprefix(codecs.BOM_UTF8).strip():
        raise AesError("file is empty", path=path)
    nul = raw.find(b"\x00")
    if nul >= 0:
        raise AesError(f"binary content (a NUL byte at byte offset {nul}), not text", path=path)
    return raw


def read_json_file(path: Path, *, fix: str = "", error: type[AesError] = AesError) -> Any:
    """A JSON file the toolkit wrote, or None where it is absent; ``error`` naming the file (and
    ``fix``, what to do) where it cannot be read, is not UTF-8 or is not JSON."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise error(f"cannot be read ({exc.strerror}){fix}", path=path) from None
    try:
        return json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError:
        raise error(f"is not UTF-8 text{fix}", path=path) from None
    except json.JSONDecodeError as exc:
        raise error(f"is not JSON ({exc.msg}, line {exc.lineno}){fix}", path=path) from None


def ensure_writable(folder: Path) -> None:
    """Create ``folder`` if needed and prove a file can be made in it, so a command fails in
    one line before its long work rather than after it."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(
            prefix=f".write-probe.{owner_tag()}.", suffix=".tmp", dir=folder
        )
        os.close(fd)
        Path(probe).unlink()
    except OSError as exc:
        raise AesError(
            f"cannot write here (read-only or no permission; {exc.strerror or exc}); "
            "run in a workspace you can write to (--workdir) or fix its permissions",
            path=folder,
        ) from None


@dataclass(frozen=True)
class Leftover:
    """A temporary of a process that is gone: ``path``, the name it stood for, and its kind."""

    path: Path
    target: str
    kind: str


def _alive(pid: int) -> bool:
    """Whether a process ``pid`` exists on this host (a reused pid counts: kept, not lost)."""
    if os.name == "nt":  # os.kill there would end the process: assume every owner lives
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # exists, owned by someone else
        return True
    return True


def dead_leftovers(folder: Path) -> list[Leftover]:
    """Temporaries in ``folder`` (not below it) left by processes of this host that are gone."""
    if not folder.is_dir():
        return []
    host, found = _host(), []
    for entry in sorted(folder.iterdir()):
        match = _LEFTOVER.match(entry.name)
        if match and match["host"] == host and not _alive(int(match["pid"])):
            found.append(Leftover(entry, match["target"], match["kind"]))
    return found


def remove(path: Path) -> None:
    """Delete a file or a folder tree; absent is fine."""
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


def remove_dead_temps(folder: Path, *, recursive: bool = False) -> list[Path]:
    """Delete the ``tmp`` leftovers of dead processes in ``folder`` (and below, if
    ``recursive``); best effort, a folder we cannot write is left as it is."""
    folders = [folder]
    if recursive and folder.is_dir():
        folders += [Path(root) / d for root, dirs, _ in os.walk(folder) for d in dirs]
    removed = []
    for current in folders:
        for leftover in dead_leftovers(current):
            if leftover.kind == "tmp":
                remove(leftover.path)
                removed.append(leftover.path)
    return removed


def is_main_process() -> bool:
    """False in the extra processes of a data-parallel launch (``torchrun`` sets ``RANK``):
    they train alongside rank 0, which alone writes files."""
    return int(os.environ.get("RANK", "0")) == 0
