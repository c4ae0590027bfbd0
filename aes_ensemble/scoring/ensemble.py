"""A fitted stack that scores new essays: every base learner's fold models (mean over folds, as
the test rows were made), then the saved meta-learner and its final cut points.

``Ensemble.load`` takes a workspace (the stack must still be current: its learners not refit
since, its saved model the one its predictions came from) or a bundle (verified file by file
first, see ``bundle``). ``score`` takes texts, ``Essays`` or a polars frame and returns
``essay_id, score``, the very numbers ``predict`` writes for the workspace's own test file.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from aes_ensemble.config import read_yaml
from aes_ensemble.data import (
    CORE_SCHEMA,
    Essays,
    check_unique_ids,
    data_fingerprint,
    load_workspace_dataset,
)
from aes_ensemble.errors import AesError, did_you_mean
from aes_ensemble.features.shared import shared_features
from aes_ensemble.fold_files import CONFIG_FILE, read_record
from aes_ensemble.scales import ScoreScales
from aes_ensemble.scoring.bundle import (
    MANIFEST,
    MODELS_DIR,
    STACK_DIR,
    TRANSFORMER,
    manifest_fields,
    verify_bundle,
    write_bundle,
)
from aes_ensemble.scoring.learners import FittedLearner, fold_dirs, load_learner
from aes_ensemble.stacking.lineage import (
    COMPARED,
    INPUTS_KEY,
    check_stack_current,
    remake_command,
)
from aes_ensemble.stacking.model import StackModel, stack_model_dir
from aes_ensemble.stacking.oof_import import IMPORTED_LEARNER
from aes_ensemble.stacking.run import STACK_LEARNER
from aes_ensemble.stacking.stack_workspace import single_stack
from aes_ensemble.store import PredictionStore, prediction_digest
from aes_ensemble.workspace import Workspace

EssaysLike = Essays | Sequence[str] | pl.DataFrame
# Learner record fields a fold's done.json must share with the stack's lineage of the learner.
_FOLD_FIELDS = ("config_hash", "folds_hash", "data_hash")


@dataclass(frozen=True)
class Ensemble:
    """A loaded stack and where its learners' fold models are. ``cache_dir``: the workspace's
    feature cache (its own essays are then read, not recomputed: the test file scores exactly
    as ``predict``); ``embedding_models``: a config's embedding model name -> the folder a
    bundle ships it in; ``notes``: what could not be checked (files that record too little)."""

    model: StackModel
    models_dir: Path
    stack_dir: Path
    manifest: dict[str, Any]
    cache_dir: Path | None = None
    embedding_models: Mapping[str, Path] = field(default_factory=dict)
    notes: tuple[str, ...] = ()
    _fitted: dict[str, FittedLearner] = field(default_factory=dict, repr=False, compare=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    @property
    def learners(self) -> tuple[str, ...]:
        return self.model.learners

    @property
    def stack_name(self) -> str:
        return self.model.name

    @property
    def scales(self) -> ScoreScales:
        return self.model.scales

    @classmethod
    def load(cls, path: str | Path, stack: str | None = None) -> Ensemble:
        """The stack of a bundle (``path`` holds ``manifest.json``) or of a workspace: the only
        stack in ``oof/``, or ``stack``."""
        root = Path(path).expanduser().resolve()
        if (root / MANIFEST).is_file():
            return _load_bundle(root, stack)
        if not root.is_dir():
            raise AesError("no workspace or bundle folder here", path=root)
        return _load_workspace(Workspace.at(root), stack)

    @classmethod
    def from_bundle(cls, path: str | Path, stack: str | None = None) -> Ensemble:
        """The stack of the bundle at ``path``; a folder that is no bundle is an error."""
        return _load_bundle(Path(path).expanduser().resolve(), stack)

    def embedding_folders(self) -> dict[str, Path]:
        """Each embedding model the learners name -> the local folder it loads from."""
        names = {
            model
            for record in self.manifest["learners"].values()
            if (model := _embedding_model(record["config"])) is not None
        }
        return {name: self.embedding_models.get(name) or _local_model(name) for name in names}

    def score(
        self, essays: EssaysLike, *, explain: bool = False, progress: bool = False
    ) -> pl.DataFrame:
        """``essay_id, score`` (the levels ``predict`` would write); with ``explain`` also
        ``pred`` (the stack's continuous score) and one column per base learner (its fold-mean
        prediction on the score scale)."""
        items = as_essays(essays)
        self._check_prompts(items)
        with shared_features():  # every learner's folds share each essay's features
            base = {n: self.fitted(n).predict(items, progress=progress) for n in self.learners}
        prompts = items.prompts
        pred = self.model.predict(base, items.texts, prompts)
        levels = self.model.levels(pred, prompts)
        columns: dict[str, Any] = {"essay_id": items.ids, "score": levels}
        if explain:
            columns["pred"] = pred
            columns |= {name: np.asarray(base[name].pred, dtype=float) for name in self.learners}
        return pl.DataFrame(columns).with_columns(pl.col("essay_id").cast(pl.String))

    def unseen_prompts(self, prompts: Sequence[str | None] | np.ndarray) -> tuple[str | None, ...]:
        """The prompts of ``prompts`` that ``score`` standardises over their batch: those none
        of the stack's training essays had, where it was made with ``unseen_prompts:
        standardise`` (None stands for essays without a prompt); empty otherwise."""
        calibration = self.model.calibration
        return () if calibration is None else tuple(calibration.unseen(prompts))

    def fitted(self, name: str) -> FittedLearner:
        """Learner ``name``'s fold models, loaded on first use and kept: a server loads once
        and answers many requests (the lock keeps concurrent first calls to one load)."""
        with self._lock:
            if name not in self._fitted:
                self._fitted[name] = load_learner(
                    self.models_dir,
                    name,
                    cache_dir=self.cache_dir,
                    embedding_models=self.embedding_models or None,
                )
            return self._fitted[name]

    def _check_prompts(self, essays: Essays) -> None:
        """Where the stack's scales are per prompt, an essay of another prompt has no scale."""
        if not self.scales.is_per_prompt or self.scales.default is not None:
            return
        known = sorted(self.scales.per_prompt)
        for row, prompt in enumerate(essays.prompts, start=1):
            if prompt not in self.scales.per_prompt:
                raise AesError(
                    f"essay '{essays.ids[row - 1]}' has prompt {prompt!r}, which the stack "
                    f"'{self.stack_name}' has no model for (known prompts: {', '.join(known)})",
                    path=essays.path,
                    row=row,
                )


