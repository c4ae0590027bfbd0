"""Set up a virtual environment and run one of the project's jobs, on a machine with only Python.

    python3 scripts/dev.py demo        # the main job end to end on the embedded essay sample
    python3 scripts/dev.py tests       # the test suite (nox -s tests)
    python3 scripts/dev.py nox -s lint # any nox session

Why a script: a plain ``pip install`` of torch on a Linux machine without a GPU pulls a
multi-GB CUDA build. This script installs the CPU build first where no NVIDIA driver is found
(from pip's local wheel folder when the machine has one, else from the PyTorch CPU index), then
the project, so the rest resolves against the torch already there. A GPU machine gets torch from
PyPI as usual.

The demo and the tests run with HOME, the XDG cache, config, data and state folders and
PyTorch's compile cache pointed at a fresh empty folder, removed afterwards: what an earlier run
left behind (a Ray token, a model cache, compiled kernels) cannot make them pass here and fail on
a user's new machine. The set-up before them uses the real home, so pip's and uv's download
caches still serve it.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VENV = ROOT / ".venv"
TORCH_CPU_VERSION = "2.13.0"
TORCH_CPU_INDEX = "https://download.pytorch.org/whl/cpu"


def venv_bin(name: str) -> Path:
    return VENV / ("Scripts" if os.name == "nt" else "bin") / name


def has_nvidia_gpu() -> bool:
    if os.environ.get("AES_FORCE_CPU") == "1":
        return False
    smi = shutil.which("nvidia-smi")
    if smi is None:
        return False
    return subprocess.run([smi, "-L"], capture_output=True).returncode == 0


def pip_find_links() -> list[str]:
    """Local wheel folders pip is configured with (a machine without internet keeps torch there)."""
    out = subprocess.run(
        [sys.executable, "-m", "pip", "config", "list"], capture_output=True, text=True
    ).stdout
    folders = []
    for line in out.splitlines():
        key, _, value = line.partition("=")
        if key.endswith("find-links"):
            folders += [v for v in value.strip().strip("'\"").split() if Path(v).is_dir()]
    return list(dict.fromkeys(folders))


def run(*cmd: str | Path) -> None:
    print("+", " ".join(map(str, cmd)), flush=True)
    subprocess.run([str(c) for c in cmd], check=True, cwd=ROOT)


def torch_install_args() -> list[str]:
    if has_nvidia_gpu():
        return ["torch"]
    local = pip_find_links()
    for folder in local:
        if any(Path(folder).glob(f"torch-{TORCH_CPU_VERSION}+cpu-*.whl")):
            return [f"torch=={TORCH_CPU_VERSION}", "--find-links", folder]
    return ["torch", "--index-url", TORCH_CPU_INDEX]


def ensure_venv() -> None:
    """Create .venv once with torch (CPU build without a GPU), the project and its dev tools."""
    marker = VENV / ".aes-ensemble-installed"
    stamp = (ROOT / "pyproject.toml").read_bytes()
    if marker.exists() and marker.read_bytes() == stamp:
        return
    if not venv_bin("python").exists():
        venv.create(VENV, with_pip=True)
    py = venv_bin("python")
    run(py, "-m", "pip", "install", "--quiet", "--upgrade", "pip", "uv")
    # Bytecode now: the machine may set PYTHONDONTWRITEBYTECODE, and without .pyc files every
    # process compiles scikit-learn, torch and transformers anew (a CLI call 8 s instead of 4).
    uv = [py, "-m", "uv", "pip", "install", "--quiet", "--compile-bytecode", "--python", py]
    run(*uv, *torch_install_args())
    local = [arg for folder in pip_find_links() for arg in ("--find-links", folder)]
    run(*uv, *local, "-e", ".[dev]", "nox")
    marker.write_bytes(stamp)


def empty_home(env: dict[str, str], home: Path) -> dict[str, str]:
    """``env`` with the home, the XDG folders and PyTorch's compile cache (kept in /tmp by
    default, not in the home) inside ``home``, an empty folder."""
    folders = {
        "XDG_CACHE_HOME": ".cache",
        "XDG_CONFIG_HOME": ".config",
        "XDG_DATA_HOME": ".local/share",
        "XDG_STATE_HOME": ".local/state",
        "TORCHINDUCTOR_CACHE_DIR": ".cache/torchinductor",
    }
    return {**env, "HOME": str(home), **{key: str(home / sub) for key, sub in folders.items()}}


def run_with_empty_home(cmd: list[str], env: dict[str, str]) -> int:
    with tempfile.TemporaryDirectory(prefix="aes-empty-home-", ignore_cleanup_errors=True) as home:
        print(f"+ HOME={home} (empty, removed afterwards)", flush=True)
        return subprocess.run(cmd, cwd=ROOT, env=empty_home(env, Path(home))).returncode


def main(argv: list[str]) -> int:
    if not argv or argv[0] in {"-h", "--help"}:
        print(__doc__)
        return 0
    ensure_venv()
    job, rest = argv[0], argv[1:]
    env = {**os.environ, "VIRTUAL_ENV": str(VENV)}
    env["PATH"] = f"{venv_bin('python').parent}{os.pathsep}{env['PATH']}"
    if job == "demo":
        return run_with_empty_home([str(venv_bin("aes-ensemble")), "demo", *rest], env)
    if job == "tests":
        nox = [str(venv_bin("nox")), "-s", "tests", *(["--", *rest] if rest else [])]
        return run_with_empty_home(nox, env)
    if job == "nox":
        cmd = [str(venv_bin("nox")), *rest]
    else:
        print(f"error: unknown job {job!r}; choose demo, tests or nox", file=sys.stderr)
        return 2
    return subprocess.run(cmd, cwd=ROOT, env=env).returncode


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
