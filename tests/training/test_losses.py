"""Each loss against a direct computation of its formula, and the special cases that reduce to BCE."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from multihot.core.errors import ConfigError
from multihot.training.losses import (
    AsymmetricLoss,
    BCELoss,
    FocalLoss,
    build_loss,
    compute_pos_weight,
    label_loss,
)


@pytest.fixture
def batch():
    torch.manual_seed(0)
    return (
        3 * torch.randn(6, 4),
        (torch.rand(6, 4) > 0.6).float(),
        torch.tensor([1.0, 2.0, 0.5, 3.0]),
    )


def test_bce_matches_direct_computation(batch):
    logits, targets, weight = batch
    p = torch.sigmoid(logits)
    direct = -(weight * targets * torch.log(p) + (1 - targets) * torch.log(1 - p)).mean()
    torch.testing.assert_close(BCELoss(weight)(logits, targets), direct)
    reference = torch.nn.functional.binary_cross_entropy_with_logits(
        logits, targets, pos_weight=weight
    )
    torch.testing.assert_close(BCELoss(weight)(logits, targets), reference)


def test_focal_matches_direct_computation_and_gamma_zero_is_bce(batch):
    logits, targets, weight = batch
    p = torch.sigmoid(logits)
    g = 2.0
    direct = -(
        weight * targets * (1 - p) ** g * torch.log(p) + (1 - targets) * p**g * torch.log(1 - p)
    ).mean()
    torch.testing.assert_close(FocalLoss(g, weight)(logits, targets), direct)
    torch.testing.assert_close(
        FocalLoss(0.0, weight)(logits, targets), BCELoss(weight)(logits, targets)
    )
    # Focusing only ever lowers the loss of each element.
    assert FocalLoss(2.0)(logits, targets) < BCELoss()(logits, targets)


def test_asl_matches_direct_computation_and_reduces_to_bce(batch):
    logits, targets, weight = batch
    p = torch.sigmoid(logits)
    gn, gp, m = 4.0, 1.0, 0.05
    p_m = (p - m).clamp(min=0)
    direct = -(
        weight * targets * (1 - p) ** gp * torch.log(p)
        + (1 - targets) * p_m**gn * torch.log(1 - p_m)
    ).mean()
    torch.testing.assert_close(AsymmetricLoss(gn, gp, m, weight)(logits, targets), direct)
    torch.testing.assert_close(
        AsymmetricLoss(0.0, 0.0, 0.0)(logits, targets), BCELoss()(logits, targets)
    )
    # A negative below the clip costs nothing.
    assert (
        AsymmetricLoss(4.0, 0.0, 0.05)(torch.tensor([[-5.0]]), torch.tensor([[0.0]])).item() == 0.0
    )


def test_label_smoothing_moves_targets(batch):
    logits, targets, _ = batch
    e = 0.1
    smoothed = targets * (1 - e) + e / 2
    reference = torch.nn.functional.binary_cross_entropy_with_logits(logits, smoothed)
    torch.testing.assert_close(BCELoss(label_smoothing=e)(logits, targets), reference)
    torch.testing.assert_close(FocalLoss(0.0, label_smoothing=e)(logits, targets), reference)


def test_bf16_logits_are_computed_in_float32(batch):
    logits, targets, _ = batch
    loss = build_loss("asl")(logits.bfloat16(), targets)
    assert loss.dtype == torch.float32 and torch.isfinite(loss)


def test_unknown_loss():
    with pytest.raises(ConfigError, match="focal"):
        build_loss("hinge")


def test_pos_weight_modes():
    targets = np.array([[1, 0, 0], [0, 0, 1], [0, 0, 1], [0, 0, 1]], dtype=np.float32)
    np.testing.assert_allclose(compute_pos_weight(targets, "auto"), [3.0, 1.0, 1 / 3])
    np.testing.assert_allclose(compute_pos_weight(targets, "sqrt"), np.sqrt([3.0, 1.0, 1 / 3]))
    assert compute_pos_weight(targets, "none") is None


def test_pos_weight_files(tmp_path):
    targets = np.zeros((3, 3), dtype=np.float32)
    names = ["a", "b", "c"]
    (tmp_path / "list.json").write_text(json.dumps([1.0, 2.0, 3.0]))
    (tmp_path / "map.json").write_text(json.dumps({"b": 4.0}))
    np.testing.assert_allclose(
        compute_pos_weight(targets, str(tmp_path / "list.json"), names), [1, 2, 3]
    )
    np.testing.assert_allclose(
        compute_pos_weight(targets, str(tmp_path / "map.json"), names), [1, 4, 1]
    )
    (tmp_path / "short.json").write_text("[1.0]")
    with pytest.raises(ConfigError, match="expected 3 weights"):
        compute_pos_weight(targets, str(tmp_path / "short.json"), names)
    (tmp_path / "bad.json").write_text('{"zzz": 2}')
    with pytest.raises(ConfigError, match="unknown labels"):
        compute_pos_weight(targets, str(tmp_path / "bad.json"), names)
    (tmp_path / "neg.json").write_text("[1, -1, 1]")
    with pytest.raises(ConfigError, match="positive"):
        compute_pos_weight(targets, str(tmp_path / "neg.json"), names)
    with pytest.raises(ConfigError, match="no such file"):
        compute_pos_weight(targets, str(tmp_path / "missing.json"), names)


# --- partial labels: the loss over the known pairs only -----------------------------------------
LOSSES = {
    "bce": lambda w: BCELoss(w, label_smoothing=0.1),
    "focal": lambda w: FocalLoss(2.0, w, label_smoothing=0.1),
    "asl": lambda w: AsymmetricLoss(4.0, 1.0, 0.05, w, label_smoothing=0.1),
}


@pytest.fixture
def known():
    generator = torch.Generator().manual_seed(1)
    mask = torch.rand(6, 4, generator=generator) > 0.4
    mask[0] = False  # a text known for no label
    return mask


def test_masked_bce_equals_bce_over_the_known_pairs(batch, known):
    logits, targets, weight = batch
    reference = torch.nn.functional.binary_cross_entropy_with_logits(
        logits[known], targets[known], pos_weight=weight.expand_as(logits)[known]
    )
    torch.testing.assert_close(BCELoss(weight)(logits, targets, known), reference)


@pytest.mark.parametrize("name", sorted(LOSSES))
def test_masked_loss_is_the_mean_over_known_pairs(batch, known, name):
    """Per known pair, the loss of that pair alone (its label's weight); the mean over them."""
    logits, targets, weight = batch
    masked = LOSSES[name](weight)(logits, targets, known)
    pairs = [
        LOSSES[name](weight[j : j + 1])(logits[i : i + 1, j : j + 1], targets[i : i + 1, j : j + 1])
        for i, j in known.nonzero().tolist()
    ]
    torch.testing.assert_close(masked, torch.stack(pairs).mean())


@pytest.mark.parametrize("name", sorted(LOSSES))
def test_unknown_pairs_get_no_gradient_and_do_not_move_the_loss(batch, known, name):
    logits, targets, weight = batch
    logits = logits.clone().requires_grad_(True)
    loss = LOSSES[name](weight)(logits, targets, known)
    loss.backward()
    assert (logits.grad[~known] == 0).all() and (logits.grad[known] != 0).any()
    flipped = torch.where(known, targets, 1 - targets)  # other targets at the unknown pairs
    assert LOSSES[name](weight)(logits.detach(), flipped, known) == loss.detach()


def test_an_all_known_mask_is_the_plain_mean_and_none_known_is_zero(batch):
    logits, targets, weight = batch
    every = torch.ones_like(targets, dtype=torch.bool)
    torch.testing.assert_close(
        BCELoss(weight)(logits, targets, every), BCELoss(weight)(logits, targets)
    )
    nothing = torch.zeros_like(every)
    assert BCELoss(weight)(logits, targets, nothing).item() == 0.0


def test_label_loss_passes_the_mask_only_when_the_batch_has_one(batch, known):
    logits, targets, _ = batch

    class TwoArguments(torch.nn.Module):  # a loss written before partial labels
        def forward(self, logits, targets):
            return BCELoss()(logits, targets)

    plain = label_loss(TwoArguments(), logits, {"targets": targets})
    assert torch.equal(plain, BCELoss()(logits, targets))
    masked = label_loss(BCELoss(), logits, {"targets": targets, "known": known})
    assert torch.equal(masked, BCELoss()(logits, targets, known))


def test_pos_weight_counts_known_negatives():
    targets = np.array([[1, 0], [0, 0], [0, 1], [0, 1]], dtype=np.float32)
    known = np.array([[True, True], [False, True], [True, False], [True, True]])
    # label 0: 1 positive, 2 known negatives; label 1: 2 positives, 1 known negative.
    np.testing.assert_allclose(compute_pos_weight(targets, "auto", known=known), [2.0, 0.5])
    np.testing.assert_allclose(
        compute_pos_weight(targets, "auto", known=np.ones_like(known)),
        compute_pos_weight(targets, "auto"),
    )
