"""A bundle: the folder that carries a fitted stack to a machine without the training data.

Layout, all relative to the bundle folder::

    manifest.json              what the bundle is and the sha256 and size of every other file
    stack/                     the stack model (meta-learner, cut points, scales, lineage)
    base_models/NAME/fold_K/   each base learner's fitted fold models and their config.yaml
    embeddings/NAME/           sentence-transformers folders the learners embed essays with

``write_bundle`` (called by ``ensemble.export_bundle``) writes it into a temporary folder and
renames it into place at the end, so a failed export leaves nothing half-written;
``verify_bundle`` refuses a bundle whose files were changed, truncated, removed or added since,
or one written by an incompatible aes-ensemble, naming the file. Weights are safetensors, models
native text or JSON: nothing is unpickled.
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
from collections.abc import Iterable, Mapping
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from aes_ensemble.errors import AesError
from aes_ensemble.io import ensure_writable, make_temp_dir, remove, write_json_atomic
from aes_ensemble.store import package_versions
from aes_ensemble.version import __version__

MANIFEST = "manifest.json"
FORMAT_VERSION = 1
STACK_DIR = "stack"
MODELS_DIR = "base_models"
EMBEDDINGS_DIR = "embeddings"
# Hugging Face weight files (``model.safetensors``, ``model-00001-of-00002.safetensors``);
# a transformer's small head stays in full precision under ``--half``.
_WEIGHTS = re.compile(r"^model(-\d+-of-\d+)?\.safetensors$")
_CHUNK = 1 << 20
_AGAIN = "export it again with `aes-ensemble export`"
TRANSFORMER = "transformer"  # the learner kind whose fold folders hold encoder weights


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _files_below(root: Path) -> list[str]:
    """Every file below ``root`` (links and all), as sorted POSIX paths relative to it."""
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if not p.is_dir())


def manifest_fields(
    stack: str, learners: Mapping[str, Mapping[str, Any]], embedding_models: Mapping[str, str]
) -> dict[str, Any]:
    """What a bundle (or a workspace, for ``Ensemble.manifest``) says about itself, files aside."""
    return {
        "format_version": FORMAT_VERSION,
        "package": "aes-ensemble",
        "package_version": __version__,
        "versions": package_versions(),
        "stack": stack,
        "learners": {name: dict(record) for name, record in learners.items()},
        "embedding_models": dict(embedding_models),
    }


def _major_minor(version: str) -> tuple[str, ...]:
    return tuple(version.split(".")[:2])


def _read_manifest(root: Path) -> dict[str, Any]:
    path = root / MANIFEST
    if not root.is_dir():
        raise AesError("bundle folder not found", path=root)
    if not path.is_file():
        raise AesError(
            f"not a bundle: no {MANIFEST} (write one with `aes-ensemble export -w DIR OUT`)",
            path=root,
        )
    try:
        data = json.loads(path.read_bytes().decode("utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise AesError(f"unreadable manifest ({exc}); {_AGAIN}", path=path) from None
    if not isinstance(data, dict):
        raise AesError(f"the manifest is not a JSON object; {_AGAIN}", path=path)
    return data


def _check_compatible(data: Mapping[str, Any], path: Path) -> None:
    fmt = data.get("format_version")
    if fmt != FORMAT_VERSION:
        raise AesError(
            f"bundle format {fmt!r}, but this aes-ensemble ({__version__}) reads format "
            f"{FORMAT_VERSION}; install the aes-ensemble that wrote it "
            f"({data.get('package_version', '?')}) or {_AGAIN}",
            path=path,
            key="format_version",
        )
    version = data.get("package_version")
    if not isinstance(version, str) or _major_minor(version) != _major_minor(__version__):
        raise AesError(
            f"written by aes-ensemble {version}, incompatible with this one ({__version__}); "
            f"install aes-ensemble {version} to score with it, or {_AGAIN}",
            path=path,
            key="package_version",
        )
    for key, kind in (("stack", str), ("learners", dict), ("embedding_models", dict)):
        if not isinstance(data.get(key), kind):
            raise AesError(f"missing or malformed; {_AGAIN}", path=path, key=key)


def _listed_files(data: Mapping[str, Any], path: Path) -> dict[str, tuple[str, int]]:
    files = data.get("files")
    if not isinstance(files, dict) or not files:
        raise AesError(f"lists no files; {_AGAIN}", path=path, key="files")
    listed: dict[str, tuple[str, int]] = {}
    for name, entry in files.items():
        parts = Path(name).parts
        if Path(name).is_absolute() or ".." in parts or name == MANIFEST:
            raise AesError(f"names a file outside the bundle: '{name}'", path=path, key="files")
        if not (
            isinstance(entry, dict)
            and isinstance(entry.get("sha256"), str)
            and isinstance(entry.get("size"), int)
        ):
            raise AesError(f"malformed entry for '{name}'; {_AGAIN}", path=path, key="files")
        listed[name] = (entry["sha256"], entry["size"])
    return listed


def verify_bundle(path: str | Path) -> dict[str, Any]:
    """The bundle's manifest, once every file is as exported: none missing, extra, truncated or
    changed, and the format and package version readable by this aes-ensemble."""
    root = Path(path).expanduser().resolve()
    data = _read_manifest(root)
    manifest_path = root / MANIFEST
    _check_compatible(data, manifest_path)
    listed = _listed_files(data, manifest_path)
    present = set(_files_below(root)) - {MANIFEST}
    extra = sorted(present - set(listed))
    if extra:
        raise AesError(
            f"extra file, not in the bundle's manifest ({len(extra)} in all); remove it, or "
            f"{_AGAIN}",
            path=root / extra[0],
        )
    for name, (sha, size) in sorted(listed.items()):
        file = root / name
        if name not in present:
            raise AesError(
                f"missing from the bundle; copy the whole folder again or {_AGAIN}", path=file
            )
        actual = file.stat().st_size
        if actual != size:
            raise AesError(
                f"{actual} bytes, the manifest says {size} (truncated or replaced); copy the "
                f"bundle again or {_AGAIN}",
                path=file,
            )
        if sha256_of(file) != sha:
            raise AesError(
                f"changed since export (sha256 differs from the manifest); copy the bundle "
                f"again or {_AGAIN}",
                path=file,
            )
    return data


def _copy_tree(source: Path, target: Path) -> None:
    """``source`` into ``target``, leaving out hidden names (another process's temporaries)."""
    shutil.copytree(source, target, ignore=lambda _, names: [n for n in names if n.startswith(".")])


def _to_half(folder: Path) -> None:
    """Store the floating-point weights of every Hugging Face weight file in ``folder`` as fp16.
    Loaders read them back into the model's float32, so only storage shrinks."""
    import torch
    from safetensors import safe_open
    from safetensors.torch import load_file, save_file

    for file in sorted(p for p in folder.rglob("*.safetensors") if _WEIGHTS.match(p.name)):
        with safe_open(str(file), framework="pt") as handle:
            metadata = handle.metadata()
        tensors = load_file(str(file))
        halved = {
            key: t.to(torch.float16) if t.dtype == torch.float32 else t
            for key, t in tensors.items()
        }
        save_file(halved, str(file), metadata=metadata)


def _keep_float32_on_load(folder: Path) -> None:
    """A model config without a dtype is loaded in the dtype of its weights by transformers >= 5:
    name float32 so fp16-stored weights still compute in float32, as they were fitted."""
    for config in folder.rglob("config.json"):
        data = json.loads(config.read_text(encoding="utf-8"))
        if data.get("model_type") and not (data.get("dtype") or data.get("torch_dtype")):
            data["torch_dtype"] = "float32"
            config.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")


def safe_folder_name(name: str) -> str:
    """A model name (``sentence-transformers/all-MiniLM-L6-v2``) as one folder name."""
    return re.sub(r"[^A-Za-z0-9._-]", "_", name).strip("._") or "model"


def write_bundle(
    out: Path,
    *,
    stack_dir: Path,
    learner_dirs: Mapping[str, Iterable[Path]],
    embedding_dirs: Mapping[str, Path],
    manifest: Mapping[str, Any],
    half: bool,
    half_learners: Iterable[str] = (),
) -> Path:
    """Copy what scoring needs into a temporary folder beside ``out``, hash every file, write the
    manifest and rename the folder to ``out``: it appears complete or not at all.

    ``learner_dirs``: each learner's fold folders; ``embedding_dirs``: a model name in a config
    -> its local folder; with ``half``, the weights of those folders and of ``half_learners``'
    folds (transformers) are stored in fp16."""
    target = out.expanduser().resolve()
    if target.exists() and not (target.is_dir() and not any(target.iterdir())):
        raise AesError("already exists; export into a new folder (or delete this one)", path=target)
    ensure_writable(target.parent)
    tmp = make_temp_dir(target)
    try:
        _copy_tree(stack_dir, tmp / STACK_DIR)
        for name, folds in learner_dirs.items():
            for fold in folds:
                _copy_tree(fold, tmp / MODELS_DIR / name / fold.name)
        shipped: dict[str, str] = {}
        for model_name, folder in embedding_dirs.items():
            relative = f"{EMBEDDINGS_DIR}/{safe_folder_name(model_name)}"
            _copy_tree(folder, tmp / relative)
            shipped[model_name] = relative
        if half:
            halved = [tmp / EMBEDDINGS_DIR, *(tmp / MODELS_DIR / n for n in half_learners)]
            for folder in halved:
                _to_half(folder)
                _keep_float32_on_load(folder)
        files = {
            name: {"sha256": sha256_of(tmp / name), "size": (tmp / name).stat().st_size}
            for name in _files_below(tmp)
        }
        data = {
            **manifest,
            "embedding_models": shipped,
            "half": half,
            "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "files": files,
        }
        write_json_atomic(tmp / MANIFEST, data)
        if target.is_dir():
            target.rmdir()  # empty, checked above: the rename below takes its place
        tmp.rename(target)
    except OSError as exc:
        raise AesError(
            f"could not write the bundle ({exc.strerror or exc}); nothing was written. Free disk "
            "space or fix permissions, then export again",
            path=target,
        ) from exc
    finally:
        remove(tmp)
    return target
