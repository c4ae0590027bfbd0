"""Configs: YAML + dot-list overrides into strict models; unknown keys fail with a suggestion."""

from __future__ import annotations

from pathlib import Path

import pytest

from aes_ensemble.config import (
    DataConfig,
    StrictModel,
    apply_overrides,
    config_hash,
    load_config,
    validate,
)
from aes_ensemble.errors import AesError


class Train(StrictModel):
    learning_rate: float = 2e-5
    epochs: int = 3


class Model(StrictModel):
    max_length: int = 512
    pooling: str = "mean"


class Experiment(StrictModel):
    kind: str
    train: Train = Train()
    model: Model = Model()


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "exp.yaml"
    path.write_text(text)
    return path


def test_overrides_apply_on_top_of_yaml(tmp_path: Path) -> None:
    path = write(tmp_path, "kind: deberta\ntrain:\n  epochs: 2\n")
    cfg = load_config(Experiment, path, ["train.learning_rate=3e-5", "model.max_length=1024"])
    assert cfg.train.learning_rate == 3e-5
    assert cfg.train.epochs == 2
    assert cfg.model.max_length == 1024


def test_misspelled_override_is_blamed_on_the_command_line(tmp_path: Path) -> None:
    path = write(tmp_path, "kind: deberta\n")
    with pytest.raises(AesError) as err:
        load_config(Experiment, path, ["train.learning_rat=3e-5"])
    assert str(err.value) == (
        "command line: key 'train.learning_rat': unknown key (did you mean 'learning_rate'?)"
    )
    assert str(path) not in str(err.value)
    with pytest.raises(AesError, match=r"^command line: key 'model.max_length': .*'abc'"):
        load_config(Experiment, path, ["model.max_length=abc"])
    with pytest.raises(AesError, match=r"^command line: key 'modle': unknown key"):
        load_config(Experiment, path, ["modle.pooling=cls"])
    with pytest.raises(AesError, match=r"^command line: override 'train.epochs' must look like"):
        load_config(Experiment, path, ["train.epochs"])


def test_bad_value_in_the_file_still_names_the_file(tmp_path: Path) -> None:
    path = write(tmp_path, "kind: deberta\ntrain:\n  learning_rat: 1\n")
    with pytest.raises(AesError) as err:
        load_config(Experiment, path, ["model.max_length=1024"])
    assert str(err.value).startswith(f"{path}: key 'train.learning_rat': unknown key")


def test_learner_override_names_the_command_line_not_the_shipped_config() -> None:
    from aes_ensemble.learners.registry import load_learner_config
    from aes_ensemble.workspace import shipped_configs

    lgbm, deberta = shipped_configs()["lgbm"], shipped_configs()["deberta"]
    with pytest.raises(AesError) as err:
        load_learner_config(lgbm, ["params.num_leavs=3"])
    assert str(err.value) == (
        "command line: key 'params.num_leavs': unknown key (did you mean 'num_leaves'?)"
    )
    with pytest.raises(AesError, match=r"^command line: key 'model.max_length': .*'abc'"):
        load_learner_config(deberta, ["model.max_length=abc"])
    with pytest.raises(AesError, match=r"^command line: key 'kind': unknown learner kind 'lgb'"):
        load_learner_config(lgbm, ["kind=lgb"])
    assert load_learner_config(lgbm, ["params.num_leaves=3"]).params.num_leaves == 3  # type: ignore[attr-defined]


def test_stack_flags_are_blamed_on_the_flag() -> None:
    from aes_ensemble.stacking.stack_workspace import stack_config
    from aes_ensemble.workspace import Workspace

    ws = Workspace.at(Path(__file__).resolve().parents[1])
    with pytest.raises(AesError) as err:
        stack_config(ws, None, {"thresholds": "foo"})
    assert str(err.value) == "--thresholds: 'foo' is not one of nelder-mead, optuna, none"
    with pytest.raises(AesError, match=r"^--thresholds: 'optuma' .*did you mean 'optuna'"):
        stack_config(ws, None, {"thresholds": "optuma"})
    with pytest.raises(AesError, match=r"^--meta: unknown meta-learner 'foo'"):
        stack_config(ws, None, {"meta": "foo"})
    assert stack_config(ws, None, {"thresholds": "none"}).thresholds == "none"


def test_misspelled_top_level_key_in_yaml(tmp_path: Path) -> None:
    path = write(tmp_path, "kind: deberta\nmodle:\n  pooling: cls\n")
    with pytest.raises(AesError, match="did you mean 'model'"):
        load_config(Experiment, path)


def test_wrong_type_names_key_and_value(tmp_path: Path) -> None:
    path = write(tmp_path, "kind: deberta\ntrain:\n  epochs: many\n")
    with pytest.raises(AesError, match=r"key 'train.epochs'.*'many'"):
        load_config(Experiment, path)


def test_missing_required_key(tmp_path: Path) -> None:
    with pytest.raises(AesError, match="key 'kind': required key is missing"):
        load_config(Experiment, write(tmp_path, "train: {epochs: 1}\n"))


def test_invalid_yaml_names_the_line(tmp_path: Path) -> None:
    path = write(tmp_path, "kind: deberta\ntrain: [unclosed\n")
    with pytest.raises(AesError, match=r"row \d+: invalid YAML"):
        load_config(Experiment, path)


def test_malformed_override() -> None:
    with pytest.raises(AesError, match=r"must look like key\.subkey=value"):
        apply_overrides({}, ["train.epochs"])


def test_hash_is_stable_and_changes_with_settings() -> None:
    a = validate(Experiment, {"kind": "x"})
    b = validate(Experiment, {"kind": "x", "train": {"epochs": 3}})
    c = validate(Experiment, {"kind": "x", "train": {"epochs": 4}})
    assert config_hash(a) == config_hash(b)
    assert config_hash(a) != config_hash(c)
    assert len(config_hash(a)) == 16


def test_unreadable_config_is_one_error_line(tmp_path: Path) -> None:
    binary = tmp_path / "data.yaml"
    binary.write_bytes(b"train: \xff\xfe essays.csv\n")
    with pytest.raises(AesError, match=r"data.yaml: invalid UTF-8 at byte offset 7;"):
        load_config(DataConfig, binary)
    with pytest.raises(AesError, match="is a folder, not a config file"):
        load_config(DataConfig, tmp_path)
    bad_format = write(tmp_path, "train: essays.csv\nformat: elipse\n")
    with pytest.raises(AesError, match=r"key 'format': 'elipse' is not one of .*'ellipse'"):
        load_config(DataConfig, bad_format)


def test_data_config_rejects_unknown_key(tmp_path: Path) -> None:
    path = write(tmp_path, "train: essays.csv\nsubgroup: [gender]\n")
    with pytest.raises(AesError, match="did you mean 'subgroups'"):
        load_config(DataConfig, path)
