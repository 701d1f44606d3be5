"""What a trial cost, on the wire: what a worker (or an external client) measured and sends with its
completion, the cost as the API shows it on a trial, and a study's totals.

GPU-seconds are wall seconds times the GPUs the trial held; a trial that shared one GPU with N-1 others
(``hps worker --trials-per-device N``) held 1/N of it. Money is GPU-hours times the operator's price per
GPU-hour (``HPS_PRICE_PER_GPU_HOUR``), fixed when the trial completes, so a later price change never
rewrites what earlier trials cost.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from hps.wire.base import Out
from hps.wire.rules import Frozen

# Ten years of one device: more is not a measurement.
MAX_SECONDS = 10 * 366 * 86_400.0
MAX_GPUS = 4_096.0
MAX_SAMPLES = 2**53
MAX_MEMORY_MB = 2**40

# The costs a study may optimize (``objectives``): each a field of :class:`TrialCost` or ``money``.
CostName = Literal["gpu_seconds", "device_seconds", "money", "peak_memory_mb", "samples"]
COST_NAMES: tuple[CostName, ...] = ("gpu_seconds", "device_seconds", "money", "peak_memory_mb", "samples")


class TrialCost(Frozen):
    """What one trial used, as measured where it ran; sent with its completion (``cost``)."""

    device_seconds: float = Field(
        ge=0, le=MAX_SECONDS, description="Wall seconds the trial held its device (training and evaluation)."
    )
    gpus: float = Field(
        default=0.0,
        ge=0,
        le=MAX_GPUS,
        description="GPUs held: 1 for a trial alone on one GPU, 1/N for one of N sharing it, 0 on the CPU.",
    )
    peak_memory_mb: float | None = Field(
        default=None, ge=0, le=MAX_MEMORY_MB, description="Peak device memory in MiB (host RSS on the CPU)."
    )
    samples: int | None = Field(default=None, ge=0, le=MAX_SAMPLES, description="Training samples seen.")

    @property
    def gpu_seconds(self) -> float:
        """Wall seconds times GPUs held."""
        return self.device_seconds * self.gpus


class CostOut(Out):
    """What a trial cost, as stored when it finished."""

    device_seconds: float
    gpus: float
    gpu_seconds: float = Field(description="device_seconds x gpus.")
    peak_memory_mb: float | None
    samples: int | None
    money: float | None = Field(
        description="gpu_seconds / 3600 x the price per GPU-hour set when it finished; null with no price."
    )


class CostTotals(Out):
    """What a study's finished trials cost together (trials that sent no cost are left out)."""

    trials: int = Field(description="Finished trials with a cost.")
    device_seconds: float
    gpu_seconds: float
    samples: int
    peak_memory_mb: float | None = Field(description="The largest peak of any one trial.")
    money: float | None = Field(description="Sum over trials that had a price; null when none had one.")
