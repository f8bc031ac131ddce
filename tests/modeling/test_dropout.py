import pytest
import torch
from torch import nn

from multihot.modeling.dropout import FastDropout, use_fast_dropout
from multihot.modeling.encoders import encoder_from_config, scratch_config


@pytest.mark.parametrize("p", [0.1, 0.3])
def test_drop_rate_and_scaling_match_nn_dropout(p):
    torch.manual_seed(0)
    x = torch.ones(200_001)
    y = FastDropout(p).train()(x)
    dropped = (y == 0).float().mean().item()
    assert dropped == pytest.approx(p, abs=0.004)
    kept = y[y != 0]
    assert torch.allclose(kept, torch.full_like(kept, 1 / (1 - p)))
    # Unbiased like nn.Dropout: the mean is kept.
    assert y.mean().item() == pytest.approx(1.0, abs=0.01)


def test_mask_positions_are_uniform_over_the_four_16_bit_lanes():
    # Each 64-bit draw feeds four consecutive elements; none of the four may be biased.
    torch.manual_seed(1)
    y = FastDropout(0.25).train()(torch.ones(400_000))
    rates = (y.view(-1, 4) == 0).float().mean(0)
    assert torch.allclose(rates, torch.full((4,), 0.25), atol=0.006)


def test_eval_mode_and_zero_p_are_identity():
    x = torch.randn(3, 5)
    assert FastDropout(0.5).eval()(x) is x
    assert FastDropout(0.0).train()(x) is x


def test_seeded_masks_repeat_and_gradients_flow_through_kept_elements():
    x = torch.randn(4, 7, 16, dtype=torch.bfloat16, requires_grad=True)
    torch.manual_seed(3)
    a = FastDropout(0.2).train()(x)
    torch.manual_seed(3)
    b = FastDropout(0.2).train()(x)
    assert torch.equal(a, b)
    assert a.dtype == torch.bfloat16 and a.shape == x.shape
    a.sum().backward()
    assert torch.equal(x.grad != 0, a != 0)


def test_use_fast_dropout_swaps_modules_but_not_weights():
    encoder = encoder_from_config(scratch_config("scratch-tiny", vocab_size=50, max_length=16))
    before = {k: v.clone() for k, v in encoder.state_dict().items()}
    stock = sum(type(m) is nn.Dropout for m in encoder.modules())
    assert stock > 0
    assert use_fast_dropout(encoder) == stock
    assert not any(type(m) is nn.Dropout for m in encoder.modules())
    after = encoder.state_dict()
    assert before.keys() == after.keys()
    assert all(torch.equal(before[k], after[k]) for k in before)
    # HF attention reads the module's p for the attention-probability dropout.
    assert all(m.p == 0.1 for m in encoder.modules() if isinstance(m, FastDropout))


def test_bad_probability_is_refused():
    with pytest.raises(ValueError, match="dropout probability"):
        FastDropout(1.0)
