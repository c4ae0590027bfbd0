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


def test_misspelled_nested_key_names_the_closest(tmp_path: Path) -> None:
    path = write(tmp_path, "kind: deberta\n")
    with pytest.raises(AesError) as err:
        load_config(Experiment, path, ["train.learning_rat=3e-5"])
    assert "key 'train.learning_rat'" in str(err.value)
    assert "did you mean 'learning_rate'" in str(err.value)
    assert str(path) in str(err.value)


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


def test_data_config_rejects_unknown_key(tmp_path: Path) -> None:
    path = write(tmp_path, "train: essays.csv\nsubgroup: [gender]\n")
    with pytest.raises(AesError, match="did you mean 'subgroups'"):
        load_config(DataConfig, path)
