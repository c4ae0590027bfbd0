"""Extra scored essays (``extra_train``) join every fold's training rows, and only those."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from aes_ensemble.config import config_hash, validate
from aes_ensemble.data import load_workspace_dataset
from aes_ensemble.engine import fit_learner
from aes_ensemble.errors import AesError
from aes_ensemble.extra_train import read_extra
from aes_ensemble.fold_files import read_record
from aes_ensemble.fold_fit import open_run
from aes_ensemble.folds import assign_folds, load_folds, save_folds
from aes_ensemble.learners.registry import learner_class, load_learner_config
from aes_ensemble.sample import TEST, TRAIN, sample_path
from aes_ensemble.store import read_predictions
from aes_ensemble.workspace import Workspace

ANALYTIC = ["cohesion", "syntax", "vocabulary", "phraseology", "grammar", "conventions"]
RIDGE = (
    "kind: ridge\nfeatures:\n  handcrafted: false\n"
    "  tfidf: {word_ngram_range: [1, 1], char_ngram_range: null, max_features: 2000}\n"
    "params: {alpha: 10.0}\n"
)
EXTRA = (
    "extra_train:\n  path: extra.csv\n  id_column: text_id\n  text_column: full_text\n"
    f"  score_columns: [{', '.join(ANALYTIC)}]\n"
)
N_WORKSPACE = 240  # the sample's first essays are the workspace's, the rest are extra essays
N_EXTRA = 480 - N_WORKSPACE


def _analytic(overall: pl.Series, shift: float) -> pl.Series:
    return (overall.cast(pl.Float64) + shift).clip(1.0, 5.0)


@pytest.fixture
def root(tmp_path: Path) -> Path:
    """A workspace on 240 sample essays (3 prompt-grouped folds, 40 test essays) and
    ``extra.csv``: the other 240 with six analytic-like scores, plus two copies of workspace
    essays (one train, one test) that differ only in case and whitespace."""
    root = tmp_path / "ws"
    (root / "configs").mkdir(parents=True)
    sample = pl.read_csv(sample_path(TRAIN), infer_schema=False)
    sample.head(N_WORKSPACE).write_csv(root / "essays.csv")
    test = pl.read_csv(sample_path(TEST), infer_schema=False).head(40)
    test.write_csv(root / "test.csv")
    (root / "configs" / "data.yaml").write_text(
        "train: essays.csv\ntest: test.csv\nformat: ellipse\n", encoding="utf-8"
    )
    rest = sample.slice(N_WORKSPACE)
    shifts = [0.0, -0.5, 0.5, 0.0, -0.5, 0.0]
    extra = pl.DataFrame(
        {
            "text_id": [f"x{i}" for i in range(rest.height)],
            "full_text": rest["full_text"],
            **{c: _analytic(rest["Overall"], s) for c, s in zip(ANALYTIC, shifts, strict=True)},
        }
    )
    copies = pl.DataFrame(
        {
            "text_id": ["copy_train", "copy_test"],
            "full_text": [
                "  " + sample["full_text"][3].upper().replace(" ", "\n "),
                test["full_text"][0] + "\n\n",
            ],
            **{c: [3.0, 3.0] for c in ANALYTIC},
        }
    )
    pl.concat([extra, copies]).write_csv(root / "extra.csv")
    (root / "configs" / "plain.yaml").write_text(RIDGE, encoding="utf-8")
    (root / "configs" / "extra.yaml").write_text(RIDGE + EXTRA, encoding="utf-8")
    ws = Workspace.at(root)
    train, _ = load_workspace_dataset(ws)
    save_folds(ws, assign_folds(train, 3, seed=0))
    return root


def _oof(root: Path, name: str) -> pl.DataFrame:
    return read_predictions(Workspace.at(root).oof_path(name)).frame


def _n_train(ws: Workspace, name: str, fold: int) -> int:
    """How many essays the fold's model was fitted on (its ``done.json``)."""
    record = read_record(ws.model_dir(name, fold))
    assert record is not None
    return record.n_train


