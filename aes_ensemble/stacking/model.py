"""The stack as a model: what turns the base learners' predictions on new essays into scores.

``stack`` saves one :class:`StackModel` per run in ``base_models/<stack name>/``: the final
meta-learner, its final cut points, the learners it reads (in column order) with the lineage of
each one's file, and the feature recipe (normalised preds per scale, ``proba_*`` columns, the
length feature) that :func:`~aes_ensemble.stacking.inputs.meta_features` applies at train time.
With ``unseen_prompts: standardise`` it also keeps the prompt calibration
(:mod:`~aes_ensemble.stacking.calibration`) that standardises a batch's new prompts.
The meta-learner is kept in a safe format (:mod:`~aes_ensemble.stacking.saved_meta`); the
rest is JSON in ``stack.json``, written last with the SHA-256 of the meta-learner's file.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import Field

from aes_ensemble.config import StrictModel, validate
from aes_ensemble.errors import AesError
from aes_ensemble.io import remove, write_json_atomic
from aes_ensemble.scales import ScoreScales
from aes_ensemble.stacking.calibration import PromptCalibration
from aes_ensemble.stacking.config import MetaClass, StackConfig
from aes_ensemble.stacking.inputs import (
    LENGTH_FEATURE,
    essay_features,
    feature_names,
    meta_features,
)
from aes_ensemble.stacking.lineage import remake_command
from aes_ensemble.stacking.nested import level_features
from aes_ensemble.stacking.run import StackRun
from aes_ensemble.stacking.saved_meta import (
    FILES,
    LinearMeta,
    MetaState,
    MissingSkopsError,
    SavedMeta,
    VoteMeta,
    capture_meta,
    load_meta,
    save_meta,
)
from aes_ensemble.store import PROBA_PREFIX, Prediction, prediction_digest
from aes_ensemble.thresholds import Thresholds
from aes_ensemble.version import __version__
from aes_ensemble.workspace import Workspace

FORMAT_VERSION = 1
MODEL_FILE = "stack.json"


def stack_model_dir(ws: Workspace, name: str) -> Path:
    """Where ``stack`` saves stack ``name``: beside the learners' fold models."""
    return ws.base_models_dir / name


