"""What an encoder family supports is read from the model, and a setting it cannot honour is
refused when the encoder is loaded: one line, and nothing written."""

from __future__ import annotations

from pathlib import Path

import pytest

from family_models import tiny_family
from helpers import assert_clean_error, invoke
from multihot import Classifier
from multihot.core.config import ModelConfig
from multihot.core.errors import ConfigError
from multihot.modeling.families import EncoderSupport, encoder_support
from multihot.modeling.model import MultiLabelModel

NO_POOLER = (
    "pooling pooler: distilbert encoders have no pooler; "
    "use cls, mean, max, attention or label-attention"
)
SMALL = dict(epochs=1, batch_size=4, max_length=32, precision="fp32", seed=0)


SUPPORT = {  # family: (pooler, gradient checkpointing, first-token pruning)
    "bert": (True, True, True),
    "roberta": (True, True, True),
    "distilbert": (False, True, False),
    "albert": (True, False, False),
    "electra": (False, True, True),
    "deberta-v2": (False, True, False),
    "xlm-roberta": (True, True, True),
    "mpnet": (True, False, False),
    "modernbert": (False, True, False),
}


@pytest.fixture(scope="module")
def families_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("families")


def _encoder(family: str, directory: Path):
    """``family``'s tiny random-weight encoder (:mod:`family_models`), loaded as a user's would be."""
    from multihot.modeling.encoders import load_pretrained

    return load_pretrained(str(tiny_family(family, directory)))[0]


@pytest.fixture(scope="module")
def local_distilbert(families_dir) -> Path:
    return tiny_family("distilbert", families_dir)


@pytest.fixture(scope="module")
def local_albert(families_dir) -> Path:
    return tiny_family("albert", families_dir)


@pytest.mark.parametrize("family", sorted(SUPPORT))
def test_families_answer_from_the_model(family, families_dir):
    expected = EncoderSupport(family, *SUPPORT[family])
    assert encoder_support(_encoder(family, families_dir)) == expected


def test_the_model_refuses_pooler_pooling_without_a_pooler(families_dir):
    """Built for a caller of fit alone, not at its first forward step with a traceback."""
    with pytest.raises(ConfigError) as err:
        MultiLabelModel(_encoder("distilbert", families_dir), 3, ModelConfig(pooling="pooler"))
    assert str(err.value) == NO_POOLER
    MultiLabelModel(_encoder("bert", families_dir), 3, ModelConfig(pooling="pooler"))


def test_pooler_pooling_without_a_pooler_fails_before_anything_is_written(
    local_distilbert, toy_file, tmp_path
):
    out = tmp_path / "run"
    with pytest.raises(ConfigError) as err:
        Classifier.train(
            toy_file, toy_file, output=out, encoder=str(local_distilbert), pooling="pooler", **SMALL
        )
    assert str(err.value) == NO_POOLER
    assert not out.exists()
    with pytest.raises(ConfigError, match=r"^ensemble_pooling pooler: distilbert encoders"):
        Classifier.train(
            toy_file,
            toy_file,
            output=out,
            encoder=str(local_distilbert),
            ensemble=2,
            ensemble_pooling=["cls", "pooler"],
            **SMALL,
        )
    assert not out.exists()
    # The corrected command trains into the same directory.
    Classifier.train(
        toy_file, toy_file, output=out, encoder=str(local_distilbert), pooling="cls", **SMALL
    )
    assert (out / "config.json").exists() and not (out / "checkpoints").exists()


def test_cli_pooler_without_a_pooler_is_one_line(local_distilbert, toy_file, tmp_path):
    out = tmp_path / "run"
    result = invoke(
        "train",
        toy_file,
        "--val",
        toy_file,
        "-o",
        out,
        "--encoder",
        local_distilbert,
        "--pooling",
        "pooler",
        "--epochs",
        1,
        "--precision",
        "fp32",
    )
    assert_clean_error(result, NO_POOLER)
    assert not out.exists()


def test_gradient_checkpointing_where_unsupported_fails_before_anything_is_written(
    local_albert, toy_file, tmp_path
):
    out = tmp_path / "run"
    with pytest.raises(ConfigError) as err:
        Classifier.train(
            toy_file,
            toy_file,
            output=out,
            encoder=str(local_albert),
            gradient_checkpointing=True,
            **SMALL,
        )
    assert not out.exists()
    message = str(err.value)
    assert message.startswith(
        "gradient_checkpointing: transformers does not support it for albert encoders"
    )
    assert "\n" not in message