def _edit_extra(root: Path, row: int, **cells: str) -> None:
    """Set ``cells`` of 1-based data ``row`` of extra.csv."""
    frame = pl.read_csv(root / "extra.csv", infer_schema=False)
    frame = frame.with_columns(
        pl.when(pl.int_range(pl.len()) == row - 1)
        .then(pl.lit(value))
        .otherwise(pl.col(column))
        .alias(column)
        for column, value in cells.items()
    )
    frame.write_csv(root / "extra.csv")


def test_extra_essays_join_each_fold_s_training_rows_and_nothing_else(root: Path) -> None:
    ws = Workspace.at(root)
    plain = fit_learner(ws, "plain", progress=False)
    extra = fit_learner(ws, "extra", progress=False)
    train, test = load_workspace_dataset(ws)
    assert test is not None
    fold_of = load_folds(ws).fold_array(train)
    n_extra = N_EXTRA  # the two copies of workspace essays in extra.csv are dropped
    for k in range(3):
        n_fold = int((fold_of != k).sum())
        assert _n_train(ws, "plain", k) == n_fold
        assert _n_train(ws, "extra", k) == n_fold + n_extra
    assert [n for n in extra.notes if "extra_train" in n] == [
        f"extra_train: {n_extra} essays from {root / 'extra.csv'} join every fold's training "
        "rows; 2 dropped as copies of workspace essays"
    ]
    assert not any("extra_train" in n for n in plain.notes)
    ps = read_predictions(ws.oof_path("extra"), folds_hash=load_folds(ws).hash)
    assert ps.oof["essay_id"].to_list() == train.ids
    assert ps.oof["fold"].to_list() == fold_of.tolist()
    assert ps.test["essay_id"].to_list() == test.ids
    base = read_predictions(ws.oof_path("plain"))
    assert not np.allclose(ps.oof["pred"].to_numpy(), base.oof["pred"].to_numpy())
    assert not np.allclose(ps.test["pred"].to_numpy(), base.test["pred"].to_numpy())


def test_same_extra_essays_give_the_same_oof_bit_for_bit(root: Path) -> None:
    ws = Workspace.at(root)
    fit_learner(ws, "extra", progress=False)
    first = _oof(root, "extra")
    shutil.rmtree(ws.base_models_dir / "extra")
    shutil.rmtree(ws.oof_dir / "parts" / "extra")
    ws.oof_path("extra").unlink()
    again = fit_learner(ws, "extra", progress=False)
    assert [r.status for r in again.folds] == ["fitted"] * 3
    assert _oof(root, "extra").equals(first)


def test_a_changed_extra_file_refits_every_fold_and_says_why(root: Path) -> None:
    ws = Workspace.at(root)
    fit_learner(ws, "extra", progress=False)
    same = fit_learner(ws, "extra", progress=False)
    assert [r.status for r in same.folds] == ["skipped"] * 3
    row = 1 + pl.read_csv(root / "extra.csv")["cohesion"].arg_max()  # type: ignore[operator]
    _edit_extra(root, row, **dict.fromkeys(ANALYTIC, "1.0"))
    changed = fit_learner(ws, "extra", progress=False)
    assert [r.status for r in changed.folds] == ["fitted"] * 3
    assert "fold 0 was fitted on other data (training or extra_train essays changed)" in "\n".join(
        changed.notes
    )


def test_the_block_is_part_of_the_config_and_its_hash() -> None:
    import yaml

    model = learner_class("ridge").config_model
    plain = validate(model, yaml.safe_load(RIDGE))
    assert plain.model_dump(mode="json")["extra_train"] is None
    with_block = validate(model, yaml.safe_load(RIDGE + EXTRA))
    assert with_block.model_dump(mode="json")["extra_train"]["score_columns"] == ANALYTIC
    assert config_hash(with_block) != config_hash(plain)


