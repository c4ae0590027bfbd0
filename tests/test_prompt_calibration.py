"""``unseen_prompts: standardise``: a prompt the stack never saw is moved, over its batch of
essays, to the training prompts' level and spread; seen prompts and ``keep`` stay as they were."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from conftest import CliResult
from sklearn.base import clone
from sklearn.linear_model import Ridge

from aes_ensemble.data import load_workspace_dataset
from aes_ensemble.engine import fit_learner
from aes_ensemble.errors import AesError
from aes_ensemble.folds import assign_folds, save_folds
from aes_ensemble.metrics import qwk
from aes_ensemble.sample import TEST, TRAIN, sample_path
from aes_ensemble.scales import ScoreScale, ScoreScales
from aes_ensemble.scoring import Ensemble
from aes_ensemble.scoring.server import Limits, RequestError, Service
from aes_ensemble.stacking import StackConfig, StackData, run_stack, stack_config, stack_workspace
from aes_ensemble.stacking.calibration import PromptCalibration
from aes_ensemble.thresholds import fit_cuts
from aes_ensemble.workspace import Workspace

# --- the calibration on hand-made arrays ------------------------------------------------------


def test_unseen_prompts_take_the_training_prompts_mean_and_sd() -> None:
    y = np.array([0.2, 0.4, 0.6, 0.8, 0.5, 0.5, 0.7, 0.9])
    train_prompts = ["a"] * 4 + ["b"] * 4
    cal = PromptCalibration.fit(y, train_prompts, min_batch=3)
    stats = [(y[:4].mean(), y[:4].std()), (y[4:].mean(), y[4:].std())]
    assert cal.mean == pytest.approx(np.mean([m for m, _ in stats]))
    assert cal.sd == pytest.approx(np.mean([s for _, s in stats]))

    pred = np.array([0.9, 0.95, 1.0, 0.3, 0.31, 0.35, 0.4, 0.2, 0.3, 0.25, 0.28])
    prompts = np.array(["c", "c", "c", "a", "a", None, None, "c", "a", None, "c"], dtype=object)
    out = cal.transform(pred, prompts)
    assert cal.unseen(prompts) == [None, "c"]
    for group in (prompts == "c", np.array([p is None for p in prompts])):
        assert out[group].mean() == pytest.approx(cal.mean)
        assert out[group].std() == pytest.approx(cal.sd)
        assert np.array_equal(np.argsort(out[group]), np.argsort(pred[group]))  # order kept
    seen = prompts == "a"
    assert np.array_equal(out[seen], pred[seen])  # the very same values

    again = PromptCalibration.from_dict(json.loads(json.dumps(cal.to_dict())))
    assert again == cal
    assert np.array_equal(again.transform(pred, prompts), out)


def test_a_too_small_batch_of_a_new_prompt_is_refused_naming_it() -> None:
    cal = PromptCalibration.fit(np.linspace(0, 1, 10), ["a"] * 10)
    with pytest.raises(AesError) as info:
        cal.transform(np.full(5, 0.5), ["new"] * 3 + ["a"] * 2)
    message = str(info.value)
    assert "prompt 'new'" in message and "only 3 of its essays" in message
    assert "at least 30" in message and "unseen_prompts: keep" in message
    with pytest.raises(AesError, match="essays without a prompt"):
        cal.transform(np.full(2, 0.5), [None, None])
    with pytest.raises(AesError, match="is not a prompt calibration"):
        PromptCalibration.from_dict({**cal.to_dict(), "sd": "wide"})


# --- the nested stack on a synthetic leave-one-prompt-out -------------------------------------

SCALE = ScoreScale(1, 6)


def _lopo_data(seed: int = 0, *, folds_by_prompt: bool = True) -> StackData:
    """Four prompts of 120 essays on one 1-6 scale, two learners that rank essays well; on
    prompt ``p3`` they are 1.2 points too high (a level the other prompts cannot teach)."""
    rng = np.random.default_rng(seed)
    n = 120
    prompts = np.repeat(np.array(["p0", "p1", "p2", "p3"], dtype=object), n)
    latent = rng.normal(size=4 * n)
    y = np.clip(np.rint(3.5 + 1.1 * latent), 1, 6)
    offset = np.repeat([0.1, -0.1, 0.0, 1.2], n)
    base = np.column_stack(
        [3.5 + 0.8 * latent + offset + rng.normal(scale=s, size=4 * n) for s in (0.4, 0.5)]
    )
    scales = ScoreScales(default=SCALE)
    folds = np.repeat(np.arange(4), n) if folds_by_prompt else np.tile(np.arange(4), n)
    return StackData(
        names=["a", "b"],
        feature_names=["a", "b"],
        X=SCALE.normalise(base),
        base=base,
        y=y,
        prompts=prompts,
        folds=folds,
        scales=scales,
        folds_hash="synthetic",
        ids=[str(i) for i in range(4 * n)],
    )


def _run(data: StackData, unseen: str) -> tuple[np.ndarray, float, float]:
    config = StackConfig(meta="ridge", unseen_prompts=unseen, n_boot=2)
    result = run_stack(data, config).result
    return (
        result.oof,
        qwk(data.y, result.plain, scale=SCALE),
        qwk(data.y, result.cross, scale=SCALE),
    )


def test_standardise_recovers_a_held_out_prompts_level() -> None:
    data = _lopo_data()
    keep, keep_plain, keep_cross = _run(data, "keep")
    oof, plain, cross = _run(data, "standardise")
    assert plain > keep_plain + 0.05
    assert cross > keep_cross + 0.05
    # each held-out prompt: the same meta-learner's predictions, z-scored, moved to the other
    # prompts' average mean and SD of normalised human scores, clipped to the scale
    norm_y = SCALE.normalise(data.y)
    for p in ("p0", "p1", "p2", "p3"):
        held = data.prompts == p
        others = [norm_y[data.prompts == q] for q in ("p0", "p1", "p2", "p3") if q != p]
        mean, sd = np.mean([g.mean() for g in others]), np.mean([g.std() for g in others])
        z = SCALE.normalise(keep[held])
        z = (z - z.mean()) / z.std()
        expected = SCALE.denormalise(np.clip(z * sd + mean, 0, 1))
        np.testing.assert_allclose(oof[held], expected, rtol=0, atol=1e-12)


def test_cross_fitted_cut_points_see_calibrated_inner_predictions() -> None:
    """Fold k's cut points are fitted on the inner OOF of the other folds, each inner fold
    standardised against the prompts of its own training rows, as scoring would."""
    data = _lopo_data()
    config = StackConfig(meta="ridge", unseen_prompts="standardise", n_boot=2)
    result = run_stack(data, config).result
    y_norm = SCALE.normalise(data.y)
    for k in range(4):
        train = data.folds != k
        inner = np.full(len(data.y), np.nan)
        for j in set(range(4)) - {k}:
            rows = train & (data.folds != j)
            model = clone(Ridge(alpha=1.0)).fit(data.X[rows], y_norm[rows])
            cal = PromptCalibration.fit(y_norm[rows], data.prompts[rows])
            held = data.folds == j
            moved = cal.transform(model.predict(data.X[held]), data.prompts[held])
            inner[held] = SCALE.denormalise(moved)
        expected = fit_cuts(
            data.y[train],
            inner[train],
            data.prompts[train],
            data.scales,
            "nelder-mead",
            config.seed,
            data.prompts[~train],
        )
        assert result.per_fold[k].to_dict() == expected.to_dict()


def test_a_held_out_prompts_own_scores_never_reach_its_prediction() -> None:
    data = _lopo_data()
    oof, _, _ = _run(data, "standardise")
    changed = data.y.copy()
    held = data.prompts == "p3"
    changed[held] = 6.0 - changed[held] + 1.0
    other, _, _ = _run(replace(data, y=changed), "standardise")
    assert np.array_equal(other[held], oof[held])
    assert not np.array_equal(other[~held], oof[~held])


def test_keep_is_the_plain_meta_learner_and_seen_prompts_change_nothing() -> None:
    data = _lopo_data()
    oof, _, _ = _run(data, "keep")
    expected = np.empty(len(oof))
    y_norm = SCALE.normalise(data.y)
    for k in range(4):
        held = data.folds == k
        model = clone(Ridge(alpha=1.0)).fit(data.X[~held], y_norm[~held])
        expected[held] = SCALE.denormalise(model.predict(data.X[held]))
    assert np.array_equal(oof, expected)
    # every fold holds every prompt (a standard split): standardise changes no bit
    mixed = _lopo_data(folds_by_prompt=False)
    assert np.array_equal(_run(mixed, "standardise")[0], _run(mixed, "keep")[0])


def test_vote_cannot_standardise() -> None:
    with pytest.raises(AesError, match="unseen_prompts"):
        StackConfig(meta="vote", unseen_prompts="standardise").check()


# --- score and serve a prompt unseen in training ----------------------------------------------

KNOWN = ["Being busy", "Self-reliance", "Individuality", "Distance learning"]
NEW = "Career commitment"


@pytest.fixture(scope="module")
def lopo_ws(tmp_path_factory: pytest.TempPathFactory) -> Workspace:
    """Four prompts of the sample, one fold each, a TF-IDF ridge and a ``mean`` stack that
    standardises prompts it never saw."""
    root = tmp_path_factory.mktemp("lopo") / "ws"
    (root / "configs").mkdir(parents=True)
    essays = pl.read_csv(sample_path(TRAIN), infer_schema=False)
    essays.filter(pl.col("prompt").is_in(KNOWN)).write_csv(root / "train.csv")
    (root / "configs" / "data.yaml").write_text("train: train.csv\nformat: ellipse\n")
    ws = Workspace.at(root)
    train, _ = load_workspace_dataset(ws)
    save_folds(ws, assign_folds(train, n_folds=4, seed=42, method="grouped"))
    fit_learner(ws, "ridge_tfidf", overrides=["per_prompt=false"], progress=False)
    overrides = {"meta": "mean", "n_boot": 10, "unseen_prompts": "standardise"}
    stack_workspace(ws, stack_config(ws, overrides=overrides))
    return ws


def _new_essays(path: Path, n_new: int) -> pl.DataFrame:
    essays = pl.read_csv(sample_path(TRAIN), infer_schema=False).drop("Overall")
    new = essays.filter(pl.col("prompt") == NEW).head(n_new)
    frame = pl.concat([essays.filter(pl.col("prompt") == KNOWN[0]), new])
    frame.write_csv(path)
    return frame.rename({"text_id_kaggle": "essay_id"})


@pytest.mark.slow
def test_score_standardises_a_new_prompt_over_its_batch(
    lopo_ws: Workspace, tmp_path: Path, run_cli: Callable[..., CliResult]
) -> None:
    frame = _new_essays(tmp_path / "new.csv", 48)
    out = tmp_path / "scores.csv"
    result = run_cli("score", tmp_path / "new.csv", "-w", lopo_ws.root, "-o", out, "--explain")
    assert result.exit_code == 0, result.stderr
    assert f"note: prompt '{NEW}' not in the stack's training essays" in result.stderr
    scored = pl.read_csv(out).join(frame.select("essay_id", "prompt"), on="essay_id")
    new = scored.filter(pl.col("prompt") == NEW)
    known = scored.filter(pl.col("prompt") != NEW)
    # a seen prompt: the mean stack of one learner is the learner's own prediction
    np.testing.assert_allclose(known["pred"], known["ridge_tfidf"], rtol=0, atol=1e-12)
    # the new prompt: z-scored over its 48 essays, moved to the training prompts' average mean
    # and SD (0..1 of the 1-5 scale)
    train, _ = load_workspace_dataset(lopo_ws)
    norm_y = (train.scores - 1.0) / 4.0
    groups = [norm_y[train.prompts == p] for p in KNOWN]
    mean, sd = np.mean([g.mean() for g in groups]), np.mean([g.std() for g in groups])
    learner = (new["ridge_tfidf"].to_numpy() - 1.0) / 4.0
    z = (learner - learner.mean()) / learner.std()
    expected = 1.0 + 4.0 * np.clip(z * sd + mean, 0, 1)
    np.testing.assert_allclose(new["pred"], expected, rtol=0, atol=1e-9)
    assert not np.allclose(new["pred"], new["ridge_tfidf"], atol=0.05)
    # the calibration travels with the saved stack: a bundle scores the same
    assert run_cli("export", tmp_path / "bundle", "-w", lopo_ws.root).exit_code == 0
    again = tmp_path / "again.csv"
    args = ("--bundle", tmp_path / "bundle", "-o", again, "--explain")
    assert run_cli("score", tmp_path / "new.csv", *args).exit_code == 0
    assert again.read_text() == out.read_text()


@pytest.mark.slow
def test_too_few_essays_of_a_new_prompt_are_one_line_at_the_cli_and_the_server(
    lopo_ws: Workspace, tmp_path: Path, run_cli: Callable[..., CliResult]
) -> None:
    frame = _new_essays(tmp_path / "few.csv", 8)
    out = tmp_path / "scores.csv"
    result = run_cli("score", tmp_path / "few.csv", "-w", lopo_ws.root, "-o", out)
    assert result.exit_code == 2, result.stdout
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), lines
    assert f"prompt '{NEW}'" in lines[0] and "only 8 of its essays" in lines[0]
    assert "score more of its essays at once" in lines[0]
    assert not out.exists()

    service = Service(Ensemble.load(lopo_ws.root), Limits())
    rows = frame.tail(3).to_dicts()
    body = {
        "essays": [
            {"id": r["essay_id"], "text": r["full_text"], "prompt": r["prompt"]} for r in rows
        ]
    }
    with pytest.raises(RequestError) as info:
        service.score(json.dumps(body).encode())
    assert info.value.status == 422 and info.value.field == "essays[0].prompt"
    assert "only 3 of its essays" in info.value.message
    test = pl.read_csv(sample_path(TEST), infer_schema=False)
    seen = test.filter(pl.col("prompt") == KNOWN[0]).head(2).to_dicts()
    body = {
        "essays": [
            {"id": r["text_id_kaggle"], "text": r["full_text"], "prompt": r["prompt"]} for r in seen
        ]
    }
    assert len(service.score(json.dumps(body).encode())["scores"]) == 2