def as_essays(essays: EssaysLike) -> Essays:
    """``Essays`` as given; a list of texts (ids ``"0"``, ``"1"``, ...); or a frame with
    ``essay_id, full_text`` and optionally ``prompt`` (no scores needed). Empty input, empty
    ids or texts and repeated ids are errors naming the row."""
    if isinstance(essays, Essays):
        frame, path = essays.frame, essays.path
    elif isinstance(essays, pl.DataFrame):
        frame, path = _frame_essays(essays), None
    elif isinstance(essays, str):
        raise AesError("give a list of essay texts, not one string")
    else:
        texts = list(essays)
        if not all(isinstance(t, str) for t in texts):
            raise AesError("essays must be texts (str), an Essays or a polars frame")
        frame = pl.DataFrame(
            {"essay_id": [str(i) for i in range(len(texts))], "full_text": texts},
            schema={"essay_id": pl.String, "full_text": pl.String},
        )
        frame, path = _frame_essays(frame), None
    if frame.height == 0:
        raise AesError("no essays to score", path=path)
    indexed = frame.with_row_index("_row", offset=1)
    bad = indexed.filter(pl.col("essay_id").is_null() | (pl.col("essay_id") == "")).head(1)
    if bad.height:
        raise AesError("essay_id is empty", path=path, row=int(bad["_row"][0]))
    check_unique_ids(indexed, path or Path("essays"))
    empty = indexed.filter(
        pl.col("full_text").is_null() | (pl.col("full_text").str.strip_chars() == "")
    ).head(1)
    if empty.height:
        raise AesError(
            f"essay text is empty (essay_id '{empty['essay_id'][0]}')",
            path=path,
            row=int(empty["_row"][0]),
        )
    return essays if isinstance(essays, Essays) else Essays(frame, ScoreScales(), path)