@dataclass(frozen=True)
class StackModel:
    """A saved stack: ``learners`` in the meta-learner's column order, ``cuts`` the final cut
    points, ``lineage`` each learner's :func:`~aes_ensemble.stacking.inputs.input_record` when
    stacked; ``proba_columns``/``length`` the feature recipe; ``meta`` the fitted meta-learner.
    ``remake`` is the command that makes it again, ``predictions_digest`` the digest of the
    stack's own prediction file written with it (so a consumer can tell the two belong);
    ``calibration`` standardises prompts unseen in training over the batch scored, or None."""

    name: str
    learners: tuple[str, ...]
    scales: ScoreScales
    cuts: Thresholds
    lineage: dict[str, dict[str, str]]
    meta: SavedMeta
    meta_name: str
    class_path: str | None = None
    proba_columns: dict[str, tuple[str, ...]] = field(default_factory=dict)
    length: bool = False
    prompt_levels: tuple[str, ...] = ()
    remake: str = ""
    predictions_digest: str = ""
    package_version: str = __version__
    calibration: PromptCalibration | None = None

    @property
    def feature_names(self) -> list[str]:
        extra = [LENGTH_FEATURE] if self.length else []
        return feature_names(self.learners, self.proba_columns, extra, self.prompt_levels)

    def predict(
        self, base: Mapping[str, Prediction], texts: Sequence[str], prompts: np.ndarray
    ) -> np.ndarray:
        """The stack's continuous prediction (score scale) from each learner's fold-mean
        prediction on the essays, built exactly as the stack's test rows were. The essays are
        one batch: with a calibration, a prompt unseen in training is standardised over its
        essays among them (too few of them: an ``AesError`` naming the prompt)."""
        prompts = np.asarray(prompts, dtype=object)
        n = len(prompts)
        if len(texts) != n:
            raise AesError(f"{len(texts)} texts but {n} prompts; give one prompt per essay")
        preds = np.column_stack([self._pred(base, name, n) for name in self.learners])
        if isinstance(self.meta, VoteMeta):
            X = level_features(preds, prompts, self.scales, self.meta.level_cuts)
        else:
            blocks = [
                self._proba(base[name], name, self.proba_columns[name])
                for name in self.learners
                if name in self.proba_columns
            ]
            extra, _ = essay_features(texts, self.length)
            X = meta_features(preds, prompts, self.scales, blocks, extra, self.prompt_levels)
        norm = np.asarray(self.meta.predict(X), dtype=float)
        if self.calibration is not None:
            norm = self.calibration.transform(norm, prompts)
        return self.scales.denormalise(norm, prompts)

    def levels(self, pred: np.ndarray, prompts: np.ndarray) -> np.ndarray:
        """``pred`` cut into levels by the stack's final cut points (what ``predict`` writes)."""
        return self.cuts.apply(pred, np.asarray(prompts, dtype=object), self.scales)

    def _pred(self, base: Mapping[str, Prediction], name: str, n: int) -> np.ndarray:
        if name not in base:
            raise AesError(
                f"stack '{self.name}' needs predictions of '{name}' "
                f"(it stacks {', '.join(self.learners)})"
            )
        pred = np.asarray(base[name].pred, dtype=float)
        if pred.shape != (n,):
            raise AesError(f"'{name}' gave {pred.shape} predictions for {n} essays")
        if not np.isfinite(pred).all():
            raise AesError(f"'{name}' gave a non-finite prediction")
        return pred

    def _proba(self, p: Prediction, name: str, columns: Sequence[str]) -> np.ndarray:
        labels = [c.removeprefix(PROBA_PREFIX) for c in columns]
        missing = [label for label in labels if label not in p.proba_labels]
        if p.proba is None or missing:
            raise AesError(
                f"stack '{self.name}' uses class probabilities of '{name}' for levels "
                f"{', '.join(labels)}, but the learner gave "
                f"{', '.join(p.proba_labels) if p.proba is not None else 'none'}"
            )
        index = [p.proba_labels.index(label) for label in labels]
        return np.asarray(p.proba, dtype=float)[:, index]

    def save(self, directory: Path) -> None:
        """Write the model into ``directory`` (made if needed); ``stack.json`` is written last
        and records the SHA-256 of every other file, so a half-finished save is detected."""
        directory.mkdir(parents=True, exist_ok=True)
        meta = save_meta(self.meta, directory)
        # keys only where the stack uses them: a stack without them has nothing to record
        optional = {
            **({"prompt_levels": list(self.prompt_levels)} if self.prompt_levels else {}),
            **({"calibration": self.calibration.to_dict()} if self.calibration else {}),
        }
        write_json_atomic(
            directory / MODEL_FILE,
            {
                "format_version": FORMAT_VERSION,
                "package_version": self.package_version,
                "name": self.name,
                "meta_name": self.meta_name,
                "class_path": self.class_path,
                "learners": list(self.learners),
                "feature_names": self.feature_names,
                "proba_columns": {k: list(v) for k, v in self.proba_columns.items()},
                "length": self.length,
                "scales": self.scales.to_dict(),
                "cuts": self.cuts.to_dict(),
                "lineage": self.lineage,
                "remake": self.remake,
                "predictions_digest": self.predictions_digest,
                "meta": meta,
                **optional,
            },
        )
        for name in FILES.values():  # a previous stack's meta-learner file, if of another kind
            if name != meta.get("file"):
                remove(directory / name)

    @classmethod
    def load(cls, directory: Path) -> StackModel:
        """The model saved in ``directory``; a missing, damaged or inconsistent file is an
        ``AesError`` naming it, with the command that makes it again."""
        directory = Path(directory)
        path = directory / MODEL_FILE
        again = f"aes-ensemble stack --name {directory.name}"
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise AesError(f"no saved stack here; rerun {again}", path=path) from None
        except (OSError, UnicodeDecodeError) as exc:
            raise AesError(
                f"cannot read the saved stack ({exc}); rerun {again}", path=path
            ) from None
        try:
            raw = json.loads(text, parse_constant=_refuse_constant)
        except ValueError as exc:
            raise AesError(f"is not valid JSON ({exc}); rerun {again}", path=path) from None
        if isinstance(raw, dict) and isinstance(raw.get("remake"), str) and raw["remake"]:
            again = raw["remake"]
        version = raw.get("format_version") if isinstance(raw, dict) else None
        if isinstance(version, int) and version > FORMAT_VERSION:
            raise AesError(
                f"format version {version} is newer than this aes-ensemble "
                f"reads ({FORMAT_VERSION}); upgrade aes-ensemble or rerun {again}",
                path=path,
            )
        try:
            saved = validate(_Saved, raw if isinstance(raw, dict) else {}, path=path)
            return saved.model(directory)
        except MissingSkopsError:
            raise
        except AesError as exc:
            raise AesError(
                f"{exc.message}; the saved stack is damaged, rerun {again}",
                path=exc.path or path,
                key=exc.key,
            ) from None


