"""A fitted base learner scores essays it never saw: every fold model of ``MODELS/NAME/fold_K/``
predicts them and the folds are averaged (pred and proba), exactly as ``assembly`` makes a
learner's test rows, so the workspace's own test file scores to its ``oof/NAME.parquet`` rows.

Each fold folder carries what it needs: the model, ``config.yaml`` (validated with its kind's
config model and checked against the hash its ``done.json`` records), and ``scales.json``, the
score scales its outputs map onto. Scales live with the fold rather than only in the prediction
files, so a fold folder copied alone (a bundle) scores without ``oof/``.

Nothing here writes: with ``cache_dir=None`` features are computed in memory, so a bundle on
read-only media scores as well as a workspace. The folds of a learner share one computation of
each essay's features (``features.shared``): they differ in what they fitted, not in the text.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from aes_ensemble.config import config_hash
from aes_ensemble.data import Essays
from aes_ensemble.errors import AesError, did_you_mean
from aes_ensemble.features.embeddings import local_models
from aes_ensemble.features.shared import shared_features
from aes_ensemble.fold_files import (
    CONFIG_FILE,
    DONE,
    SCALES_FILE,
    FoldRecord,
    changed_definitions,
    read_record,
    read_scales,
)
from aes_ensemble.learners.base import Learner
from aes_ensemble.learners.registry import learner_class, load_learner_config
from aes_ensemble.progress import step
from aes_ensemble.scales import ScoreScales
from aes_ensemble.store import Prediction

_FOLD = re.compile(r"^fold_(\d+)$")
# What every fold of one learner must share: folds of another config, split or data would
# average into numbers no prediction file holds.
_SHARED = ("config_hash", "folds_hash", "data_hash")


def _refit(name: str) -> str:
    return f"run `aes-ensemble fit-base {name}` to finish it"


def _fold_records(models_dir: Path, name: str) -> list[tuple[Path, FoldRecord]]:
    """Each ``fold_K`` folder of learner ``name`` in fold order, with its record. A missing or
    damaged ``done.json``, or a gap in the numbering, is an error: scoring with some folds
    missing would change every number."""
    learner_dir = Path(models_dir) / name
    if not learner_dir.is_dir():
        return []
    numbered = sorted(
        (int(m.group(1)), entry)
        for entry in learner_dir.iterdir()
        if entry.is_dir() and (m := _FOLD.match(entry.name))
    )
    folds = []
    for position, (fold, folder) in enumerate(numbered):
        if fold != position:
            raise AesError(
                f"learner '{name}' has no fold_{position} but has fold_{fold}; {_refit(name)}",
                path=learner_dir,
            )
        record = read_record(folder)  # a damaged record is an error naming the file
        if record is None:
            raise AesError(
                f"fold {fold} was never finished (no done.json); {_refit(name)}", path=folder
            )
        if record.fold != fold:
            raise AesError(
                f"records fold {record.fold} but lies in {folder.name}; {_refit(name)}",
                path=folder / DONE,
                key="fold",
            )
        folds.append((folder, record))
    return folds


def fold_dirs(models_dir: Path, name: str) -> list[Path]:
    """The fitted fold folders of learner ``name`` in fold order (``fold_0``, ``fold_1``, ...);
    empty when it has none; an error for an unfinished or damaged fold or a gap."""
    return [folder for folder, _ in _fold_records(models_dir, name)]


def _fitted_folds(models_dir: Path, name: str) -> list[tuple[Path, FoldRecord]]:
    """Every fold with its record; an error naming the known learners when there is none, and
    when two folds were fitted on another config, split or data."""
    folds = _fold_records(models_dir, name)
    if not folds:
        known = [p.parent.name for p in Path(models_dir).glob("*/fold_0")]
        raise AesError(
            f"learner '{name}' has no fitted fold models{did_you_mean(name, known)}",
            path=Path(models_dir) / name,
        )
    first = folds[0][1]
    for folder, record in folds[1:]:
        for key in _SHARED:
            if getattr(record, key) != getattr(first, key):
                raise AesError(
                    f"fold {record.fold} of '{name}' was fitted with another "
                    f"{key.removesuffix('_hash')} than fold 0; {_refit(name)}",
                    path=folder / DONE,
                    key=key,
                )
    return folds


def learner_scales(models_dir: Path, name: str) -> ScoreScales:
    """The score scales learner ``name`` was fitted on (every fold must agree)."""
    folds = _fitted_folds(models_dir, name)
    return _agreed_scales(models_dir, name, folds)


def _agreed_scales(
    models_dir: Path, name: str, folds: list[tuple[Path, FoldRecord]]
) -> ScoreScales:
    scales = [read_scales(folder) for folder, _ in folds]
    for (folder, _), other in zip(folds[1:], scales[1:], strict=True):
        if other != scales[0]:
            raise AesError(
                f"the fold's score scales differ from fold 0's; {_refit(name)}",
                path=folder / SCALES_FILE,
            )
    return scales[0]


def _checked_folders(folders: Mapping[str, Path] | None) -> dict[str, Path]:
    out = {str(k): Path(v) for k, v in (folders or {}).items()}
    for model, folder in out.items():
        if not folder.is_dir():
            raise AesError(
                f"embedding model '{model}': its local folder does not exist",
                path=folder,
                key="embedding_models",
            )
    return out


@dataclass(frozen=True)
class FittedLearner:
    """A base learner's fold models, loaded once, to score any number of essays."""

    name: str
    kind: str
    scales: ScoreScales
    folds: tuple[Learner, ...]
    embedding_models: Mapping[str, Path] = field(default_factory=dict)

    def predict(self, essays: Essays, *, progress: bool = False) -> Prediction:
        """The mean over the folds' predictions (pred, and proba where the learner has it),
        in the order of ``essays``; with ``progress``, essays/s under the learner's name."""
        if len(essays) == 0:
            raise AesError(f"learner '{self.name}': no essays to score", path=essays.path)
        self._check_prompts(essays)
        parts: list[Prediction] = []
        with (
            local_models(self.embedding_models),
            shared_features(),
            step(self.name, len(essays), unit="essays", progress=progress) as shown,
        ):
            for learner in self.folds:
                parts.append(learner.predict(essays))
                shown.advance(len(essays) / len(self.folds))
        return _mean(parts, self.name)

    def _check_prompts(self, essays: Essays) -> None:
        """An essay of a prompt some fold has no model (or scale) for: one line naming the
        essay, its prompt and the prompts the learner knows."""
        for learner in self.folds:
            known = learner.known_prompts()
            if known is None:
                continue
            for row, (essay_id, prompt) in enumerate(
                zip(essays.ids, essays.prompts, strict=True), start=1
            ):
                if prompt in known:
                    continue
                what = "has no prompt" if prompt is None else f"has prompt '{prompt}'"
                raise AesError(
                    f"essay '{essay_id}' {what}, but learner '{self.name}' scores only the "
                    f"prompts it was fitted on ({', '.join(known)})",
                    path=essays.path,
                    row=row,
                    key="prompt",
                )


