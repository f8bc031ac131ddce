"""Untrusted files: pickled weights are refused (and never unpickled into code); configs are parsed.

Every test plants a pickle whose unpickling would create a marker file, then checks that loading is
refused with a hint on converting to safetensors and that the marker never appears, with and
without the ``trust_remote_weights`` opt-in (which reads pickles with ``weights_only=True`` only).
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch

from helpers import TINY, assert_clean_error, copy_run, invoke, write_payload
from multihot import Classifier
from multihot.core.config import load_config_file
from multihot.core.errors import ConfigError, EncoderError, RunDirError
from multihot.inference.predictor import Predictor
from multihot.modeling.encoders import load_pretrained


@pytest.fixture
def marker(tmp_path) -> Path:
    return tmp_path / "pwned"


@pytest.fixture
def evil_bert(local_bert, tmp_path, marker) -> Path:
    """A tiny BERT directory with its safetensors removed and a malicious pytorch_model.bin."""
    path = tmp_path / "evil-bert"
    shutil.copytree(local_bert, path)
    (path / "model.safetensors").unlink()
    write_payload(path / "pytorch_model.bin", marker)
    return path


@pytest.fixture
def run_copy(tiny_run, tmp_path) -> Path:
    return copy_run(tiny_run, tmp_path / "run")


def test_the_payload_is_armed(tmp_path, marker):
    """Guards the tests below: an unrestricted unpickle of the payload does create the marker."""
    path = write_payload(tmp_path / "p.bin", marker)
    torch.load(path, weights_only=False)
    assert marker.exists()


# --- Hugging Face encoder directories ------------------------------------------------------------


def test_pickled_encoder_is_refused_with_a_conversion_hint(evil_bert, marker):
    with pytest.raises(EncoderError) as info:
        load_pretrained(str(evil_bert))
    message = str(info.value)
    assert "pytorch_model.bin" in message and "model.safetensors" in message
    assert "weights_only=True" in message and "save_file" in message
    assert "--trust-remote-weights" in message and "\n" not in message
    assert not marker.exists()


def test_opt_in_still_never_runs_pickled_code(evil_bert, marker):
    with pytest.raises(EncoderError) as info:
        load_pretrained(str(evil_bert), trust_remote_weights=True)
    assert "weights_only=True refused" in str(info.value)
    assert not marker.exists()


def test_opt_in_loads_plain_pickled_weights(local_bert, tmp_path):
    """A pickle of tensors only is what the opt-in is for: it loads, with the same weights."""
    from safetensors.torch import load_file

    path = tmp_path / "bin-bert"
    shutil.copytree(local_bert, path)
    state = load_file(str(path / "model.safetensors"))
    (path / "model.safetensors").unlink()
    torch.save(state, path / "pytorch_model.bin")

    with pytest.raises(EncoderError, match="trust-remote-weights"):
        load_pretrained(str(path))
    encoder, _ = load_pretrained(str(path), trust_remote_weights=True)
    loaded = encoder.state_dict()
    for key, tensor in state.items():
        torch.testing.assert_close(loaded[key], tensor)


def test_a_pickled_file_given_as_encoder_is_refused(evil_bert, marker):
    for trust in (False, True):
        with pytest.raises(EncoderError, match="pickled weights file") as info:
            load_pretrained(str(evil_bert / "pytorch_model.bin"), trust_remote_weights=trust)
        assert "model.safetensors" in str(info.value)
    assert not marker.exists()


def test_training_on_a_pickled_encoder_is_refused(evil_bert, marker, toy_file, tmp_path):
    for trust in (False, True):
        with pytest.raises(EncoderError):
            Classifier.train(
                toy_file,
                toy_file,
                encoder=str(evil_bert),
                epochs=1,
                output=tmp_path / "out",
                trust_remote_weights=trust,
            )
    assert not marker.exists() and not (tmp_path / "out").exists()


# --- run directories -------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["model.bin", "pytorch_model.bin", "model.pt", "model.ckpt"])
def test_run_with_pickled_weights_is_refused(run_copy, marker, name):
    (run_copy / "model.safetensors").unlink()
    write_payload(run_copy / name, marker)
    for load in (Classifier.load, Predictor.load):
        with pytest.raises(RunDirError) as info:
            load(run_copy)
        message = str(info.value)
        assert name in message and "model.safetensors" in message
        assert "weights_only=True" in message and "save_file" in message
    assert not marker.exists()


def test_pickle_renamed_to_safetensors_is_named_as_a_pickle(run_copy, marker):
    write_payload(run_copy / "model.safetensors", marker)
    with pytest.raises(RunDirError, match="a pickled PyTorch checkpoint, not safetensors"):
        Classifier.load(run_copy)
    assert not marker.exists()


# --- the command line ------------------------------------------------------------------------------


def tiny_train(*args):
    return invoke(
        "train", *args, "--epochs", 1, "--max-length", TINY["max_length"], "--precision", "fp32"
    )


def test_cli_refuses_a_pickled_encoder(evil_bert, marker, toy_file, tmp_path):
    out = tmp_path / "out"
    result = tiny_train(toy_file, "--encoder", evil_bert, "-o", out)
    assert_clean_error(result, "pytorch_model.bin", "--trust-remote-weights", "save_file")
    result = tiny_train(toy_file, "--encoder", evil_bert, "-o", out, "--trust-remote-weights")
    assert_clean_error(result, "weights_only=True refused")
    assert not marker.exists() and not out.exists()


def test_cli_refuses_a_run_with_pickled_weights(run_copy, marker, tmp_path):
    (run_copy / "model.safetensors").unlink()
    write_payload(run_copy / "pytorch_model.bin", marker)
    out = tmp_path / "predictions.jsonl"
    result = invoke("predict", run_copy, "--text", "hello", "-o", out)
    assert_clean_error(result, "pytorch_model.bin", "weights_only=True")
    assert not marker.exists() and not out.exists()


# --- config files ----------------------------------------------------------------------------------

PYTHON_TAGS = [
    "!!python/object/apply:pathlib.Path.touch [{marker}]",
    "epochs: !!python/object/apply:pathlib.Path.touch [{marker}]",
    "!!python/object/new:pathlib.PosixPath [{marker}]",
    "encoder: !!python/name:os.system",
]


@pytest.mark.parametrize("template", PYTHON_TAGS)
def test_yaml_python_tags_are_refused(tmp_path, marker, template):
    path = tmp_path / "cfg.yaml"
    path.write_text(template.format(marker=marker), encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        load_config_file(path)
    message = str(info.value)
    assert message.startswith(f"{path}: not valid YAML: could not determine a constructor")
    assert "python/" in message and "\n" not in message
    assert not marker.exists()


def test_cli_config_with_a_python_tag_is_a_clean_error(tmp_path, marker, toy_file):
    path = tmp_path / "cfg.yml"
    path.write_text(PYTHON_TAGS[0].format(marker=marker), encoding="utf-8")
    result = tiny_train(toy_file, "--config", path, "-o", tmp_path / "out")
    assert_clean_error(result, str(path), "not valid YAML")
    assert not marker.exists() and not (tmp_path / "out").exists()
