"""Shared by the speed benchmarks: the machine, its measured matmul peak, model FLOPs, tables.

FLOPs are counted analytically, as in the MFU literature: 2 x the multiply-adds of every matmul of
the encoder (Q, K, V and output projections, attention scores and attention-weighted values, both
feed-forward layers) on the real tokens of each text, plus the pooler and classifier layers per
text. Embedding lookups, layer norms, softmax and activations are not counted. Padding is not
counted either: it is work a system chooses to do, so it shows up as a lower achieved FLOP/s.
"""

from __future__ import annotations

import importlib.metadata
import json
import os
import platform
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA = ROOT.parent / "shared" / "data" / "goemotions"


# ------------------------------------------------------------------------------------ machine
def cpu_model() -> str:
    """The processor's marketing name from /proc/cpuinfo (Linux), else what platform knows."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def cpu_flags() -> list[str]:
    """The matrix-math extensions the processor reports that matter for bf16/int8 speed."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return []
    flags = set()
    for line in text.splitlines():
        if line.startswith("flags"):
            flags.update(line.split(":", 1)[1].split())
            break
    wanted = ("avx2", "avx512f", "avx512_bf16", "avx512_vnni", "amx_bf16", "amx_int8")
    return [f for f in wanted if f in flags]


def version(package: str) -> str:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def describe_machine() -> dict[str, Any]:
    """What a reader needs to compare figures across machines (and whether this one was busy)."""
    from multihot.core.precision import cpu_supports_bf16

    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    info: dict[str, Any] = {
        "cpu": cpu_model(),
        "cores": usable,
        "cpu_flags": cpu_flags(),
        "torch_threads": torch.get_num_threads(),
        "bf16_fast": cpu_supports_bf16(),
        "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        "python": platform.python_version(),
        "versions": {
            p: version(p)
            for p in ("multihot", "torch", "transformers", "onnxruntime", "accelerate")
        },
    }
    if hasattr(os, "getloadavg"):
        info["load_average_1min"] = round(os.getloadavg()[0], 2)
    return info


def machine_lines(info: dict[str, Any]) -> list[str]:
    v = info["versions"]
    lines = [
        f"machine: {info['cpu']}, {info['cores']} cores ({', '.join(info['cpu_flags']) or 'no AVX'}),"
        f" torch threads {info['torch_threads']}, fast bf16 {'yes' if info['bf16_fast'] else 'no'}"
        + (f", GPU {info['gpu']}" if info["gpu"] else ""),
        f"versions: python {info['python']}, "
        + ", ".join(f"{name} {number}" for name, number in v.items()),
    ]
    if "load_average_1min" in info:
        lines.append(
            f"load average at start: {info['load_average_1min']} "
            f"(above {info['cores']} means other work shared the cores)"
        )
    return lines


# ---------------------------------------------------------------------------------- matmul peak
def matmul_peak(
    dtype: torch.dtype, size: int = 2048, seconds: float = 1.0, device: str = "cpu"
) -> float:
    """FLOP/s of the best square ``size`` x ``size`` ``torch.matmul`` in ``dtype`` over ``seconds``.

    The best of many repetitions is the peak: on a shared machine the slower ones measure the
    neighbours, not the hardware.
    """
    generator = torch.Generator().manual_seed(0)
    a = torch.randn(size, size, generator=generator).to(device, dtype)
    b = torch.randn(size, size, generator=generator).to(device, dtype)
    on_gpu = torch.device(device).type == "cuda"

    def matmul() -> None:
        torch.matmul(a, b)
        if on_gpu:
            torch.cuda.synchronize()

    for _ in range(2):  # oneDNN and cuBLAS pick and build their kernels on the first calls
        matmul()
    best = float("inf")
    deadline = time.perf_counter() + seconds
    while time.perf_counter() < deadline:
        start = time.perf_counter()
        matmul()
        best = min(best, time.perf_counter() - start)
    return 2 * size**3 / best


def matmul_peaks(seconds: float = 1.0) -> dict[str, Any]:
    """Measured fp32 and bf16 matmul FLOP/s now, on the device multihot uses (GPU if there is one).

    2048 x 2048 on a CPU; 8192 x 8192 on a GPU, where smaller products cannot fill the device.
    """
    from multihot.core.precision import default_device

    device = default_device().type
    size = 8192 if device == "cuda" else 2048
    return {
        "device": device,
        "size": size,
        "fp32": matmul_peak(torch.float32, size, seconds, device),
        "bf16": matmul_peak(torch.bfloat16, size, seconds, device),
    }