def _mean(parts: list[Prediction], name: str) -> Prediction:
    """The folds' mean as ``combine_parts`` computes the test rows: stacked in fold order."""
    pred = np.mean(np.stack([p.pred for p in parts]), axis=0)
    labels = parts[0].proba_labels
    if any(
        p.proba_labels != labels or (p.proba is None) != (parts[0].proba is None) for p in parts
    ):
        raise AesError(f"the folds of learner '{name}' predict different score levels; refit it")
    if parts[0].proba is None:
        return Prediction(pred)
    probas = [p.proba for p in parts if p.proba is not None]
    return Prediction(pred, np.mean(np.stack(probas), axis=0), labels)


def load_learner(
    models_dir: Path,
    name: str,
    *,
    cache_dir: Path | None = None,
    embedding_models: Mapping[str, Path] | None = None,
    progress: bool = False,
) -> FittedLearner:
    """Load every fitted fold of ``models_dir/name``: its config (validated, and the one its
    ``done.json`` was fitted with), the recorded scales, the model. ``cache_dir``: the per-essay
    feature cache to read and fill (None: compute in memory, write nothing)."""
    folds = _fitted_folds(models_dir, name)
    scales = _agreed_scales(models_dir, name, folds)
    local = _checked_folders(embedding_models)
    learners: list[Learner] = []
    for folder, record in folds:
        config = load_learner_config(folder / CONFIG_FILE)
        if config_hash(config) != record.config_hash:
            raise AesError(
                "differs from the config this fold was fitted with (edited after fit-base?); "
                f"{_refit(name)}",
                path=folder / CONFIG_FILE,
            )
        changed = changed_definitions(record.feature_versions, config.feature_versions())
        if changed:
            raise AesError(
                f"fold {record.fold} of '{name}' was fitted with other feature definitions "
                f"({changed}) than this version computes; {_refit(name)}",
                path=folder / DONE,
                key="feature_versions",
            )
        cls = learner_class(config.kind)
        learners.append(cls.load(folder, config, scales, cache_dir, progress=progress))
    return FittedLearner(name, learners[0].kind, scales, tuple(learners), local)


def predict_learner(
    models_dir: Path,
    name: str,
    essays: Essays,
    *,
    cache_dir: Path | None = None,
    embedding_models: Mapping[str, Path] | None = None,
    progress: bool = False,
) -> Prediction:
    """Learner ``name``'s fold-mean prediction on ``essays`` (``load_learner`` then
    ``predict``); ``embedding_models`` maps a config's embeddings model name to the local
    folder to load it from instead (a bundle ships the weights)."""
    fitted = load_learner(
        models_dir,
        name,
        cache_dir=cache_dir,
        embedding_models=embedding_models,
        progress=progress,
    )
    return fitted.predict(essays, progress=progress)
