from __future__ import annotations

import pytest

from multihot.core.config import RunConfig, load_config_file
from multihot.core.errors import ConfigError


def test_flat_and_nested_keys_with_dashes():
    flat = RunConfig.from_dict(
        {"epochs": 2, "batch-size": 8, "pooling": "mean", "text_col": "body"}
    )
    nested = RunConfig.from_dict(
        {
            "train": {"epochs": 2, "batch_size": 8},
            "model": {"pooling": "mean"},
            "data": {"text_col": "body"},
        }
    )
    assert flat == nested
    assert flat.train.epochs == 2 and flat.model.pooling == "mean" and flat.data.text_col == "body"


def test_round_trip_through_dict():
    config = RunConfig().override(epochs=7, head="mlp", label_cols=["a", "b"])
    assert RunConfig.from_dict(config.to_dict()) == config


def test_override_ignores_none():
    assert RunConfig().override(epochs=None).train.epochs == RunConfig().train.epochs


@pytest.mark.parametrize(
    ("key", "value", "fragment"),
    [
        ("epochs", 0, "epochs"),
        ("pooling", "median", "pooling"),
        ("precision", "fp8", "precision"),
        ("metric", "accuracy", "metric"),
        ("dropout", 1.5, "dropout"),
        ("val_fraction", 1.0, "val_fraction"),
        ("num_workers", -1, "num_workers"),
        ("colour", "red", "unknown key 'colour'"),
    ],
)
def test_invalid_values(key, value, fragment):
    with pytest.raises(ConfigError, match=fragment):
        RunConfig.from_dict({key: value})


def test_yaml_and_json_files(tmp_path):
    (tmp_path / "c.yaml").write_text("epochs: 4\nlr: 0.001\n")
    (tmp_path / "c.json").write_text('{"epochs": 4, "lr": 0.001}')
    assert (
        load_config_file(tmp_path / "c.yaml")
        == load_config_file(tmp_path / "c.json")
        == {"epochs": 4, "lr": 0.001}
    )
    (tmp_path / "bad.yaml").write_text("- a list\n")
    with pytest.raises(ConfigError, match="mapping"):
        load_config_file(tmp_path / "bad.yaml")
    (tmp_path / "broken.json").write_text("{")
    with pytest.raises(ConfigError, match="not valid JSON"):
        load_config_file(tmp_path / "broken.json")
    with pytest.raises(ConfigError, match="no such config file"):
        load_config_file(tmp_path / "missing.yaml")