def _frame_essays(frame: pl.DataFrame) -> pl.DataFrame:
    """A user's frame in the essays schema; ``essay_id`` and ``full_text`` are required."""
    missing = [c for c in ("essay_id", "full_text") if c not in frame.columns]
    if missing:
        raise AesError(
            f"the essays frame lacks column '{missing[0]}'{did_you_mean(missing[0], frame.columns)}"
            "; it needs essay_id and full_text (prompt optional)"
        )
    return frame.select(
        pl.col("essay_id").cast(pl.String),
        pl.col("full_text").cast(pl.String),
        *[
            (pl.col(c) if c in frame.columns else pl.lit(None)).cast(t).alias(c)
            for c, t in CORE_SCHEMA.items()
            if c not in ("essay_id", "full_text")
        ],
    )


def _embedding_model(config: Mapping[str, Any]) -> str | None:
    """The sentence-transformers model a learner config embeds essays with, if any."""
    features = config.get("features")
    embeddings = features.get("embeddings") if isinstance(features, dict) else None
    if not isinstance(embeddings, dict):
        return None
    from aes_ensemble.features.embeddings import DEFAULT_MODEL

    model = embeddings.get("model", DEFAULT_MODEL)
    return model if isinstance(model, str) else None


def _local_model(name: str) -> Path:
    """The folder a sentence-transformers model loads from here: the shipped MiniLM, a local
    path, or a copy in the Hugging Face cache."""
    from aes_ensemble.features.embeddings import resolve_model

    local = Path(resolve_model(name))
    if local.is_dir():
        return local
    try:
        from huggingface_hub import snapshot_download

        return Path(snapshot_download(name, local_files_only=True))
    except Exception:  # any failure means one thing here: no local copy to ship
        raise AesError(
            f"embedding model '{name}' is neither a local folder nor in the Hugging Face cache; "
            "download it once (or name a local folder in the learner's config) and export again",
            key="features.embeddings.model",
        ) from None


def _learner_records(
    model: StackModel, models_dir: Path, *, bundle: bool
) -> dict[str, dict[str, Any]]:
    """Per learner: kind, config, its hashes when stacked and its number of folds. Every fold's
    ``done.json`` must match the stack's lineage: a fold refit since makes the stack stale."""
    records: dict[str, dict[str, Any]] = {}
    again = f"run {model.remake or 'aes-ensemble stack'} again"
    for name in model.learners:
        lineage = model.lineage[name]
        folds = fold_dirs(models_dir, name)
        if not folds:
            raise AesError(
                f"learner '{name}' of stack '{model.name}' has no fitted fold models",
                path=models_dir / name,
            )
        for folder in folds:
            record = read_record(folder)
            assert record is not None  # fold_dirs refuses a fold without its done.json
            changed = [f for f in _FOLD_FIELDS if getattr(record, f) != lineage.get(f, "")]
            if changed:
                what = changed[0].replace("_", " ")
                raise AesError(
                    f"learner '{name}' was refit since stack '{model.name}' was made ({what} "
                    f"differs); {'export the bundle again' if bundle else f'restack: {again}'}",
                    path=folder,
                )
        config = read_yaml(folds[0] / CONFIG_FILE)
        records[name] = {
            "kind": str(config.get("kind", "")),
            "config": config,
            **{key: lineage.get(key, "") for key in _FOLD_FIELDS},
            "folds": len(folds),
        }
    return records


