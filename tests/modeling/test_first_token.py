"""The last layer computed for the first token only gives the logits of the whole model."""

from __future__ import annotations

import pytest
import torch

from multihot.core.config import ModelConfig
from multihot.inference.torch_backend import predict_logits
from multihot.modeling.encoders import encoder_from_config, scratch_config
from multihot.modeling.ensemble import SeedEnsemble
from multihot.modeling.first_token import FirstTokenLayer, first_token_only
from multihot.modeling.model import MultiLabelModel


def _model(pooling: str, seed: int = 0, attention: str = "sdpa") -> MultiLabelModel:
    torch.manual_seed(seed)
    config = scratch_config("scratch-tiny", vocab_size=50, max_length=32)
    config["_attn_implementation"] = attention
    encoder = encoder_from_config(config)
    return MultiLabelModel(encoder, num_labels=3, config=ModelConfig(pooling=pooling)).eval()


def _batch(padded: bool):
    generator = torch.Generator().manual_seed(1)
    ids = torch.randint(5, 50, (4, 9), generator=generator)
    mask = torch.ones_like(ids)
    if padded:
        for row, length in enumerate((9, 6, 3, 1)):
            ids[row, length:], mask[row, length:] = 0, 0
    return ids, mask


@pytest.mark.parametrize("attention", ["sdpa", "eager"])
@pytest.mark.parametrize("pooling", ["cls", "pooler"])
@pytest.mark.parametrize("padded", [True, False])
def test_first_token_only_gives_the_whole_models_logits(pooling, attention, padded):
    """Boolean (SDPA), additive (eager) and absent masks; the original layer is back afterwards."""
    model = _model(pooling, attention=attention)
    last = model.encoder.encoder.layer[-1]
    ids, mask = _batch(padded)
    with torch.no_grad():
        whole = model(ids, mask)
        with first_token_only(model) as switched:
            assert switched == 1
            assert isinstance(model.encoder.encoder.layer[-1], FirstTokenLayer)
            pruned = model(ids, mask)
    assert model.encoder.encoder.layer[-1] is last
    torch.testing.assert_close(pruned, whole, atol=1e-5, rtol=1e-5)


def test_models_that_read_every_token_are_left_whole():
    """Mean pooling reads every token: nothing is switched. In an ensemble only the members that
    read the first token are, and the ensemble's logits do not change."""
    mean = _model("mean")
    with first_token_only(mean) as switched:
        assert switched == 0
    ensemble = SeedEnsemble([_model("mean", 0), _model("cls", 1)]).eval()
    ids, mask = _batch(padded=True)
    with torch.no_grad():
        whole = ensemble(ids, mask)
        with first_token_only(ensemble) as switched:
            assert switched == 1
            with first_token_only(ensemble) as again:  # nested: nothing left to switch
                assert again == 0
            pruned = ensemble(ids, mask)
    torch.testing.assert_close(pruned, whole, atol=1e-5, rtol=1e-5)


def test_prediction_prunes_by_default_with_the_same_logits():
    """predict_logits runs every batch through the first-token layer unless told not to, and the
    logits are those of the whole model. Comparing the two calls' logits alone proves nothing
    about the default: they agree just as well when neither call prunes."""
    model = _model("pooler")
    last_layers = []  # the type of the model's last layer at each forward pass
    model.register_forward_pre_hook(
        lambda module, args: last_layers.append(type(module.encoder.encoder.layer[-1]))
    )
    ids = [[2, 7, 8, 9, 3], [2, 11, 3], [2, 12, 13, 14, 15, 16, 17, 3]]
    pruned = predict_logits(model, ids, pad_token_id=0, batch_size=2)
    assert last_layers == [FirstTokenLayer, FirstTokenLayer]  # 3 texts in batches of 2
    last_layers.clear()
    whole = predict_logits(model, ids, pad_token_id=0, batch_size=2, prune=False)
    assert len(last_layers) == 2 and FirstTokenLayer not in last_layers
    assert not isinstance(model.encoder.encoder.layer[-1], FirstTokenLayer)  # put back
    torch.testing.assert_close(torch.from_numpy(pruned), torch.from_numpy(whole), atol=1e-5, rtol=0)