def peak_line(peaks: dict[str, Any]) -> str:
    return (
        f"measured matmul peak ({peaks['size']} x {peaks['size']} on {peaks['device']}, best of "
        f"1 s): fp32 {gflops(peaks['fp32'])} GFLOP/s, bf16 {gflops(peaks['bf16'])} GFLOP/s"
    )


# ------------------------------------------------------------------------------------- FLOPs
def start_report() -> tuple[Callable[[str], None], dict[str, Any], dict[str, Any]]:
    """Print the machine and its measured matmul peaks; return a timestamped stderr logger, both.

    Every speed benchmark opens the same way, so its table can be read against the machine it ran on.
    """
    started = time.perf_counter()

    def log(message: str) -> None:
        print(f"[{time.perf_counter() - started:5.0f}s] {message}", file=sys.stderr, flush=True)

    machine = describe_machine()
    print("\n".join(machine_lines(machine)))
    peaks = matmul_peaks()
    print(peak_line(peaks))
    return log, machine, peaks


def forward_flops(
    encoder_config: dict[str, Any],
    lengths: Iterable[int],
    num_labels: int,
    first_token_only: bool = False,
) -> float:
    """FLOPs of one forward pass of a BERT-style encoder + pooler + linear head over texts of these
    token lengths (special tokens included, no padding).

    Per layer and text of ``L`` tokens, hidden ``H``, feed-forward ``I``: multiply-adds
    ``L * (4 H^2 + 2 H I)`` for the projections and feed-forward, ``2 L^2 H`` for attention
    (``Q K^T`` and ``softmax(.) V``); per text ``H^2 + H * num_labels`` for pooler and classifier.
    With ``first_token_only`` (a cls/pooler model reads only the first token's last state, see
    ``multihot.modeling.first_token``) the last layer counts what that state needs: keys and values of every
    token, ``L * 2 H^2``, and for the one query ``4 H^2 + 2 H I - 2 H^2 + 2 L H``.

    Example:
        >>> forward_flops({"hidden_size": 2, "intermediate_size": 8, "num_hidden_layers": 1}, [1], 1)
        116.0
    """
    h = int(encoder_config["hidden_size"])
    inner = int(encoder_config["intermediate_size"])
    layers = int(encoder_config["num_hidden_layers"])
    lens = np.fromiter(lengths, dtype=np.float64)
    per_layer = lens * (4 * h * h + 2 * h * inner) + 2 * lens**2 * h
    per_text = h * h + h * num_labels
    total = layers * per_layer.sum() + per_text * len(lens)
    if first_token_only:
        last = lens * 2 * h * h + (2 * h * h + 2 * h * inner) + 2 * lens * h
        total += (last - per_layer).sum()
    return float(2 * total)


def training_flops(forward: float) -> float:
    """A training step costs about three forward passes (backward: gradients of inputs and weights)."""
    return 3.0 * forward


def padded_tokens(lengths: Sequence[int], batch_size: int, *, sort: bool, multiple: int = 1) -> int:
    """Tokens a model computes on when texts are batched (sorted by length or in input order) and
    each batch is padded to its longest text, rounded up to ``multiple``."""
    lens = np.asarray(lengths)
    if sort:
        lens = np.sort(lens)[::-1]
    total = 0
    for start in range(0, len(lens), batch_size):
        batch = lens[start : start + batch_size]
        longest = -(-int(batch.max()) // multiple) * multiple
        total += longest * len(batch)
    return total


# ------------------------------------------------------------------------------------ helpers
def table(headers: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    """A markdown table."""
    lines = ["| " + " | ".join(headers) + " |", "|" + " --- |" * len(headers)]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def gflops(flops_per_second: float) -> str:
    return f"{flops_per_second / 1e9:.1f}"


def fraction(value: float, peak: float) -> str:
    return f"{value / peak:.1%}"


def write_json(path: Path, data: dict[str, Any]) -> None:
    path.write_text(json.dumps(data, indent=2, default=str) + "\n", encoding="utf-8")


def load_goemotions(data_dir: Path, split: str):
    """One split of GoEmotions as a :class:`multihot.data.readers.Dataset`, and the label names."""
    from multihot.data.readers import read_goemotions

    names = (data_dir / "labels.txt").read_text(encoding="utf-8").split()
    return read_goemotions(data_dir / f"{split}.tsv", names), names


def subset(dataset, size: int | None, seed: int = 0):
    """``size`` rows of ``dataset`` drawn at random (kept in file order); all of it for None."""
    if size is None or size >= len(dataset):
        return dataset
    rng = np.random.default_rng(seed)
    return dataset.subset(np.sort(rng.choice(len(dataset), size, replace=False)))