def _load_bundle(root: Path, stack: str | None) -> Ensemble:
    manifest = verify_bundle(root)
    if stack is not None and stack != manifest["stack"]:
        raise AesError(
            f"this bundle holds stack '{manifest['stack']}', not '{stack}'; drop --stack or "
            "export the stack you want",
            path=root / MANIFEST,
        )
    model = StackModel.load(root / STACK_DIR)
    models_dir = root / MODELS_DIR
    _learner_records(model, models_dir, bundle=True)
    embedding = {name: root / rel for name, rel in manifest["embedding_models"].items()}
    return Ensemble(model, models_dir, root / STACK_DIR, manifest, embedding_models=embedding)


def _stack_name(store: PredictionStore, stack: str | None) -> str:
    """``stack`` when it names a stack in ``oof/``, else the only stack there."""
    if stack is None:
        return single_stack(store)
    stacks = [n for n in store.names() if store.read_meta(n).learner == STACK_LEARNER]
    if stack in stacks:
        return stack
    if stack in store.names():
        raise AesError(
            f"'{stack}' is a learner, not a stack; pick a stack "
            f"({', '.join(stacks) or 'none yet: run `aes-ensemble stack`'})",
            key="--stack",
        )
    raise AesError(
        f"no stack named '{stack}'{did_you_mean(stack, stacks)}", path=store.oof_dir, key="--stack"
    )


def _load_workspace(ws: Workspace, stack: str | None) -> Ensemble:
    """The workspace's stack, refused where it went stale (essays changed, learners refit or
    re-imported since) or where its saved model is not the one its predictions came from."""
    store = PredictionStore(ws.oof_dir)
    name = _stack_name(store, stack)
    ps = store.read(name)
    notes = check_stack_current(store, ps, data_fingerprint(*load_workspace_dataset(ws)))
    again = f"run {remake_command(ps.meta)} again"
    model_dir = stack_model_dir(ws, name)
    if not model_dir.is_dir():
        raise AesError(
            f"stack '{name}' has no saved model (its folder is missing); restack: {again}",
            path=model_dir,
        )
    model = StackModel.load(model_dir)
    inputs = ps.meta.extra.get(INPUTS_KEY) or {}
    same_inputs = all(
        {k: v for k, v in model.lineage.get(n, {}).items() if k in COMPARED}
        == {k: v for k, v in record.items() if k in COMPARED}
        for n, record in inputs.items()
    )
    if model.predictions_digest != prediction_digest(ps.frame) or not same_inputs:
        raise AesError(
            f"the saved model of stack '{name}' is not the one its predictions came from "
            f"(written by another run); restack: {again}",
            path=model_dir,
        )
    for learner in model.learners:
        if store.read_meta(learner).learner == IMPORTED_LEARNER:
            raise AesError(
                f"stack '{name}' uses '{learner}', predictions imported with `oof import`: "
                "there are no models to score new essays with; stack learners fitted here "
                "(--models)",
                path=store.path(learner),
            )
    records = _learner_records(model, ws.base_models_dir, bundle=False)
    manifest = manifest_fields(name, records, {})
    return Ensemble(
        model, ws.base_models_dir, model_dir, manifest, cache_dir=ws.cache_dir, notes=tuple(notes)
    )


def export_bundle(
    ws: Workspace, out: Path, *, stack: str | None = None, half: bool = False
) -> Path:
    """Write the bundle of the workspace's stack (the only one, or ``stack``) to ``out``.

    The stack must be current (``Ensemble.load`` checks it): a bundle of a stale stack would
    score with other learners than the ones its numbers came from."""
    ensemble = Ensemble.load(ws.root, stack)
    learners = ensemble.manifest["learners"]
    return write_bundle(
        out,
        stack_dir=ensemble.stack_dir,
        learner_dirs={name: fold_dirs(ensemble.models_dir, name) for name in ensemble.learners},
        embedding_dirs=ensemble.embedding_folders(),
        manifest=ensemble.manifest,
        half=half,
        half_learners=[n for n in ensemble.learners if learners[n]["kind"] == TRANSFORMER],
    )
