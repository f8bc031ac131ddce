"""Precision and kernel choices that only change on a GPU are checked here through their flags and
dtypes, which PyTorch sets the same way without one."""

import torch

from multihot.core.precision import fast_attention, inference_copy


def test_fast_attention_keeps_cudnn_attention_off_on_gpu_only():
    before = torch.backends.cuda.cudnn_sdp_enabled()
    with fast_attention("cpu"):
        assert torch.backends.cuda.cudnn_sdp_enabled() == before
    with fast_attention("cuda"):
        assert not torch.backends.cuda.cudnn_sdp_enabled()
        assert torch.backends.cuda.mem_efficient_sdp_enabled()
        assert torch.backends.cuda.flash_sdp_enabled()
    assert torch.backends.cuda.cudnn_sdp_enabled() == before


def test_inference_copy_casts_a_copy_on_gpu_only():
    model = torch.nn.Linear(3, 2)
    assert inference_copy(model, "cpu", "bf16") == (model, "bf16")
    assert inference_copy(model, "cuda", "fp32") == (model, "fp32")
    half, autocast_to = inference_copy(model, "cuda", "bf16")
    assert half is not model and autocast_to == "fp32"
    assert half.weight.dtype == torch.bfloat16
    assert model.weight.dtype == torch.float32  # the trained weights stay as they are
    fp16, _ = inference_copy(model, "cuda", "fp16")
    assert fp16.weight.dtype == torch.float16
