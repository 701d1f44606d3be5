"""The devices a worker trains on: naming them, what they support, and how much memory a trial used."""

from __future__ import annotations

import json
import math
import os
import re
import resource
import sys
from collections.abc import Sequence
from pathlib import Path

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


# Leave this share of a device's memory free when packing trials: the allocator's fragmentation, CUDA's
# context and the other processes' own overheads are not in a trial's measured peak.
PACKING_HEADROOM = 0.10


def device_kind(device: torch.device) -> str:
    """What a measurement on ``device`` holds for: the GPU's model name (every cuda:N of one model
    measures alike), or ``cpu``."""
    if device.type == "cuda":
        return str(torch.cuda.get_device_name(device))
    return "cpu"


def memory_capacity_mb(device: torch.device) -> float | None:
    """All memory of ``device`` in MiB: the GPU's, or the host's on the CPU (None when unknown)."""
    if device.type == "cuda":
        return torch.cuda.get_device_properties(device).total_memory / 2**20
    try:
        pages, size = os.sysconf("SC_PHYS_PAGES"), os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError):
        return None
    return pages * size / 2**20


def trials_that_fit(capacity_mb: float, peak_mb: float) -> int:
    """How many trials of measured peak ``peak_mb`` fit side by side in ``capacity_mb`` (at least 1: one
    trial alone is what the device runs anyway)."""
    if peak_mb <= 0:
        return 1_000_000
    return max(1, math.floor(capacity_mb * (1 - PACKING_HEADROOM) / peak_mb))


class PeakMemoryBook:
    """Measured peak memory per (device kind, task), kept in a JSON file under the worker's data dir so
    that a later ``--trials-per-device`` knows what fits before it starts. Workers record after every
    trial (the largest peak wins); concurrent writers may lose each other's newest entry, never the file
    (it is replaced atomically), and the next trial records it again."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def read(self) -> dict[str, float]:
        """Every recorded peak, keyed ``"<device kind>|<task key>"`` (empty when none or unreadable)."""
        try:
            data = json.loads(self.path.read_text())
        except (OSError, ValueError):
            return {}
        if not isinstance(data, dict):
            return {}
        return {
            str(k): float(v)
            for k, v in data.items()
            if isinstance(v, int | float) and not isinstance(v, bool)
        }

    def record(self, kind: str, task: str, peak_mb: float) -> None:
        """Keep ``peak_mb`` for ``task`` on ``kind`` if it is the largest seen."""
        entries = self.read()
        key = f"{kind}|{task}"
        if entries.get(key, 0.0) >= peak_mb:
            return
        entries[key] = peak_mb
        self.path.parent.mkdir(parents=True, exist_ok=True)
        temporary = self.path.with_name(f".{self.path.name}.{os.getpid()}")
        temporary.write_text(json.dumps(entries, indent=1, sort_keys=True))
        os.replace(temporary, self.path)

    def peak(self, kind: str, tasks: Sequence[str] = ()) -> float | None:
        """The largest peak recorded on ``kind`` for a task key starting with one of ``tasks`` (any task
        when empty); None when nothing was measured there yet."""
        found = [
            value
            for key, value in self.read().items()
            if key.startswith(f"{kind}|")
            and (not tasks or any(key.split("|", 1)[1].split("/", 1)[0] == task for task in tasks))
        ]
        return max(found) if found else None
