"""Numeric precision and kernel choice: what ``auto`` means on this machine, autocast, attention."""

from __future__ import annotations

import contextlib
import copy
import functools

import torch

from multihot.core.errors import ConfigError


@functools.cache
def cpu_supports_bf16() -> bool:
    """True where oneDNN has fast bf16 kernels (AVX-512 BF16 or AMX); elsewhere bf16 is emulated and slow."""
    try:
        return bool(
            torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported()
        )
    except (AttributeError, RuntimeError):
        return False


def resolve_precision(precision: str, device: torch.device | str) -> str:
    """``auto`` -> ``bf16`` where the device supports it fast, else ``fp32``; others checked and kept.

    Returns:
        one of ``fp32``, ``bf16``, ``fp16``.
    """
    device = torch.device(device)
    if precision == "auto":
        if device.type == "cuda":
            return "bf16" if torch.cuda.is_bf16_supported() else "fp16"
        return "bf16" if device.type == "cpu" and cpu_supports_bf16() else "fp32"
    if precision == "fp16" and device.type != "cuda":
        raise ConfigError("precision fp16 needs a GPU; on CPU use bf16 or fp32")
    if precision not in ("fp32", "bf16", "fp16"):
        raise ConfigError(f"precision: expected auto, fp32, bf16 or fp16, got {precision!r}")
    return precision


def accelerate_mixed_precision(precision: str) -> str:
    """Our names to Accelerate's ``mixed_precision`` values."""
    return {"fp32": "no", "bf16": "bf16", "fp16": "fp16"}[precision]


def autocast(device: torch.device | str, precision: str):
    """An autocast context for ``bf16``/``fp16``; a no-op for ``fp32``."""
    device = torch.device(device)
    if precision == "fp32":
        return contextlib.nullcontext()
    dtype = torch.bfloat16 if precision == "bf16" else torch.float16
    return torch.autocast(device_type=device.type, dtype=dtype)


def default_device() -> torch.device:
    """The current GPU (the one Accelerate gave this process, in a job of several), else the CPU."""
    if torch.cuda.is_available():
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


def fast_attention(device: torch.device | str):
    """A context that keeps PyTorch's attention off the cuDNN kernel on a GPU; a no-op elsewhere.

    With the short, variable-length batches of text classification the GPU is idle most of the time
    and the host's time per kernel decides the speed. cuDNN attention spent about 0.75 ms of host
    time per call on an H200 (forward and backward alike), more than the rest of a small encoder's
    layer; the memory-efficient and flash kernels compute the same attention for a fraction of that.
    """
    if torch.device(device).type != "cuda":
        return contextlib.nullcontext()
    try:
        from torch.nn.attention import SDPBackend, sdpa_kernel  # optional: torch >= 2.3
    except ImportError:  # torch < 2.3 has no cuDNN attention to avoid
        return contextlib.nullcontext()
    return sdpa_kernel(
        [SDPBackend.FLASH_ATTENTION, SDPBackend.EFFICIENT_ATTENTION, SDPBackend.MATH]
    )


def inference_copy(model: torch.nn.Module, device: torch.device | str, precision: str):
    """The module to predict with: on a GPU in bf16/fp16, a copy with its weights in that dtype.

    Autocast casts every weight at every call; on a GPU, where short batches leave the device idle
    and the host's time per kernel decides the speed, those casts cost more than the half-precision
    matrix products save. Casting once is both faster and, for inference, as exact as autocast up to
    rounding (the decisions agree with fp32 on more than 99.9% of pairs in the benchmark). On a CPU,
    oneDNN's bf16 autocast is fast and the model is returned as it is. The second value is the
    precision to autocast to with the returned module.
    """
    if torch.device(device).type != "cuda" or precision == "fp32":
        return model, precision
    dtype = torch.bfloat16 if precision == "bf16" else torch.float16
    return copy.deepcopy(model).to(dtype), "fp32"
