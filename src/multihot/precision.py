"""Numeric precision: which one ``auto`` means on this machine, and autocast for inference."""

from __future__ import annotations

import contextlib
import functools

import torch

from multihot.errors import ConfigError


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
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")
