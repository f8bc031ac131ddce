"""Poolings, heads and the model: masking, shapes, and every combination trains and round-trips."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from helpers import TINY, TOY_TEXTS
from multihot import Classifier
from multihot.core.config import HEADS, POOLINGS, ModelConfig
from multihot.modeling.encoders import encoder_from_config, scratch_config
from multihot.modeling.pooling import build_pooling


@pytest.mark.parametrize("name", ["cls", "mean", "max", "attention", "label-attention"])
def test_padding_gets_no_weight(name):
    torch.manual_seed(0)
    pooling = build_pooling(name, hidden_size=8, num_labels=3)
    hidden = torch.randn(1, 4, 8)
    mask = torch.ones(1, 4, dtype=torch.long)
    # The same text padded with 3 positions of garbage: the pooled vector must not change.
    padded = torch.cat([hidden, 100 * torch.randn(1, 3, 8)], dim=1)
    padded_mask = torch.cat([mask, torch.zeros(1, 3, dtype=torch.long)], dim=1)
    torch.testing.assert_close(pooling(hidden, mask, None), pooling(padded, padded_mask, None))


def test_label_attention_weights_sum_to_one_over_real_tokens():
    pooling = build_pooling("label-attention", hidden_size=8, num_labels=3)
    mask = torch.tensor([[1, 1, 0, 0]])
    weights = pooling.attention(torch.randn(1, 4, 8), mask)
    assert weights.shape == (1, 3, 4)
    torch.testing.assert_close(weights.sum(-1), torch.ones(1, 3))
    assert (weights[..., 2:] == 0).all()


@pytest.mark.parametrize("pooling", POOLINGS)
@pytest.mark.parametrize("head", HEADS)
def test_forward_returns_logits(pooling, head):
    from multihot.modeling.model import MultiLabelModel

    encoder = encoder_from_config(scratch_config("scratch-tiny", vocab_size=50, max_length=16))
    model = MultiLabelModel(
        encoder, num_labels=3, config=ModelConfig(pooling=pooling, head=head, head_hidden=16)
    )
    ids = torch.tensor([[2, 7, 8, 3, 0, 0], [2, 9, 3, 0, 0, 0]])
    logits = model(ids, (ids != 0).long())
    assert logits.shape == (2, 3) and logits.dtype == torch.float32


@pytest.mark.parametrize(
    ("pooling", "head"),
    [(p, "linear") for p in POOLINGS] + [(p, "mlp") for p in ("cls", "label-attention")],
)
def test_every_pooling_and_head_trains_and_round_trips(toy_file, tmp_path, pooling, head):
    clf = Classifier.train(
        toy_file,
        toy_file,
        output=tmp_path / "run",
        epochs=1,
        batch_size=4,
        pooling=pooling,
        head=head,
        head_hidden=16,
        **TINY,
    )
    assert np.isfinite(clf.history[-1]["train_loss"])
    before = clf.predict_proba(TOY_TEXTS, precision="fp32")
    after = Classifier.load(tmp_path / "run").predict_proba(TOY_TEXTS, precision="fp32")
    np.testing.assert_array_equal(before, after)


def test_the_mlp_head_activation_is_a_choice(toy_file, tmp_path):
    """--head-activation relu gives the mlp head a ReLU (the founding design's FC 256 + ReLU),
    gelu stays the default; it is saved with the run, and another value is a config error."""
    from multihot.core.errors import ConfigError
    from multihot.modeling.heads import build_head

    relu = build_head("mlp", 8, 3, 16, 0.0, "relu")
    gelu = build_head("mlp", 8, 3, 16, 0.0)
    assert isinstance(relu.act, torch.nn.ReLU) and isinstance(gelu.act, torch.nn.GELU)
    gelu.load_state_dict(relu.state_dict())  # same weights: only the activation differs
    x = torch.randn(4, 8)
    assert not torch.allclose(relu(x), gelu(x))
    with pytest.raises(ConfigError, match="head_activation"):
        ModelConfig(head_activation="sigmoid")
    clf = Classifier.train(
        toy_file,
        toy_file,
        output=tmp_path / "run",
        epochs=1,
        head="mlp",
        head_hidden=16,
        head_activation="relu",
        **TINY,
    )
    again = Classifier.load(tmp_path / "run")
    assert again.config.model.head_activation == "relu"
    assert isinstance(again.model.head.act, torch.nn.ReLU)
    probs = clf.predict_proba(TOY_TEXTS, precision="fp32")
    np.testing.assert_array_equal(probs, again.predict_proba(TOY_TEXTS, precision="fp32"))
