"""The devices a worker trains on: naming them, what they support, and how much memory a trial used."""

from __future__ import annotations

import re
import resource
import sys

import torch

_DEVICE_PATTERN = re.compile(r"cuda(?::(\d+))?", re.ASCII)


def parse_device(text: str) -> torch.device:
    """The device ``text`` names: ``"cpu"``, ``"cuda"`` or ``"cuda:N"``.

    Raises ValueError for any other text, and for a CUDA device when torch sees no CUDA or ``N`` is not
    one of the visible devices, so that a worker started on the wrong host fails at start.
    """
    cleaned = text.strip()
    if cleaned == "cpu":
        return torch.device("cpu")
    match = _DEVICE_PATTERN.fullmatch(cleaned)
    if match is None:
        raise ValueError(f"device {text!r} is not 'cpu', 'cuda' or 'cuda:N'")
    if not torch.cuda.is_available():
        raise ValueError(
            f"device {text!r} needs CUDA, but this torch ({torch.__version__}) sees no CUDA device"
        )
    if match.group(1) is None:
        return torch.device("cuda")
    index = int(match.group(1))
    count = torch.cuda.device_count()
    if index >= count:
        raise ValueError(
            f"device {text!r} is out of range: {count} CUDA device(s) visible, cuda:0..cuda:{count - 1}"
        )
    return torch.device("cuda", index)


def supports_bf16(device: torch.device) -> bool:
    """Whether ``device`` is a CUDA device that computes in bfloat16 natively (emulated bf16 on older
    GPUs does not count: it is slower than fp32)."""
    if device.type != "cuda" or not torch.cuda.is_available():
        return False
    with torch.cuda.device(device):
        return bool(torch.cuda.is_bf16_supported(including_emulation=False))


def reset_peak_memory(device: torch.device) -> None:
    """Start measuring peak memory on ``device`` afresh. On the CPU this does nothing: a process's peak
    RSS cannot be reset."""
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)


def peak_memory_mb(device: torch.device) -> float:
    """Peak memory in MiB: on CUDA, the most tensor memory torch held on ``device`` since the last
    :func:`reset_peak_memory`; elsewhere, the peak resident set size of the whole process since it
    started (so it includes the task's data and anything earlier trials held)."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    # Linux reports ru_maxrss in KiB, macOS in bytes.
    return peak / 2**20 if sys.platform == "darwin" else peak / 2**10


def visible_cuda_devices() -> list[str]:
    """The CUDA devices this process can use, as ``"cuda:N"`` names (empty without CUDA)."""
    if not torch.cuda.is_available():
        return []
    return [f"cuda:{index}" for index in range(torch.cuda.device_count())]
