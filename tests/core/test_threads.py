"""One thread count for the process: torch's, the ONNX backend's, and a later torch's."""

from __future__ import annotations

import os

import pytest
import torch

from multihot.core.errors import ConfigError
from multihot.core.threads import available_cores, set_threads


def test_set_threads_sets_torch_onnx_and_the_environment(restore_threads):
    set_threads(1)
    assert torch.get_num_threads() == 1
    assert available_cores() == 1  # the batches the ONNX backend runs at once
    assert os.environ["OMP_NUM_THREADS"] == "1"  # what a torch imported later starts with


def test_without_set_threads_torch_decides(restore_threads):
    torch.set_num_threads(2)
    assert available_cores() == 2


def test_bad_count_is_refused(restore_threads):
    with pytest.raises(ConfigError, match="threads: expected at least 1, got 0"):
        set_threads(0)
