"""Per-text feature cache: features of an essay are computed once, reused by folds and learners.

Layout: ``<cache_dir>/<kind>/<config_key>/`` holds immutable shards, each a pair
``shard-<id>.npy`` (float32 rows) and ``shard-<id>.json`` (the sha256 of each row's text). The
index is written after the array and is the commit marker, so a reader never sees half a shard.
Every writer adds its own new shard and never rewrites one, so two processes filling the same
folder at once (two folds fitted in parallel) lose nothing; readers merge all shards. No pickles.
Without a directory, rows live in memory for the enclosing ``shared.shared_features()`` block.
"""

from __future__ import annotations

import hashlib
import json
import re
import uuid
from collections.abc import Callable, Mapping
from pathlib import Path

import numpy as np

from aes_ensemble.errors import AesError
from aes_ensemble.features.shared import active
from aes_ensemble.io import write_json_atomic, write_npy_atomic

_SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


def text_hash(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _folder_name(name: str) -> str:
    """``name`` if it is a safe folder name, else a digest of it (config keys may hold ``/``)."""
    if _SAFE_NAME.match(name):
        return name
    return "h-" + hashlib.sha256(name.encode("utf-8")).hexdigest()[:16]


def _missing(
    known: Mapping[str, np.ndarray], hashes: list[str], texts: list[str]
) -> dict[str, str]:
    """Text hash -> text of each distinct text ``known`` lacks, in order of first occurrence."""
    missing: dict[str, str] = {}
    for h, t in zip(hashes, texts, strict=True):
        if h not in known and h not in missing:
            missing[h] = t
    return missing


def _damaged_shard(path: Path, partner: Path, why: str) -> AesError:
    """A shard that cannot be read, named with its fix: the cache only saves time, so deleting
    the pair costs one recomputation of those essays' features."""
    return AesError(
        f"damaged feature cache shard ({why}); delete it and {partner.name} beside it, and "
        "the next run computes those features again",
        path=path,
    )


class FeatureCache:
    """Cache of float32 feature rows keyed by (kind, config_key, sha256 of the text).

    ``cache_dir=None`` caches nothing on disk: ``get_or_compute`` computes, keeping rows only for
    the enclosing ``shared_features()`` block, if any.
    """

    def __init__(self, cache_dir: Path | str | None) -> None:
        self.cache_dir = None if cache_dir is None else Path(cache_dir)
        # Shards are immutable, so arrays read once stay valid for the life of the process.
        self._shards: dict[Path, tuple[list[str], np.ndarray]] = {}

    def folder(self, kind: str, config_key: str) -> Path:
        if self.cache_dir is None:
            raise ValueError("this FeatureCache has no directory")
        return self.cache_dir / _folder_name(kind) / _folder_name(config_key)

    def get_or_compute(
        self,
        kind: str,
        config_key: str,
        texts: list[str],
        compute: Callable[[list[str]], np.ndarray],
    ) -> np.ndarray:
        """Rows for ``texts`` (in order, float32); ``compute`` runs only on texts not cached yet.

        Repeated texts are computed once. ``compute`` must return one row per text it is given.
        """
        scope = active() if self.cache_dir is None else None
        if self.cache_dir is None and (scope is None or not texts):
            return self._checked(compute(list(texts)), len(texts), kind)
        hashes = [text_hash(t) for t in texts]
        if scope is not None:
            known = scope.rows.setdefault((kind, config_key), {})
            missing = _missing(known, hashes, texts)
            if missing:
                new = self._checked(compute(list(missing.values())), len(missing), kind)
                known.update(zip(missing, new, strict=True))
            return np.stack([known[h] for h in hashes])
        folder = self.folder(kind, config_key)
        known = self._index(folder)
        missing = _missing(known, hashes, texts)
        if missing:
            new = self._checked(compute(list(missing.values())), len(missing), kind)
            self._write_shard(folder, kind, config_key, list(missing), new)
            known = self._index(folder)
        if not texts:
            return np.zeros((0, self._dim(folder)), dtype=np.float32)
        return np.stack([known[h] for h in hashes]).astype(np.float32, copy=False)

    def _checked(self, rows: np.ndarray, n: int, kind: str) -> np.ndarray:
        array = np.asarray(rows, dtype=np.float32)
        if array.ndim != 2 or array.shape[0] != n:
            raise ValueError(f"{kind} features: expected {n} rows, got shape {array.shape}")
        return array

    def _dim(self, folder: Path) -> int:
        meta = folder / "meta.json"
        return int(json.loads(meta.read_text())["dim"]) if meta.is_file() else 0

    def _index(self, folder: Path) -> dict[str, np.ndarray]:
        """Text hash -> row view, merged over every committed shard (sorted: stable choice)."""
        rows: dict[str, np.ndarray] = {}
        if not folder.is_dir():
            return rows
        for index_path in sorted(folder.glob("shard-*.json")):
            hashes, array = self._load_shard(index_path)
            for h, row in zip(hashes, array, strict=True):
                rows.setdefault(h, row)
        return rows

    def _load_shard(self, index_path: Path) -> tuple[list[str], np.ndarray]:
        if index_path not in self._shards:
            array_path = index_path.with_suffix(".npy")
            try:
                hashes = json.loads(index_path.read_text(encoding="utf-8"))["hashes"]
            except (OSError, ValueError, KeyError) as exc:
                raise _damaged_shard(index_path, array_path, str(exc)) from None
            try:
                array = np.load(array_path, allow_pickle=False)
            except (OSError, ValueError) as exc:
                raise _damaged_shard(array_path, index_path, str(exc)) from None
            if array.ndim != 2 or array.shape[0] != len(hashes):
                why = f"{len(hashes)} hashes but array shape {array.shape}"
                raise _damaged_shard(array_path, index_path, why)
            self._shards[index_path] = (hashes, array)
        return self._shards[index_path]

    def _write_shard(
        self, folder: Path, kind: str, config_key: str, hashes: list[str], rows: np.ndarray
    ) -> None:
        dim = self._dim(folder)
        if dim and rows.shape[1] != dim:
            raise AesError(
                f"{kind} features have {rows.shape[1]} columns but the cache holds {dim}; "
                "the feature code changed without a new config key",
                path=folder,
            )
        folder.mkdir(parents=True, exist_ok=True)
        if not dim:
            write_json_atomic(
                folder / "meta.json", {"kind": kind, "config_key": config_key, "dim": rows.shape[1]}
            )
        stem = f"shard-{uuid.uuid4().hex}"
        write_npy_atomic(folder / f"{stem}.npy", np.ascontiguousarray(rows, dtype=np.float32))
        write_json_atomic(folder / f"{stem}.json", {"hashes": hashes})
