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


# --------------------------------------------------------- numbers as written, fields named
@pytest.mark.parametrize(
    ("written", "value"),
    [
        ("1e-5", 1e-5),
        ("1E5", 1e5),
        ("1.0e5", 1e5),
        (".5", 0.5),
        ("-.5", -0.5),
        ("+1e+3", 1e3),
        ("0.001", 0.001),
        ("1_000", 1000),
        ("12", 12),
        ("1_000.5", 1000.5),
    ],
)
def test_yaml_reads_numbers_as_a_user_writes_them(tmp_path, written, value):
    path = tmp_path / "c.yaml"
    path.write_text(f"v: {written}\n")
    got = load_config_file(path)["v"]
    assert got == value and type(got) is type(value)


def test_yaml_numbers_reach_the_config_as_numbers(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("lr: 1e-4\nhead-lr: 1E-3\nvocab_size: 1e4\nlabel_smoothing: .1\n")
    config = RunConfig.from_dict(load_config_file(path), source=str(path))
    assert config.train.lr == 1e-4 and config.train.head_lr == 1e-3
    assert config.model.vocab_size == 10000 and type(config.model.vocab_size) is int
    assert config.train.label_smoothing == 0.1


def test_strings_that_are_not_numbers_stay_strings(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("a: 1e\nb: e5\nc: 2001-12-14x\nd: '1e-4'\n")
    assert load_config_file(path) == {"a": "1e", "b": "e5", "c": "2001-12-14x", "d": "1e-4"}


# A value of the wrong type for each kind of field, and what the message says of it.
BAD_VALUES = [
    ("lr", "abc", "lr: expected a number, got 'abc'"),
    ("lr", "1e-4", "lr: expected a number, got '1e-4'"),
    ("dropout", True, "dropout: expected a number, got True"),
    ("dropout", float("nan"), "dropout: expected a number, got nan"),
    ("weight_decay", float("inf"), "weight_decay: expected a number, got inf"),
    ("warmup_ratio", [0.1], r"warmup_ratio: expected a number, got \[0.1\]"),
    ("epochs", "3", "epochs: expected an integer, got '3'"),
    ("epochs", 2.5, "epochs: expected an integer, got 2.5"),
    ("max_length", True, "max_length: expected an integer, got True"),
    ("vocab_size", 1e300, "vocab_size: expected an integer, got 1e\\+300"),
    ("lr", 10**400, "lr: expected a number, got 1000+\\.\\.\\."),
    ("batch_size", None, "batch_size: expected an integer, got null"),
    ("top1_fallback", "yes", "top1_fallback: expected true or false, got 'yes'"),
    ("freeze_embeddings", 1, "freeze_embeddings: expected true or false, got 1"),
    ("encoder", 123, "encoder: expected a string, got 123"),
    ("pooling", ["mean"], r"pooling: expected a string, got \['mean'\]"),
    ("text_col", None, "text_col: expected a string, got null"),
    ("label_cols", [1, 2], r"label_cols: expected a list of names .*, got \[1, 2\]"),
    (
        "ensemble_pooling",
        {"a": 1},
        r"ensemble_pooling: expected a list of names .*, got \{'a': 1\}",
    ),
]


@pytest.mark.parametrize(("key", "value", "message"), BAD_VALUES)
def test_a_value_of_the_wrong_type_names_the_file_and_the_field(key, value, message):
    with pytest.raises(ConfigError, match=f"^cfg.yaml: {message}$"):
        RunConfig.from_dict({key: value}, source="cfg.yaml")


def test_every_field_refuses_a_wrong_type_by_name():
    # A mapping is no field's value: each field says so itself, never a Python TypeError.
    for section in RunConfig().to_dict().values():
        for name in section:
            with pytest.raises(ConfigError, match=f"^c.json: {name}: expected .*, got "):
                RunConfig.from_dict({name: {"x": 1}}, source="c.json")


def test_a_wrong_type_in_a_section_and_a_range_error_name_the_file(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("model:\n  max_length: '64'\n")
    with pytest.raises(ConfigError, match=r"c.yaml: max_length: expected an integer, got '64'"):
        RunConfig.from_dict(load_config_file(path), source=str(path))
    with pytest.raises(ConfigError, match="^c.yaml: dropout: expected a value in"):
        RunConfig.from_dict({"dropout": 2}, source="c.yaml")


def test_a_key_that_is_not_a_string_is_an_unknown_key():
    with pytest.raises(ConfigError, match="c.yaml: unknown key 1;"):
        RunConfig.from_dict({1: 2}, source="c.yaml")


def test_an_integer_too_long_to_print_is_named_not_printed():
    message = "^c.json: max_length: expected an integer, got an integer too long to print$"
    with pytest.raises(ConfigError, match=message):
        RunConfig.from_dict({"model": {"max_length": 10**5000}}, source="c.json")


def test_numpy_numbers_are_numbers():
    import numpy as np

    config = RunConfig().override(epochs=np.int64(3), lr=np.float32(0.5), dropout=np.float64(0))
    assert type(config.train.epochs) is int and config.train.epochs == 3
    assert type(config.train.lr) is float and config.train.lr == 0.5
    with pytest.raises(ConfigError, match="^top1_fallback: expected true or false"):
        RunConfig().override(top1_fallback=np.int64(1))


def test_values_are_kept_in_their_field_type():
    config = RunConfig.from_dict({"lr": 1, "epochs": 3.0, "label_cols": "a, b"})
    assert type(config.train.lr) is float and config.train.lr == 1.0
    assert type(config.train.epochs) is int and config.train.epochs == 3
    assert config.data.label_cols == ["a", "b"]
    assert RunConfig.from_dict({"ensemble_pooling": "mean,cls"}).model.ensemble_pooling == [
        "mean",
        "cls",
    ]