def build_stack_model(run: StackRun, config: StackConfig) -> StackModel:
    """The model of a finished run; a meta-learner that cannot be saved safely is refused here,
    before ``stack`` writes anything."""
    data, result = run.data, run.result
    class_path = config.meta.class_path if isinstance(config.meta, MetaClass) else None
    meta: SavedMeta
    if config.meta == "vote":
        meta = VoteMeta(result.level_cuts)
    else:
        meta = capture_meta(result.final, data.X, class_path or config.meta_name)
    return StackModel(
        name=run.name,
        learners=tuple(data.names),
        scales=data.scales,
        cuts=result.thresholds,
        lineage={name: dict(record) for name, record in data.inputs.items()},
        meta=meta,
        meta_name=config.meta_name,
        class_path=class_path,
        proba_columns=dict(data.proba_columns),
        length=config.features.length,
        prompt_levels=data.prompt_levels,
        remake=remake_command(run.predictions.meta),
        predictions_digest=prediction_digest(run.predictions.frame),
        calibration=result.calibration,
    )


def check_model_dir(directory: Path) -> None:
    """Refuse to save a stack over a folder that holds something else (a learner's folds)."""
    if not directory.exists():
        return
    ours = {MODEL_FILE, *FILES.values()}
    if not directory.is_dir() or any(
        p.name not in ours and not p.name.startswith(".") for p in directory.iterdir()
    ):
        raise AesError(
            "holds something other than a saved stack (a learner's fold models?); "
            "give the stack another --name",
            path=directory,
        )


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a number JSON allows")


class _Saved(StrictModel):
    """``stack.json`` as :meth:`StackModel.save` writes it."""

    format_version: int
    package_version: str
    name: str
    meta_name: str
    class_path: str | None
    learners: list[str] = Field(min_length=1)
    feature_names: list[str]
    proba_columns: dict[str, list[str]]
    length: bool
    prompt_levels: list[str] = Field(default_factory=list)
    scales: dict[str, Any]
    cuts: dict[str, Any]
    lineage: dict[str, dict[str, str]]
    remake: str
    predictions_digest: str
    meta: MetaState
    calibration: dict[str, Any] | None = None

    def model(self, directory: Path) -> StackModel:
        """The :class:`StackModel`, with every part checked against the others."""
        scales = ScoreScales.from_dict(self.scales)
        model = StackModel(
            name=self.name,
            learners=tuple(self.learners),
            scales=scales,
            cuts=_thresholds(self.cuts, "cuts"),
            lineage=self.lineage,
            meta=load_meta(self.meta, directory),
            meta_name=self.meta_name,
            class_path=self.class_path,
            proba_columns={k: tuple(v) for k, v in self.proba_columns.items()},
            length=self.length,
            prompt_levels=tuple(self.prompt_levels),
            remake=self.remake,
            predictions_digest=self.predictions_digest,
            package_version=self.package_version,
            calibration=None
            if self.calibration is None
            else PromptCalibration.from_dict(self.calibration),
        )
        self._check(model)
        return model

    def _check(self, model: StackModel) -> None:
        if len(set(model.learners)) != len(model.learners):
            raise AesError("learners repeat", key="learners")
        unknown = sorted(set(model.proba_columns) - set(model.learners))
        if unknown:
            raise AesError(f"'{unknown[0]}' is not one of the learners", key="proba_columns")
        if set(model.lineage) != set(model.learners):
            raise AesError("does not name the same learners as 'learners'", key="lineage")
        if model.feature_names != self.feature_names:
            raise AesError(
                "do not follow from learners, proba_columns, length and prompt_levels",
                key="feature_names",
            )
        meta = model.meta
        if isinstance(meta, LinearMeta) and len(meta.coef) != len(self.feature_names):
            raise AesError(
                f"{len(meta.coef)} weights for {len(self.feature_names)} features", key="meta.coef"
            )
        if isinstance(meta, VoteMeta) and len(meta.level_cuts) != len(model.learners):
            raise AesError(
                f"{len(meta.level_cuts)} sets of cut points for {len(model.learners)} learners",
                key="meta.level_cuts",
            )


def _thresholds(data: Mapping[str, Any], key: str) -> Thresholds:
    try:
        return Thresholds.from_dict(data)
    except AesError as exc:
        raise AesError(exc.message, key=key) from None