def test_extra_targets_are_the_snapped_mean_and_parquet_reads_as_csv(root: Path) -> None:
    ws = Workspace.at(root)
    train, test = load_workspace_dataset(ws)
    config = load_learner_config(ws.config_path("extra")).extra_train
    assert config is not None
    extra = read_extra(config, root, train, test, per_prompt=False)
    assert extra.dropped == 2 and "copy_train" not in extra.essays.ids
    assert len(extra.essays) == N_EXTRA
    raw = pl.read_csv(root / "extra.csv").head(N_EXTRA)
    mean = raw.select(pl.mean_horizontal(ANALYTIC)).to_series().to_numpy()
    scores = extra.essays.scores
    assert train.scales.default is not None
    assert train.scales.default.is_level(scores).all()
    assert np.abs(scores - mean).max() <= 0.25
    pl.read_csv(root / "extra.csv").write_parquet(root / "extra.parquet")
    parquet = config.model_copy(update={"path": Path("extra.parquet")})
    again = read_extra(parquet, root, train, test, per_prompt=False)
    assert again.essays.frame.equals(extra.essays.frame) and again.dropped == 2


@pytest.mark.parametrize(
    ("cells", "row", "message"),
    [
        ({"cohesion": "6"}, 3, r"extra\.csv: row 3: cohesion 6 is outside the workspace's scale"),
        ({"grammar": ""}, 5, r"extra\.csv: row 5: grammar is missing"),
        ({"syntax": "good"}, 2, r"extra\.csv: row 2: syntax 'good' is not a number"),
        ({"full_text": "  "}, 4, r"extra\.csv: row 4: full_text is empty \(text_id 'x3'\)"),
        ({"text_id": "x1"}, 7, r"extra\.csv: row 7: duplicate text_id 'x1' \(rows 2 and 7\)"),
        ({"text_id": ""}, 6, r"extra\.csv: row 6: text_id is empty"),
    ],
)
def test_bad_extra_rows_are_one_line_naming_file_row_and_column(
    root: Path, cells: dict[str, str], row: int, message: str
) -> None:
    _edit_extra(root, row, **cells)
    with pytest.raises(AesError, match=message):
        open_run(Workspace.at(root), "extra", [])


def test_an_extra_id_of_a_workspace_essay_with_another_text_is_refused(root: Path) -> None:
    ws = Workspace.at(root)
    train, _ = load_workspace_dataset(ws)
    _edit_extra(root, 9, text_id=train.ids[0])
    with pytest.raises(AesError, match=rf"row 9: text_id '{train.ids[0]}' is also a workspace"):
        open_run(ws, "extra", [])


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (
            ["extra_train.score_column=x"],
            r"key 'extra_train\.score_column': unknown key \(did you mean 'score_columns'\?\)",
        ),
        (
            ["extra_train.score_columns=[cohesion, syntx]"],
            r"extra\.csv: missing required column 'syntx' .*did you mean 'syntax'",
        ),
        (
            ["extra_train.prompt=a", "extra_train.prompt_column=b"],
            r"key 'extra_train': set prompt .* or prompt_column, not both",
        ),
        (
            ["per_prompt=true"],
            r"key 'extra_train\.prompt': an essay without a prompt: a per-prompt learner",
        ),
        (
            ["per_prompt=true", "extra_train.prompt=Nowhere"],
            r"command line: key 'extra_train\.prompt': prompt 'Nowhere': a per-prompt learner",
        ),
    ],
)
def test_bad_extra_settings_name_the_key(root: Path, overrides: list[str], message: str) -> None:
    with pytest.raises(AesError, match=message):
        open_run(Workspace.at(root), "extra", overrides)


def test_a_per_prompt_learner_takes_extra_essays_of_a_training_prompt(root: Path) -> None:
    ws = Workspace.at(root)
    train, _ = load_workspace_dataset(ws)
    prompt = str(train.prompts[0])
    run = open_run(ws, "extra", ["per_prompt=true", f"extra_train.prompt={prompt}"])
    assert run.extra is not None
    assert set(run.extra.essays.prompts) == {prompt}
