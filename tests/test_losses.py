from __future__ import annotations

import numpy as np
import torch

from multihot.losses import BCELoss, build_loss, compute_pos_weight


def test_bce_matches_direct_computation():
    torch.manual_seed(0)
    logits, targets = torch.randn(5, 3), (torch.rand(5, 3) > 0.5).float()
    weight = torch.tensor([1.0, 2.0, 0.5])
    p = torch.sigmoid(logits)
    direct = -(weight * targets * torch.log(p) + (1 - targets) * torch.log(1 - p)).mean()
    torch.testing.assert_close(BCELoss(weight)(logits, targets), direct)
    torch.testing.assert_close(
        build_loss("bce", None)(logits, targets),
        torch.nn.functional.binary_cross_entropy(p, targets),
    )


def test_pos_weight_modes():
    targets = np.array([[1, 0, 0], [0, 0, 1], [0, 0, 1], [0, 0, 1]], dtype=np.float32)
    np.testing.assert_allclose(compute_pos_weight(targets, "auto"), [3.0, 1.0, 1 / 3])
    np.testing.assert_allclose(compute_pos_weight(targets, "sqrt"), np.sqrt([3.0, 1.0, 1 / 3]))
    assert compute_pos_weight(targets, "none") is None
